"""The ``sources:`` list: one vendor endpoint each, checked against its API's spec."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping

from yaml.nodes import Node

from exporter.config._accounts import check_accounts, name_problem, read_account
from exporter.config._adaptive import build_adaptive, resolve
from exporter.config._jobs import build_jobs, reserved_labels
from exporter.config._nodes import Fields, Walker, line_of, quote
from exporter.config._security import build_auth, build_headers, build_tls
from exporter.config._signature import build_signature
from exporter.config.model import GlobalConfig, SourceConfig
from exporter.vendors.base import ApiSpec

_SOURCE_KEYS = (
    "name",
    "api",
    "base_url",
    "path",
    "errors_path",
    "errors_page_token_param",
    "errors_refresh",
    "max_requests_per_second",
    "account",
    "poll_interval",
    "adaptive_polling",
    "authorization",
    "basic_auth",
    "oauth2",
    "http_headers",
    "tls_config",
    "jobs",
)
# Characters that would end or split a query parameter's name.
_BAD_PARAM_CHAR = re.compile(r"[\s&=#?\x00-\x1f\x7f]")
MIN_POLL_INTERVAL = 1.0
DEFAULT_PAGE_TOKEN_PARAM = "pageToken"  # noqa: S105 - a query parameter name, not a secret


def build_sources(
    walker: Walker, node: Node, registry: Mapping[str, ApiSpec], global_: GlobalConfig
) -> tuple[SourceConfig, ...]:
    """Every source of the list; a name used twice is a problem at its second use."""
    items = walker.sequence(node, "sources")
    if items is None:
        return ()
    if not items:
        walker.problem(node, "sources", "list at least one source")
    path_params = sorted({param for spec in registry.values() for param in spec.path_params})
    signing = sorted({spec.signature_key for spec in registry.values() if spec.signature_key})
    reserved = reserved_labels(registry)
    sources: list[SourceConfig] = []
    placed: list[tuple[SourceConfig, Fields]] = []
    first_line: dict[str, int] = {}
    for index, item in enumerate(items):
        allowed = (*_SOURCE_KEYS, *path_params, *signing)
        fields = walker.mapping(item, f"sources[{index}]", allowed)
        if fields is None:
            continue
        source = _source(walker, fields, registry, global_, reserved)
        name_node = fields.get("name")
        if name_node is None or not source.name:
            continue
        if source.name in first_line:
            first = first_line[source.name]
            message = f"duplicate source name {quote(source.name)} (first at line {first})"
            walker.problem(name_node, fields.at("name"), message)
        first_line.setdefault(source.name, line_of(name_node))
        sources.append(source)
        placed.append((source, fields))
    check_accounts(walker, placed)
    return tuple(sources)


def _source(
    walker: Walker,
    fields: Fields,
    registry: Mapping[str, ApiSpec],
    global_: GlobalConfig,
    reserved: frozenset[str],
) -> SourceConfig:
    """One source; defaults stand in for bad values, as the caller raises anyway.

    ``reserved`` are the label names its jobs may not use: the registry's.
    """
    # Checked in the order they are usually written, for problems at the same place.
    name = _name(walker, fields)
    spec = _spec(walker, fields, registry)
    base_url = _base_url(walker, fields)
    path = fields.read("path", lambda node, at: _template(walker, node, at, spec))
    errors_path, token_param = _errors(walker, fields, spec, path)
    poll_interval = fields.read(
        "poll_interval", lambda node, at: walker.duration(node, at, minimum=MIN_POLL_INTERVAL)
    )
    authorization, basic_auth, oauth2 = build_auth(walker, fields)
    headers = fields.read("http_headers", lambda node, at: build_headers(walker, node, at)) or ()
    return SourceConfig(
        name=name,
        api=spec.name if spec else "",
        base_url=base_url,
        path=path or (spec.default_path if spec else ""),
        poll_interval=poll_interval or global_.poll_interval,
        jobs=fields.read("jobs", lambda node, at: build_jobs(walker, node, at, reserved=reserved))
        or (),
        path_params=_path_params(walker, fields, spec, registry, _uses(fields, path, spec)),
        errors_path=errors_path,
        errors_page_token_param=token_param,
        errors_refresh=_errors_refresh(walker, fields, spec),
        max_requests_per_second=fields.read("max_requests_per_second", walker.positive_number),
        authorization=authorization,
        basic_auth=basic_auth,
        oauth2=oauth2,
        http_headers=headers,
        tls_config=fields.read("tls_config", lambda node, at: build_tls(walker, node, at, name)),
        signature=build_signature(walker, fields, spec, registry, headers),
        adaptive_polling=resolve(
            fields.read("adaptive_polling", lambda node, at: build_adaptive(walker, node, at)),
            global_.adaptive_polling,
        ),
        account=fields.read("account", lambda node, at: read_account(walker, node, at)) or "",
    )


def _name(walker: Walker, fields: Fields) -> str:
    """The source's name, a label value: short and made of safe characters."""
    name = walker.required(fields, "name", walker.string)
    if name is None:
        return ""
    problem = name_problem(name)
    if problem is not None:
        walker.problem(fields.entries["name"][1], fields.at("name"), problem)
        return ""
    return name


