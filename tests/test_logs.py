"""Log formats: logfmt and JSON lines with level, logger and message."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from exporter import logs


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger's handlers and level back after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_logfmt_quotes_values_that_need_it() -> None:
    """Logfmt lines carry ts, level, logger and msg, quoting values with spaces."""
    stream = io.StringIO()
    logs.setup("info", "logfmt", stream)
    logging.getLogger("exporter.test").warning('source %s: HTTP %d "x"', "evo", 503)
    logging.getLogger("exporter.test").debug("hidden at info")
    line = stream.getvalue().strip()
    assert "\n" not in line
    assert " level=warn logger=exporter.test " in line
    assert line.endswith('msg="source evo: HTTP 503 \\"x\\""')
    assert line.startswith("ts=")


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_include_the_traceback() -> None:
    """JSON format writes one object a line, with an err field for exceptions."""
    stream = io.StringIO()
    logs.setup("debug", "json", stream)
    try:
        int("bad")
    except ValueError:
        logging.getLogger("exporter.test").exception("crashed")
    record = json.loads(stream.getvalue())
    assert record["level"] == "error"
    assert record["msg"] == "crashed"
    assert "ValueError: invalid literal" in record["err"]
