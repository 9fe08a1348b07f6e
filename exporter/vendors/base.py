"""The contract every vendor module fulfils, and JSON helpers they share.

Adding an API means writing one module that builds an :class:`ApiSpec` from
pure functions and adding it to :data:`exporter.vendors.REGISTRY`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, TypeVar

from exporter.model import ErrorsPage, Response, Snapshot, Status, VendorError

# What a job's stage says of when it ends: "soon" (its last stages), "wait" (may queue long).
StageHint = Literal["soon", "wait"]


@dataclass(frozen=True, slots=True)
class ApiSpec:
    """How to poll one kind of vendor job and read its answers.

    ``path_params`` are extra source keys the path template needs (002's
    ``report_type``); the config requires them for this API only.  An API with
    an errors endpoint sets both ``default_errors_path`` and
    ``parse_errors_page``: the poller reads every page once the job finishes
    (:meth:`reads_errors`; ``has_errors`` narrows which finished jobs).
    ``info_labels`` are the ``batchjob_info`` label names ``parse_job`` may
    put in :attr:`Snapshot.info`; the config reserves them for the exporter.
    ``default_page_token_param`` names the errors listing's page-token query
    parameter; ``errors_pending_statuses`` are listing answers that mean "not
    ready, ask again later" (not a failure); ``errors_while_running`` says the
    listing answers while the job runs.  ``describe_error`` quotes the
    vendor's error body for a log line (default: :func:`error_detail`).
    ``signature_key`` and ``sign`` are an API's request signing: the source
    key that configures it, and the headers for one request
    (``sign(path, unix_seconds, key_id, secret)``); ``signature_conflicts``
    are header names (lower case) a signed source must not also set in
    ``http_headers``.  ``stage_hints`` say what a running job's
    ``vendor_status`` (lower case) tells of its end, for adaptive polling:
    ``"soon"`` (its last stages, e.g. uploading) or ``"wait"`` (queued, may wait
    long); statuses not listed say nothing.
    """

    name: str
    vendor: str
    default_path: str
    parse_job: Callable[[Response], Snapshot]
    ok_statuses: frozenset[int] = frozenset({200})
    path_params: tuple[str, ...] = ()
    default_errors_path: str | None = None
    parse_errors_page: Callable[[Response], ErrorsPage] | None = field(default=None)
    info_labels: frozenset[str] = frozenset()
    default_page_token_param: str = "pageToken"  # noqa: S105 - a query parameter name
    errors_pending_statuses: frozenset[int] = frozenset()
    errors_while_running: bool = False
    describe_error: Callable[[Response], str | None] | None = None
    has_errors: Callable[[Snapshot], bool] | None = None
    signature_key: str | None = None
    sign: Callable[[str, int, str, str], tuple[tuple[str, str], ...]] | None = None
    signature_conflicts: frozenset[str] = frozenset()
    stage_hints: tuple[tuple[str, StageHint], ...] = ()  # (vendor_status, hint) pairs

    def error_text(self, response: Response) -> str | None:
        """The vendor's own words from an error answer, bounded, if it sent any."""
        describe = self.describe_error or error_detail
        return describe(response)

    def reads_errors(self, snap: Snapshot) -> bool:
        """Whether the poller reads the errors listing of a job its request saw as ``snap``.

        Every finished job by default, never one the vendor does not know: its
        listing is a 404 too, and a failed poll for that would keep it from
        ``not_found`` forever.
        """
        if self.parse_errors_page is None or not snap.status.finished:
            return False
        if snap.status is Status.NOT_FOUND:
            return False
        return self.has_errors is None or self.has_errors(snap)


MAX_QUOTED = 200
T = TypeVar("T")


def quote_body(body: bytes) -> str:
    """Quote a short printable excerpt of a body for an error message, never the whole thing."""
    text = body[:MAX_QUOTED].decode("utf-8", "replace")
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    return cleaned + ("..." if len(body) > MAX_QUOTED else "")