def _spec(walker: Walker, fields: Fields, registry: Mapping[str, ApiSpec]) -> ApiSpec | None:
    """The registered API the source names."""
    api = walker.required(fields, "api", walker.string)
    if api is None:
        return None
    spec = registry.get(api)
    if spec is None:
        known = ", ".join(sorted(registry)) or "none are registered"
        walker.problem(
            fields.entries["api"][1],
            fields.at("api"),
            f"unknown API {quote(api)}; known APIs: {known}",
        )
    return spec


def _base_url(walker: Walker, fields: Fields) -> str:
    """An http(s) URL without query or fragment, ending with ``/`` so paths append to it."""
    url = walker.required(fields, "base_url", walker.http_url)
    if url is None:
        return ""
    if "?" in url:
        walker.problem(
            fields.entries["base_url"][1],
            fields.at("base_url"),
            "must not contain a ?query: paths go after it",
        )
        return ""
    return url if url.endswith("/") else url + "/"


def _template(walker: Walker, node: Node, path: str, spec: ApiSpec | None) -> str | None:
    """A path template relative to base_url with ``{id}`` and the API's own placeholders."""
    text = walker.string(node, path)
    if text is None:
        return None
    text = text.removeprefix("/")
    if spec is None:
        return text  # which placeholders are allowed depends on the API
    allowed = ("id", *spec.path_params)
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        walker.problem(
            node, path, f"invalid template: {exc} (write {{{{ and }}}} for literal braces)"
        )
        return None
    problems = [
        _placeholder_problem(name, spec_, conversion, allowed)
        for _, name, spec_, conversion in parts
        if name is not None
    ]
    problems = [problem for problem in problems if problem]
    if "id" not in [name for _, name, _, _ in parts]:
        problems.append("must contain the {id} placeholder")
    if text.startswith("/") or "://" in text:
        problems.append("must be a path relative to base_url, not a URL")
    for problem in problems:
        walker.problem(node, path, problem)
    return None if problems else text


def _placeholder_problem(
    name: str, format_spec: str | None, conversion: str | None, allowed: tuple[str, ...]
) -> str:
    """Why a ``{...}`` placeholder is not allowed, or an empty string."""
    if name in allowed and not format_spec and not conversion:
        return ""
    written = (
        name + (f"!{conversion}" if conversion else "") + (f":{format_spec}" if format_spec else "")
    )
    usable = ", ".join(f"{{{param}}}" for param in allowed)
    return f"placeholder {{{written}}} is not allowed; use only {usable}"


