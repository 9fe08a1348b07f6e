"""A source's credentials, extra headers and TLS settings, in Prometheus' HTTP client syntax.

No message written here quotes a value that could be a secret: only key
names, file names and environment variable names.  An API's request signature,
a credential of its own, is read in :mod:`exporter.config._signature`.
"""

from __future__ import annotations

import os
import re

from yaml.nodes import Node, SequenceNode

from exporter.config._nodes import Fields, Walker, join, line_of, quote
from exporter.config.model import (
    Authorization,
    BasicAuth,
    Header,
    OAuth2,
    Secret,
    TLSConfig,
)
from exporter.config.tls import TLS_VERSIONS, TLSFileError, load_tls

# RFC 9110 "token": what a header name or an auth scheme may consist of.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# A header value may hold a tab but no other control character (CR/LF would split it).
BAD_HEADER_CHAR = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_AUTH_KEYS = ("authorization", "basic_auth", "oauth2")
CONTROL_CHARS = "must not contain control characters"


def secret(walker: Walker, fields: Fields, key: str, *, required: bool) -> Secret | None:
    """The secret given by exactly one of ``key``, ``key_file`` and ``key_env``."""
    options = (key, f"{key}_file", f"{key}_env")
    present = [option for option in options if fields.get(option) is not None]
    listed = f"{options[0]}, {options[1]} or {options[2]}"
    if not present:
        if required:
            walker.problem(fields.node, fields.path, f"one of {listed} is required")
        return None
    for extra in present[1:]:
        walker.problem(fields.key_node(extra), fields.at(extra), f"set only one of {listed}")
    results = [_one_secret(walker, fields, option) for option in present]
    return results[0] if len(results) == 1 else None


def _one_secret(walker: Walker, fields: Fields, option: str) -> Secret | None:
    """The secret named by one of the three keys."""
    node, path = fields.entries[option][1], fields.at(option)
    if option.endswith("_file"):
        name = readable_file(walker, node, path)
        return None if name is None else Secret(file=name)
    if option.endswith("_env"):
        name = _env_var(walker, node, path)
        return None if name is None else Secret(env=name)
    text = walker.string(node, path, allow_empty=True)
    return None if text is None else Secret(inline=text)


