"""The job table: what its methods record, what its listeners hear, and who may change it."""

from __future__ import annotations

import ast
from dataclasses import fields
from pathlib import Path

from exporter.jobs.entry import JobEntry, JobView
from exporter.jobs.keys import JobKey, Origin
from exporter.jobs.table import JobTable
from exporter.model import Snapshot, Status
from exporter.state.records import JobRecord

NOW = 1_700_000_000.0
KEY = ("evo", "r")
RUNNING = Snapshot(Status.RUNNING, "isCompleted=false", remaining_items=5)
DONE = Snapshot(Status.COMPLETED, "isCompleted=true", remaining_items=0)


class Recorder:
    """A table listener that writes down what it hears."""

    def __init__(self) -> None:
        self.heard: list[tuple[str, JobKey]] = []

    def changed(self, entry: JobView) -> None:
        """Note a change."""
        self.heard.append(("changed", entry.key))

    def removed(self, key: JobKey) -> None:
        """Note a removal."""
        self.heard.append(("removed", key))


def listened(retention: float = 60) -> tuple[JobTable, Recorder]:
    """A table with a recording listener."""
    table = JobTable(retention=retention)
    recorder = Recorder()
    table.subscribe(recorder)
    return table, recorder


def test_a_new_job_has_its_origin_and_own_labels_and_no_state() -> None:
    """add() keeps origin apart from the labels; nothing is known before the first poll."""
    table = JobTable(retention=60)
    entry = table.add(KEY, "evocalize_batch_report", (("team", "growth"),), Origin.DIR)
    assert table.get(KEY) is entry
    assert (entry.origin, entry.labels, entry.snapshot, entry.poll_success) == (
        Origin.DIR,
        (("team", "growth"),),
        None,
        None,
    )
    assert table.add(("evo", "other"), "evocalize_batch_report").origin is Origin.CONFIG


def test_listeners_hear_every_change_and_removal_in_order() -> None:
    """Adds, polls, errors, relabels and removals each reach every listener once."""
    table, recorder = listened()
    other = Recorder()
    table.subscribe(other)
    table.add(KEY, "evocalize_batch_report")
    table.record_success(KEY, RUNNING, NOW)
    table.record_errors(KEY, (("E", 1),))
    table.relabel(KEY, (("team", "t"),), Origin.API)
    table.remove(KEY)
    table.remove(KEY)  # not watched any more: nothing to tell
    assert recorder.heard == [
        ("changed", KEY),
        ("changed", KEY),
        ("changed", KEY),
        ("changed", KEY),
        ("removed", KEY),
    ]
    assert other.heard == recorder.heard


def test_re_adding_a_key_starts_it_over() -> None:
    """A watched key added again is removed first (listeners hear it) and starts fresh."""
    table, recorder = listened()
    table.add(KEY, "evocalize_batch_report")
    table.record_success(KEY, RUNNING, NOW)
    entry = table.add(KEY, "batch_import_job", (), Origin.API)
    assert (entry.api, entry.snapshot, table.count("evo")) == ("batch_import_job", None, 1)
    assert recorder.heard[-2:] == [("removed", KEY), ("changed", KEY)]


def test_failures_count_up_and_a_success_resets_them() -> None:
    """record_failure returns the failures in a row; only the first one changes what shows."""
    table, recorder = listened()
    table.add(KEY, "evocalize_batch_report")
    assert [table.record_failure(KEY) for _ in range(3)] == [1, 2, 3]
    assert recorder.heard == [("changed", KEY), ("changed", KEY)]  # add, poll_success -> 0
    entry = table.record_success(KEY, RUNNING, NOW)
    assert (entry.poll_success, entry.last_success) == (True, NOW)
    assert table.record_failure(KEY) == 1
    assert table.get(KEY) is not None
    assert entry.poll_success is False


def test_not_found_counts_404s_in_a_row_until_a_good_poll() -> None:
    """not_found returns the streak, unseen by listeners; a success starts it over."""
    table, recorder = listened()
    table.add(KEY, "evocalize_batch_report")
    assert [table.not_found(KEY), table.not_found(KEY)] == [1, 2]
    table.record_success(KEY, RUNNING, NOW)
    assert table.not_found(KEY) == 1
    assert recorder.heard == [("changed", KEY), ("changed", KEY)]


