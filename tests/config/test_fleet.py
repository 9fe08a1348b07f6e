"""``global.fleet``: one Redis URL from one of three keys, a name, a size; every problem placed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from exporter.config import Secret, Walker
from exporter.config._fleet import build_fleet, url_problem
from exporter.config.model import FleetConfig

PASSWORD = "hunter2-s3cret"  # noqa: S105 - a test value that must never appear in a message


def build(text: str, base_dir: str = "") -> tuple[FleetConfig | None, list[str]]:
    """``build_fleet`` on a YAML mapping, with the problems formatted as the loader does."""
    walker = Walker(base_dir)
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    assert node is not None
    fleet = build_fleet(walker, node, "global.fleet")
    return fleet, [problem.format("config.yaml") for problem in walker.problems]


def test_an_inline_url_with_a_name_and_a_size() -> None:
    """The three keys become a FleetConfig whose URL is an inline secret."""
    fleet, problems = build(f"redis_url: redis://:{PASSWORD}@redis:6379/0\nname: pay\nsize: 40\n")
    assert problems == []
    assert fleet == FleetConfig(
        redis_url=Secret(inline=f"redis://:{PASSWORD}@redis:6379/0"), name="pay", size=40
    )
    assert PASSWORD not in repr(fleet)


def test_the_url_from_a_file_relative_to_the_config(tmp_path: Path) -> None:
    """``redis_url_file`` is resolved against the config's directory and read to check it."""
    (tmp_path / "url").write_text("rediss://redis.example:6380\n")
    fleet, problems = build("redis_url_file: url\nname: a.b:c-d_e\n", str(tmp_path))
    assert problems == []
    assert fleet == FleetConfig(redis_url=Secret(file=str(tmp_path / "url")), name="a.b:c-d_e")


def test_the_url_from_an_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """``redis_url_env`` names a variable that must be set; a unix socket URL is fine."""
    monkeypatch.setenv("FLEET_REDIS", "unix:///run/redis.sock?db=1")
    fleet, problems = build("redis_url_env: FLEET_REDIS\nname: f\n")
    assert problems == []
    assert fleet == FleetConfig(redis_url=Secret(env="FLEET_REDIS"), name="f")


def test_every_missing_key_is_a_problem_at_the_mapping() -> None:
    """No URL and no name: two problems, both pointing at the fleet mapping."""
    fleet, problems = build("size: 3\n")
    assert fleet is None
    assert problems == [
        "config.yaml:1:1: global.fleet: one of redis_url, redis_url_file or redis_url_env "
        "is required",
        "config.yaml:1:1: global.fleet.name: required key is missing "
        "(the prefix of the fleet's Redis keys)",
    ]


def test_two_url_keys_are_one_too_many(tmp_path: Path) -> None:
    """Exactly one of the three: the second is a problem at its key."""
    (tmp_path / "url").write_text("redis://r\n")
    fleet, problems = build("redis_url: redis://r\nredis_url_file: url\nname: n\n", str(tmp_path))
    assert fleet is None
    assert problems == [
        "config.yaml:2:1: global.fleet.redis_url_file: set only one of redis_url, "
        "redis_url_file or redis_url_env"
    ]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (f"http://:{PASSWORD}@redis:6379", "must be a redis://, rediss:// or unix:// URL"),
        (f"redis://:{PASSWORD}@redis:notaport", "is not a valid URL"),
        (f"redis://:{PASSWORD}@:6379", "must include a host"),
        (f"redis://:{PASSWORD}@redis/zero", "may have only a database number as its path"),
        ("unix://", "must name the socket's path (unix:///path/to/redis.sock)"),
        ("", "must be a redis://, rediss:// or unix:// URL"),
    ],
)
def test_a_bad_inline_url_is_never_quoted_back(url: str, problem: str) -> None:
    """The message says what is wrong, at the value, without any of the URL in it."""
    fleet, problems = build(f"redis_url: '{url}'\nname: n\n")
    assert fleet is None
    assert len(problems) == 1
    assert problems[0].startswith(f"config.yaml:1:12: global.fleet.redis_url: {problem}")
    assert PASSWORD not in problems[0]