def load_json_object(response: Response) -> dict[str, object]:
    """Decode a body that must be a JSON object, or raise :class:`VendorError`."""
    try:
        value = json.loads(response.body)
    # RecursionError: json.loads gives up on a very deeply nested body ("[[[[...").
    except (ValueError, RecursionError) as exc:
        raise VendorError("invalid_json", f"body is not JSON: {quote_body(response.body)}") from exc
    if not isinstance(value, dict):
        raise VendorError("unexpected_shape", f"expected a JSON object, got {type(value).__name__}")
    return value


def error_detail(response: Response) -> str | None:
    """Return the vendor's ``code``/``message`` from an error body, if it sent one.

    All three seeds describe errors as a JSON object with ``message`` and
    ``code``; anything else (an HTML page from a proxy) gives ``None``.
    """
    value = response.json_object()
    if value is None:
        return None
    parts = [printable(value[key]) for key in ("code", "message") if key in value]
    return ": ".join(parts) or None


def printable(value: object) -> str:
    """A bounded piece of a vendor's error field, control characters blanked: one log line."""
    text = str(value)[:MAX_QUOTED]
    return "".join(ch if ch.isprintable() else " " for ch in text)


UNKNOWN_CODE = "unknown"  # the code of an item error the vendor gave none
MAX_CODE = 100  # an error code longer than this is cut: it becomes a label value


def count_codes(items: list[object], list_key: str, code_key: str) -> tuple[tuple[str, int], ...]:
    """An errors page's items (``body[list_key]``) counted by ``code_key``, sorted."""
    counts: dict[str, int] = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise shape_error(list_key, f"[{index}]", "an object", item)
        code = read_optional_str(item, code_key, f"{list_key}[{index}]")
        key = bounded(code, MAX_CODE) if code else UNKNOWN_CODE
        counts[key] = counts.get(key, 0) + 1
    return tuple(sorted(counts.items()))


# -- typed field readers ------------------------------------------------------
#
# Each reader takes the parent object, the key and the parent's path (``"data"``,
# ``"job"``, or ``""`` for the top level); the dotted path is only built when a
# :class:`VendorError` is raised, so the happy path allocates nothing extra.

MAX_SHOWN = 50


def field_path(parent: str, key: str) -> str:
    """Join ``parent`` and ``key`` (or an index such as ``[3]``) into a path for messages."""
    if not parent or key.startswith("["):
        return parent + key
    return f"{parent}.{key}"


