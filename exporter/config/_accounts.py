"""A source's ``account``: the vendor account whose politeness sources share.

Sources naming one account share its Retry-After windows, credential holds,
backoff and rate cap (in one exporter always; across a fleet when
``global.fleet`` is set), so they must speak one API and give one budget.
"""

from __future__ import annotations

import re

from yaml.nodes import Node

from exporter.config._nodes import Fields, Walker, line_of, quote
from exporter.config.model import SourceConfig

# Source and account names: label values, short and of safe characters.
NAME = re.compile(r"[a-zA-Z0-9_.-]{1,64}")


def name_problem(text: str) -> str | None:
    """What is wrong with a source or account name, or ``None``."""
    if NAME.fullmatch(text):
        return None
    return f"{quote(text)} must be 1 to 64 of the characters a-z A-Z 0-9 _ . -"


def read_account(walker: Walker, node: Node, path: str) -> str | None:
    """An account name: as a source name, since it names the politeness shared."""
    text = walker.string(node, path)
    problem = None if text is None else name_problem(text)
    if problem is not None:
        walker.problem(node, path, problem)
        return None
    return text


def check_accounts(walker: Walker, placed: list[tuple[SourceConfig, Fields]]) -> None:
    """Sources sharing an account share one API and one budget: else a problem naming both."""
    first: dict[str, tuple[SourceConfig, Fields]] = {}
    for source, fields in placed:
        account = source.account_name
        seen = first.setdefault(account, (source, fields))
        other, other_fields = seen
        if other is source:
            continue
        where = fields.get("account") or fields.node
        line = line_of(other_fields.node)
        if source.api != other.api:
            message = (
                f"account {quote(account)} is also source {quote(other.name)}'s (line {line}), "
                f"of api {quote(other.api)}: sources sharing an account must have the same api"
            )
            walker.problem(where, fields.at("account"), message)
        elif source.max_requests_per_second != other.max_requests_per_second:
            message = (
                f"account {quote(account)} is also source {quote(other.name)}'s (line {line}), "
                f"with max_requests_per_second {other.max_requests_per_second}: sources sharing "
                "an account share one budget, so give them the same"
            )
            walker.problem(where, fields.at("account"), message)
