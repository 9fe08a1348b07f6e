"""The command line's flags: their defaults, value parsers and refusals."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from exporter.app import Listen
from exporter.flags import DEFAULT_PORT, build_parser, parse_listen, parse_shard
from exporter.jobs.shard import Shard


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (":9100", Listen("", 9100)),
        ("127.0.0.1:0", Listen("127.0.0.1", 0)),
        ("[::1]:8080", Listen("::1", 8080)),
    ],
)
def test_parse_listen(value: str, expected: Listen) -> None:
    """Listen addresses take Prometheus' HOST:PORT forms."""
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["9100", "host:", "host:99999", "host:port"])
def test_parse_listen_rejects_nonsense(value: str) -> None:
    """A listen address without a valid port is refused."""
    with pytest.raises(argparse.ArgumentTypeError):
        parse_listen(value)


def test_web_limit_flags_parse_durations_and_counts() -> None:
    """``--web.*`` limits take Prometheus durations and a positive count; defaults as documented."""
    args = build_parser().parse_args(
        ["--web.header-timeout=2s", "--web.body-timeout=500ms", "--web.max-connections=3"]
    )
    assert (args.header_timeout, args.body_timeout, args.idle_timeout) == (2.0, 0.5, 60.0)
    assert args.max_connections == 3
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for flag, default in (("header", "5s"), ("body", "10s"), ("idle", "60s")):
        assert f"| `--web.{flag}-timeout=DURATION` | `{default}` |" in readme
    assert "| `--web.max-connections=N` | `512` |" in readme


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("--web.header-timeout=soon", 'invalid duration "soon"'),
        ("--web.idle-timeout=0s", "must be more than 0, got '0s'"),
        ("--web.max-connections=0", "expected a positive integer, got '0'"),
    ],
)
def test_web_limit_flags_refuse_nonsense(
    flag: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad limit exits 2 with argparse's message naming the value."""
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([flag])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_default_port_is_documented() -> None:
    """The README names the default port the code uses."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert f":{DEFAULT_PORT}" in readme


def test_shard_flags_take_a_number_or_the_hostname() -> None:
    """``--shard=2`` or ``--shard=from-hostname`` (a StatefulSet pod's ``-N``), below the total."""
    assert parse_shard("2", 4, "any") == Shard(2, 4)
    assert parse_shard("from-hostname", 4, "batch-job-exporter-3") == Shard(3, 4)
    with pytest.raises(ValueError, match="not below --total-shards 4"):
        parse_shard("4", 4, "any")
    with pytest.raises(ValueError, match="expected a number or from-hostname"):
        parse_shard("two", 4, "any")
    with pytest.raises(ValueError, match="does not end in -N"):
        parse_shard("from-hostname", 4, "laptop")