def test_a_success_records_first_sightings_and_the_expiry_of_a_finished_job() -> None:
    """first_seen and seen_finished are set once; a finished job expires after the retention."""
    table = JobTable(retention=60)
    table.add(KEY, "evocalize_batch_report")
    table.record_success(KEY, RUNNING, NOW)
    table.record_success(KEY, DONE, NOW + 10)
    entry = table.record_success(KEY, DONE, NOW + 20)
    assert (entry.first_seen, entry.seen_finished, entry.expires_at) == (NOW, NOW + 10, NOW + 70)
    assert entry.finished is True
    assert table.expire(NOW + 69) == []
    assert table.expire(NOW + 70) == [KEY]
    assert KEY not in table


def test_restore_puts_back_a_saved_state_and_its_expiry() -> None:
    """A restored job has the saved values, is told to listeners once, and still expires."""
    table, recorder = listened()
    saved = JobRecord(
        "evo", "r", "evocalize_batch_report", Origin.API, (("team", "t"),), NOW - 50, NOW - 40,
        DONE, (("E", 2),), True, NOW - 40, NOW + 20,
    )  # fmt: skip
    entry = table.restore(KEY, saved.api, saved.labels, saved.origin, saved)
    assert (entry.origin, entry.labels, entry.snapshot, entry.errors_by_code) == (
        Origin.API,
        (("team", "t"),),
        DONE,
        (("E", 2),),
    )
    assert (entry.first_seen, entry.seen_finished, entry.last_success) == (
        NOW - 50,
        NOW - 40,
        NOW - 40,
    )
    assert recorder.heard == [("changed", KEY)]
    assert table.expire(NOW + 20) == [KEY]


def test_counts_by_source_and_configured_sources() -> None:
    """count() and counts follow adds and removals; sources are what the config names."""
    table = JobTable(retention=60)
    table.set_sources(frozenset({"evo", "idle"}))
    table.add(("evo", "a"), "evocalize_batch_report")
    table.add(("evo", "b"), "evocalize_batch_report")
    table.add(("old", "c"), "batch_import_job")
    table.remove(("old", "c"))
    assert (table.count("evo"), table.count("old"), dict(table.counts)) == (2, 0, {"evo": 2})
    assert table.sources == frozenset({"evo", "idle"})
    assert len(table) == 2


def _assigned_entry_fields(path: Path, names: frozenset[str]) -> list[str]:
    """``file:line field`` for every assignment to ``<not self>.<field>`` in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            for t in target.elts if isinstance(target, ast.Tuple) else [target]:
                if (
                    isinstance(t, ast.Attribute)
                    and t.attr in names
                    and not (isinstance(t.value, ast.Name) and t.value.id == "self")
                ):
                    found.append(f"{path}:{t.lineno} {t.attr}")
    return found


def test_only_the_table_assigns_a_job_entry_field() -> None:
    """Outside exporter/jobs no code, tests and bench included, sets an entry's field."""
    root = Path(__file__).parents[2]
    owner = root / "exporter" / "jobs"
    names = frozenset(f.name for f in fields(JobEntry))
    scanned = [
        path
        for folder in ("exporter", "tests", "bench")
        for path in sorted((root / folder).rglob("*.py"))
        if owner not in path.parents
    ]
    assert {path.relative_to(root).parts[0] for path in scanned} == {"exporter", "tests", "bench"}
    assert Path(__file__) in scanned  # tests/jobs too: a fixture goes through the table
    offenders = [hit for path in scanned for hit in _assigned_entry_fields(path, names)]
    assert offenders == []


def test_the_guard_finds_every_form_of_assignment(tmp_path: Path) -> None:
    """Plain, tuple, augmented and annotated assignments are found; ``self.`` and others not."""
    path = tmp_path / "offender.py"
    path.write_text(
        "entry.snapshot = None\n"
        "entry.poll_success, other = True, 1\n"
        "entry.failures += 1\n"
        "entry.labels: tuple[str, ...] = ()\n"
        "self.snapshot = None\n"
        "entry.unrelated = 1\n",
        encoding="utf-8",
    )
    names = frozenset(f.name for f in fields(JobEntry))
    assert _assigned_entry_fields(path, names) == [
        f"{path}:1 snapshot",
        f"{path}:2 poll_success",
        f"{path}:3 failures",
        f"{path}:4 labels",
    ]
