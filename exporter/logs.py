"""Log lines as logfmt or JSON, the two formats Prometheus tools use.

Sample::

    ts=2026-11-23T09:30:00.123Z level=warn logger=exporter.polling.poller msg="source evo: HTTP 503"
"""

from __future__ import annotations

import json
import logging
import sys
import time

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
_NAMES = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn"}


def _fields(record: logging.LogRecord) -> dict[str, str]:
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    out = {
        "ts": f"{ts}.{int(record.msecs):03d}Z",
        "level": _NAMES.get(record.levelno, "error"),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    if record.exc_info:
        out["err"] = logging.Formatter().formatException(record.exc_info)
    return out


def _logfmt_value(value: str) -> str:
    if value and not any(c in value for c in ' ="\\\n\t'):
        return value
    return json.dumps(value, ensure_ascii=False)


class LogfmtFormatter(logging.Formatter):
    """``key=value`` pairs, values quoted when they need it."""

    def format(self, record: logging.LogRecord) -> str:
        """One logfmt line."""
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in _fields(record).items())


class JsonFormatter(logging.Formatter):
    """One JSON object a line."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON line."""
        return json.dumps(_fields(record), ensure_ascii=False)


def setup(level: str, fmt: str, stream: object = None) -> logging.Handler:
    """Send every log record at ``level`` or above to stderr in ``fmt``; returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    # aiohttp's access log would log every scrape at info; the server disables it too.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return handler
