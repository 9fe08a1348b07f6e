"""An API's own request signature (``evocalize_signature``): a key ID and its secret.

As in :mod:`exporter.config._security`, no message quotes a value that could be
a secret.
"""

from __future__ import annotations

from collections.abc import Mapping

from yaml.nodes import Node

from exporter.config._nodes import Fields, Walker
from exporter.config._security import BAD_HEADER_CHAR, CONTROL_CHARS, secret
from exporter.config.model import Header, RequestSignature
from exporter.vendors.base import ApiSpec


def build_signature(
    walker: Walker,
    fields: Fields,
    spec: ApiSpec | None,
    registry: Mapping[str, ApiSpec],
    headers: tuple[Header, ...],
) -> RequestSignature | None:
    """The API's own signing key (``evocalize_signature``); another API's is a problem."""
    result: RequestSignature | None = None
    for key in sorted({other.signature_key or "" for other in registry.values()} - {""}):
        if key not in fields.entries:
            continue
        if spec is not None and key != spec.signature_key:
            users = sorted(name for name, other in registry.items() if other.signature_key == key)
            message = f"API {spec.name} takes no {key}: it is for {', '.join(users)}"
            walker.problem(fields.key_node(key), fields.at(key), message)
            continue
        # With an unknown API only the mapping itself can be checked.
        result = fields.read(key, lambda node, path: _signature(walker, node, path))
        if spec is None or fields.get(key) is None:
            continue
        # The API takes a client key over a signature: a request must carry only one kind.
        for header in headers:
            if header.name.lower() in spec.signature_conflicts:
                message = f"set either {key} or the {header.name} header in http_headers, not both"
                walker.problem(fields.key_node(key), fields.at(key), message)
    return result if spec is not None else None


def _signature(walker: Walker, node: Node, path: str) -> RequestSignature | None:
    """``{key_id, secret | secret_file | secret_env}``."""
    fields = walker.mapping(node, path, ("key_id", "secret", "secret_file", "secret_env"))
    if fields is None:
        return None
    key_id = walker.required(fields, "key_id", walker.string)
    if key_id is not None and BAD_HEADER_CHAR.search(key_id):
        walker.problem(fields.entries["key_id"][1], fields.at("key_id"), CONTROL_CHARS)
        key_id = None
    value = secret(walker, fields, "secret", required=True)
    return None if key_id is None or value is None else RequestSignature(key_id, value)