def describe(value: object) -> str:
    """Render a JSON value shortly and printably for an error message."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        value = value[: MAX_SHOWN + 1]  # json.dumps only what can be shown
    text = json.dumps(value)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "..."


def shape_error(parent: str, key: str, expected: str, value: object) -> VendorError:
    """Build an ``unexpected_shape`` error naming the field path and what was found."""
    return VendorError(
        "unexpected_shape", f"{field_path(parent, key)}: expected {expected}, got {describe(value)}"
    )


def missing_error(parent: str, key: str, expected: str) -> VendorError:
    """Build an ``unexpected_shape`` error for a required field that is absent."""
    return VendorError(
        "unexpected_shape", f"{field_path(parent, key)}: missing, expected {expected}"
    )


def _required(obj: dict[str, object], key: str, parent: str, kind: type[T], what: str) -> T:
    value = obj.get(key)
    if isinstance(value, kind):
        return value
    if value is None and key not in obj:
        raise missing_error(parent, key, what)
    raise shape_error(parent, key, what, value)


def _optional(obj: dict[str, object], key: str, parent: str, kind: type[T], what: str) -> T | None:
    value = obj.get(key)
    if value is None or isinstance(value, kind):
        return value
    raise shape_error(parent, key, what, value)


def read_object(obj: dict[str, object], key: str, parent: str = "") -> dict[str, object]:
    """Read a required JSON object member."""
    return _required(obj, key, parent, dict, "an object")


def read_optional_object(
    obj: dict[str, object], key: str, parent: str = ""
) -> dict[str, object] | None:
    """Read an optional JSON object member: absent or ``null`` gives ``None``."""
    return _optional(obj, key, parent, dict, "an object")


def read_list(obj: dict[str, object], key: str, parent: str = "") -> list[object]:
    """Read a required JSON array member."""
    return _required(obj, key, parent, list, "an array")


def read_str(obj: dict[str, object], key: str, parent: str = "") -> str:
    """Read a required JSON string member."""
    return _required(obj, key, parent, str, "a string")


def read_optional_str(obj: dict[str, object], key: str, parent: str = "") -> str | None:
    """Read an optional JSON string member: absent or ``null`` gives ``None``."""
    return _optional(obj, key, parent, str, "a string")


def read_bool(obj: dict[str, object], key: str, parent: str = "") -> bool:
    """Read a required JSON boolean member."""
    return _required(obj, key, parent, bool, "a boolean")


def read_count(obj: dict[str, object], key: str, parent: str = "") -> int | None:
    """Read an optional item count: absent or ``null`` gives ``None`` (no series).

    A count must be a non-negative JSON integer; ``true`` is not ``1`` and
    ``3.0`` is not ``3``.
    """
    value = obj.get(key)
    if value is None:
        return None
    if type(value) is int and value >= 0:
        return value
    raise shape_error(parent, key, "a non-negative integer", value)


# Up to 19 digits: an int64, which proto3's JSON mapping writes as a string.
_DECIMAL = re.compile(r"[0-9]{1,19}", re.ASCII)


def read_lenient_count(obj: dict[str, object], key: str, parent: str = "") -> int | None:
    """Read an optional item count that may also come as a decimal string (``"42"``).

    Like :func:`read_count`, and a string of ASCII digits is read as its number:
    proto3's JSON mapping writes 64-bit integers so.  ``"4x"``, ``"-1"``,
    ``"4.0"`` and ``" 4"`` are shape errors, as are floats and booleans.
    """
    value = obj.get(key)
    if value is None:
        return None
    if type(value) is int and value >= 0:
        return value
    if type(value) is str and _DECIMAL.fullmatch(value):
        return int(value)
    raise shape_error(parent, key, "a non-negative integer or its decimal string", value)


def bounded(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, for label values."""
    return text if len(text) <= limit else text[:limit]


def map_status(raw: str, table: Mapping[str, Status]) -> Status:
    """Look ``raw`` up in ``table`` (upper-case keys) ignoring ASCII case, else ``UNKNOWN``.

    Non-ASCII text never matches: a dotless ``i`` (U+0131) upper-cases to ``I``.
    """
    if not raw.isascii():
        return Status.UNKNOWN
    return table.get(raw.upper(), Status.UNKNOWN)


# -- timestamps ---------------------------------------------------------------

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


def parse_rfc3339(text: str) -> float:
    """Convert an RFC 3339 timestamp to Unix seconds, or raise :class:`ValueError`.

    Accepts ``Z`` or a numeric offset, with or without fractional seconds (any
    number of digits), and a leap second ``:60``.  A timestamp without an
    offset is ambiguous and rejected, unlike :meth:`datetime.fromisoformat`.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text[:MAX_SHOWN]!r}")
    year, month, day, hour, minute, second, frac, _, sign, off_h, off_m = match.groups()
    leap = second == "60"
    moment = datetime(
        int(year),
        int(month),
        int(day),
        int(hour),
        int(minute),
        59 if leap else int(second),
        tzinfo=UTC,
    ).timestamp()
    if leap:
        moment += 1.0
    if frac is not None:
        moment += float(frac)
    if sign is not None:
        hours, minutes = int(off_h), int(off_m)
        if hours > 23 or minutes > 59:
            raise ValueError(f"offset out of range: {text[:MAX_SHOWN]!r}")
        offset = hours * 3600 + minutes * 60
        moment += -offset if sign == "+" else offset
    return moment


def read_optional_timestamp(obj: dict[str, object], key: str, parent: str = "") -> float | None:
    """Read an optional RFC 3339 member as Unix seconds: absent or ``null`` gives ``None``."""
    text = read_optional_str(obj, key, parent)
    if text is None:
        return None
    try:
        return parse_rfc3339(text)
    except ValueError as exc:
        raise shape_error(parent, key, "an RFC 3339 timestamp", text) from exc