def readable_file(walker: Walker, node: Node, path: str) -> str | None:
    """A file name, resolved against the config's directory, that can be opened now."""
    name = walker.string(node, path)
    if name is None:
        return None
    full = os.path.join(walker.base_dir, name)
    try:
        # Opening is the only honest test: permissions, ACLs and directories all show here.
        with open(full, "rb"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        walker.problem(node, path, f"cannot read file {quote(full)}: {reason}")
        return None
    return full


def _env_var(walker: Walker, node: Node, path: str) -> str | None:
    """The name of an environment variable that is set."""
    name = walker.string(node, path)
    if name is None:
        return None
    if not _ENV_NAME.fullmatch(name):
        # Not quoted back: a malformed name is often the secret pasted in the wrong key.
        walker.problem(node, path, "is not a valid environment variable name")
        return None
    if name not in os.environ:
        walker.problem(node, path, f"environment variable {name} is not set")
        return None
    return name


def build_auth(
    walker: Walker, fields: Fields
) -> tuple[Authorization | None, BasicAuth | None, OAuth2 | None]:
    """A source's ``authorization``, ``basic_auth`` and ``oauth2``: at most one of them."""
    present = [key for key in _AUTH_KEYS if fields.get(key) is not None]
    for extra in present[1:]:
        first = line_of(fields.key_node(present[0]))
        message = f"set only one of {', '.join(_AUTH_KEYS)} ({present[0]} is set at line {first})"
        walker.problem(fields.key_node(extra), fields.at(extra), message)
    return (
        fields.read("authorization", lambda node, path: _authorization(walker, node, path)),
        fields.read("basic_auth", lambda node, path: _basic_auth(walker, node, path)),
        fields.read("oauth2", lambda node, path: _oauth2(walker, node, path)),
    )


def _authorization(walker: Walker, node: Node, path: str) -> Authorization | None:
    """``authorization: {type, credentials | credentials_file | credentials_env}``."""
    fields = walker.mapping(
        node, path, ("type", "credentials", "credentials_file", "credentials_env")
    )
    if fields is None:
        return None
    scheme: str | None = "Bearer"
    type_node = fields.get("type")
    if type_node is not None:
        scheme = walker.string(type_node, fields.at("type"))
        # Basic is allowed: some vendors (Fullstory) want "Basic <API key>", not user:password.
        if scheme is not None and not _TOKEN.fullmatch(scheme):
            walker.problem(type_node, fields.at("type"), "must be a single word such as Bearer")
            scheme = None
    credentials = secret(walker, fields, "credentials", required=True)
    if scheme is None or credentials is None:
        return None
    return Authorization(type=scheme, credentials=credentials)


def _basic_auth(walker: Walker, node: Node, path: str) -> BasicAuth | None:
    """``basic_auth: {username, password | password_file | password_env}``."""
    fields = walker.mapping(node, path, ("username", "password", "password_file", "password_env"))
    if fields is None:
        return None
    username = walker.required(fields, "username", walker.string)
    password = secret(walker, fields, "password", required=False)
    return None if username is None else BasicAuth(username=username, password=password)


def _oauth2(walker: Walker, node: Node, path: str) -> OAuth2 | None:
    """``oauth2``: client credentials, a token URL, optional scopes and extra parameters."""
    keys = ("client_id", "client_secret", "client_secret_file", "client_secret_env")
    fields = walker.mapping(node, path, (*keys, "token_url", "scopes", "endpoint_params"))
    if fields is None:
        return None
    client_id = walker.required(fields, "client_id", walker.string)
    client_secret = secret(walker, fields, "client_secret", required=True)
    token_url = walker.required(fields, "token_url", walker.http_url)
    scopes = fields.read("scopes", walker.strings) or []
    params = fields.read("endpoint_params", lambda node, path: _string_map(walker, node, path))
    if client_id is None or client_secret is None or token_url is None:
        return None
    return OAuth2(
        client_id=client_id,
        client_secret=client_secret,
        token_url=token_url,
        scopes=tuple(text for _, _, text in scopes),
        endpoint_params=params or (),
    )


def _string_map(walker: Walker, node: Node, path: str) -> tuple[tuple[str, str], ...]:
    """A mapping of names to strings, in file order."""
    fields = walker.mapping(node, path, None)
    pairs: list[tuple[str, str]] = []
    for name, (_, value) in fields.entries.items() if fields else ():
        text = walker.string(value, join(path, name), allow_empty=True)
        if text is not None:
            pairs.append((name, text))
    return tuple(pairs)


def build_headers(walker: Walker, node: Node, path: str) -> tuple[Header, ...]:
    """``http_headers: {Name: {values, secrets, files}}``."""
    fields = walker.mapping(node, path, None)
    if fields is None:
        return ()
    headers: list[Header] = []
    first_line: dict[str, int] = {}
    for name, (key, value) in fields.entries.items():
        at = join(path, name)
        if not _TOKEN.fullmatch(name):
            walker.problem(key, at, f"{quote(name)} is not a valid HTTP header name")
        elif name.lower() == "authorization":
            walker.problem(key, at, "set the Authorization header with authorization: instead")
        elif name.lower() in first_line:
            first = first_line[name.lower()]
            walker.problem(key, at, f"header {name} is already set at line {first}")
        first_line.setdefault(name.lower(), line_of(key))
        header = _header(walker, value, at, name)
        if header is not None:
            headers.append(header)
    return tuple(headers)


def _header(walker: Walker, node: Node, path: str, name: str) -> Header | None:
    """One header's plain values, inline secrets and secret files."""
    keys = ("values", "secrets", "files")
    fields = walker.mapping(node, path, keys)
    if fields is None:
        return None
    lists = [fields.get(key) for key in keys]
    if all(item is None or (isinstance(item, SequenceNode) and not item.value) for item in lists):
        walker.problem(node, path, "set at least one of values, secrets or files")
        return None
    values: list[str] = []
    secrets: list[Secret] = []
    for key, list_node in zip(keys, lists, strict=True):
        for item_path, item, text in (
            () if list_node is None else walker.strings(list_node, fields.at(key))
        ):
            if key == "files":
                file_name = readable_file(walker, item, item_path)
                secrets.extend(() if file_name is None else [Secret(file=file_name)])
            elif BAD_HEADER_CHAR.search(text):
                walker.problem(item, item_path, CONTROL_CHARS)
            elif key == "values":
                values.append(text)
            else:
                secrets.append(Secret(inline=text))
    return Header(name=name, values=tuple(values), secrets=tuple(secrets))


def build_tls(walker: Walker, node: Node, path: str, source: str) -> TLSConfig | None:
    """``tls_config``: files must load, cert_file and key_file go together."""
    keys = ("ca_file", "cert_file", "key_file", "server_name", "insecure_skip_verify")
    fields = walker.mapping(node, path, (*keys, "min_version"))
    if fields is None:
        return None
    files: dict[str, str | None] = {}
    for key in ("ca_file", "cert_file", "key_file"):
        file_node = fields.get(key)
        files[key] = None if file_node is None else readable_file(walker, file_node, fields.at(key))
    if (fields.get("cert_file") is None) != (fields.get("key_file") is None):
        walker.problem(fields.node, fields.path, "set cert_file and key_file together")
    name_node = fields.get("server_name")
    server_name = None if name_node is None else walker.string(name_node, fields.at("server_name"))
    skip_node = fields.get("insecure_skip_verify")
    skip = (
        None if skip_node is None else walker.boolean(skip_node, fields.at("insecure_skip_verify"))
    )
    version_node = fields.get("min_version")
    version = None
    if version_node is not None:
        version = walker.string(version_node, fields.at("min_version"))
        if version is not None and version not in TLS_VERSIONS:
            allowed = ", ".join(TLS_VERSIONS)
            walker.problem(
                version_node,
                fields.at("min_version"),
                f"must be one of {allowed}, got {quote(version)}",
            )
            version = None
    tls = TLSConfig(
        ca_file=files["ca_file"],
        cert_file=files["cert_file"],
        key_file=files["key_file"],
        server_name=server_name,
        insecure_skip_verify=bool(skip),
        min_version=version,
    )
    # Readable is not usable: garbage PEM would pass the check above and stop the start.
    if any(files.values()):
        try:
            load_tls(tls)
        except TLSFileError as exc:
            message = f"{source or 'source'}: cannot set up its HTTP client: {exc.message}"
            walker.problem(fields.entries[exc.key][1], fields.at(exc.key), message)
            return None
    return tls