def test_a_bad_url_in_a_file_names_the_file_not_the_url(tmp_path: Path) -> None:
    """A file whose content is no Redis URL: the file is named, its content is not."""
    (tmp_path / "url").write_text(f"http://:{PASSWORD}@redis\n")
    fleet, problems = build("redis_url_file: url\nname: n\n", str(tmp_path))
    assert fleet is None
    where = tmp_path / "url"
    assert problems == [
        f'config.yaml:1:17: global.fleet.redis_url_file: the URL in file "{where}" '
        "must be a redis://, rediss:// or unix:// URL"
    ]


def test_a_bad_url_in_the_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A variable whose value is no Redis URL: the variable is named, its value is not."""
    monkeypatch.setenv("FLEET_REDIS", f"mysql://:{PASSWORD}@db")
    fleet, problems = build("redis_url_env: FLEET_REDIS\nname: n\n")
    assert fleet is None
    assert problems == [
        "config.yaml:1:16: global.fleet.redis_url_env: the URL in environment variable "
        "FLEET_REDIS must be a redis://, rediss:// or unix:// URL"
    ]


def test_an_unreadable_file_and_an_unset_variable_are_reported_once_each(tmp_path: Path) -> None:
    """The secret's own checks apply: the file must open, the variable must be set."""
    fleet, problems = build("redis_url_file: missing\nname: n\n", str(tmp_path))
    assert fleet is None
    where = tmp_path / "missing"
    assert problems == [
        f'config.yaml:1:17: global.fleet.redis_url_file: cannot read file "{where}": '
        "No such file or directory"
    ]
    fleet, problems = build("redis_url_env: BJE_TEST_UNSET_VARIABLE\nname: n\n")
    assert problems == [
        "config.yaml:1:16: global.fleet.redis_url_env: "
        "environment variable BJE_TEST_UNSET_VARIABLE is not set"
    ]


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("'a b'", 'must consist of letters, digits and _.:- only, got "a b"'),
        ("'{x}'", 'must consist of letters, digits and _.:- only, got "{x}"'),
        ("''", "must not be empty"),
        ("[a]", "expected a string, got a list"),
    ],
)
def test_a_name_that_cannot_be_a_key_prefix(name: str, problem: str) -> None:
    """The name is the key prefix: only letters, digits and ``_.:-``."""
    fleet, problems = build(f"redis_url: redis://r\nname: {name}\n")
    assert fleet is None
    assert problems == [f"config.yaml:2:7: global.fleet.name: {problem}"]


@pytest.mark.parametrize(
    ("size", "problem"),
    [("0", "must be at least 1, got 0"), ("true", "expected an integer, got a boolean")],
)
def test_a_size_is_a_whole_number_of_exporters(size: str, problem: str) -> None:
    """``size`` is an integer of at least one."""
    fleet, problems = build(f"redis_url: redis://r\nname: n\nsize: {size}\n")
    assert fleet is None
    assert problems == [f"config.yaml:3:7: global.fleet.size: {problem}"]


def test_unknown_keys_and_a_non_mapping_are_problems() -> None:
    """A misspelt key is named with a suggestion; a scalar is not a fleet."""
    _, problems = build("redis_url: redis://r\nname: n\nsise: 3\n")
    assert len(problems) == 1
    assert problems[0].startswith(
        'config.yaml:3:1: global.fleet.sise: unknown key "sise" (did you mean "size"?)'
    )
    fleet, problems = build("redis://r\n")
    assert fleet is None
    assert problems == ["config.yaml:1:1: global.fleet: expected a mapping, got a string"]


def test_url_problem_accepts_the_three_schemes() -> None:
    """Plain, TLS and unix-socket URLs, with or without credentials and a database."""
    for url in ("redis://r", "rediss://u:p@r:6380/2", "unix:///tmp/r.sock", " redis://r/ "):
        assert url_problem(url) is None