def _errors(
    walker: Walker, fields: Fields, spec: ApiSpec | None, path: str | None
) -> tuple[str | None, str]:
    """The errors endpoint's path and page-token parameter, for APIs that have one.

    Without ``errors_path`` the listing is the source's own ``path`` plus
    ``/errors`` (Fullstory's users imports), or else the API's default.
    """
    keys = ("errors_path", "errors_page_token_param")
    token = spec.default_page_token_param if spec is not None else DEFAULT_PAGE_TOKEN_PARAM
    if spec is not None and spec.default_errors_path is None:
        for key in keys:
            if key in fields.entries:
                message = f"API {spec.name} has no errors endpoint"
                walker.problem(fields.key_node(key), fields.at(key), message)
        return None, token
    path_node, token_node = fields.get(keys[0]), fields.get(keys[1])
    errors_path = None if spec is None else spec.default_errors_path
    if path_node is not None:
        errors_path = _template(walker, path_node, fields.at(keys[0]), spec)
    elif path is not None and spec is not None:
        errors_path = path.rstrip("/") + "/errors"
    if token_node is not None:
        token = walker.string(token_node, fields.at(keys[1])) or token
        if _BAD_PARAM_CHAR.search(token):
            message = "must not contain spaces, control characters or any of & = # ?"
            walker.problem(token_node, fields.at(keys[1]), message)
    return errors_path, token


def _errors_refresh(walker: Walker, fields: Fields, spec: ApiSpec | None) -> float | None:
    """How often a running job's listing may be read again, for APIs whose listing answers then.

    Off unless set: each refresh costs the vendor's budget a read of every page.
    """
    node = fields.get("errors_refresh")
    if node is None:
        return None
    if spec is not None and not spec.errors_while_running:
        message = f"API {spec.name} has no errors listing that answers while a job runs"
        walker.problem(fields.key_node("errors_refresh"), fields.at("errors_refresh"), message)
        return None
    return walker.duration(node, fields.at("errors_refresh"), minimum=MIN_POLL_INTERVAL)


def _uses(fields: Fields, path: str | None, spec: ApiSpec | None) -> tuple[str, frozenset[str]]:
    """The source's path template and its placeholders; none when that path is invalid."""
    if spec is None or (path is None and "path" in fields.entries):
        return "", frozenset()
    template = path or spec.default_path
    return template, frozenset(n for _, n, _, _ in string.Formatter().parse(template) if n)


def _path_params(
    walker: Walker,
    fields: Fields,
    spec: ApiSpec | None,
    registry: Mapping[str, ApiSpec],
    path: tuple[str, frozenset[str]],
) -> tuple[tuple[str, str], ...]:
    """The values of the API's own path placeholders; the other APIs' ones are rejected.

    A placeholder's key is required exactly when the path uses it: a user may write
    the report type into the path itself (``data/reports/calls/jobs/{id}``).
    """
    params: list[tuple[str, str]] = []
    template, used = path
    for key in spec.path_params if spec is not None else ():
        if not template:
            continue  # the path is invalid, which is the problem to report
        if key not in used:
            if key in fields.entries:
                message = f"is not used: path {quote(template)} has no {{{key}}} placeholder"
                walker.problem(fields.key_node(key), fields.at(key), message)
            continue
        value = walker.required(fields, key, walker.string, "the API's path needs it")
        if value is not None:
            params.append((key, value))
    for key in sorted({param for other in registry.values() for param in other.path_params}):
        if key not in fields.entries or (spec and key in spec.path_params):
            continue
        if spec is None:
            # Which API this belongs to is unknown: only its type can be checked.
            fields.read(key, walker.string)
            continue
        users = sorted(name for name, other in registry.items() if key in other.path_params)
        message = f"API {spec.name} takes no {key}: it is for {', '.join(users)}"
        walker.problem(fields.key_node(key), fields.at(key), message)
    return tuple(params)
