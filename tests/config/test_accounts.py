"""A source's ``account``: sources sharing one speak one API and give one budget."""

from __future__ import annotations

import textwrap

import pytest

from exporter.config import ConfigError, parse_config
from exporter.vendors import REGISTRY


def sources(*entries: str) -> str:
    """A config of Fullstory sources, each entry the lines after its name (indented by 4)."""
    out = ["sources:"]
    for n, extra in enumerate(entries):
        out.append(f"  - name: s{n}\n    api: batch_import_job\n    base_url: https://x.example/")
        if extra:
            out.append(textwrap.indent(textwrap.dedent(extra).strip(), "    "))
    return "\n".join(out) + "\n"


def problems(text: str) -> list[str]:
    """Every problem of a config, or ``[]``."""
    try:
        parse_config(text, "config.yaml", REGISTRY)
    except ConfigError as exc:
        return list(exc.problems)
    return []


def test_the_account_defaults_to_the_source_name() -> None:
    """Without ``account`` each source is an account of its own, named like it."""
    config = parse_config(sources("", "account: shared"), "config.yaml", REGISTRY)
    assert [s.account_name for s in config.sources] == ["s0", "shared"]
    assert config.sources[0].account == ""


def test_sources_of_one_account_with_one_api_and_budget_are_fine() -> None:
    """Same api, same max_requests_per_second: no problem."""
    rate = "account: prod\nmax_requests_per_second: 5"
    config = parse_config(sources(rate, rate), "config.yaml", REGISTRY)
    assert {s.account_name for s in config.sources} == {"prod"}


def test_sources_of_one_account_must_give_one_budget() -> None:
    """A second source of the account with another budget is a problem naming the first."""
    found = problems(sources("account: prod\nmax_requests_per_second: 5", "account: prod"))
    assert found == [
        'config.yaml:10:14: sources[1].account: account "prod" is also source "s0"\'s (line 2), '
        "with max_requests_per_second 5.0: sources sharing an account share one budget, so "
        "give them the same"
    ]


def test_sources_of_one_account_must_speak_one_api() -> None:
    """An account is one vendor's: another API under it is a problem naming both."""
    text = sources("account: prod") + (
        "  - name: td\n    api: report_job\n    base_url: https://x.example/\n"
        "    report_type: calls\n    account: prod\n"
    )
    assert problems(text) == [
        'config.yaml:10:14: sources[1].account: account "prod" is also source "s0"\'s '
        '(line 2), of api "batch_import_job": sources sharing an account must have the same api'
    ]


@pytest.mark.parametrize(
    ("value", "message"), [("a b", '"a b" must be 1 to 64'), ("[1]", "expected a string")]
)
def test_an_account_is_a_name(value: str, message: str) -> None:
    """An account is named like a source."""
    found = problems(sources(f"account: {value}"))
    assert len(found) == 1
    assert message in found[0]
