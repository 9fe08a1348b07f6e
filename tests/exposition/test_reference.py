"""The fast render path against a reference rendering by prometheus_client, on random tables.

The table is driven by random operations (add, relabel, polls, failures, errors,
removal, expiry) with hostile IDs and labels; its renderer is given blocks of
three jobs, so pieces are cached, invalidated, moved and compacted, and running
jobs' durations are formatted two to a template.  After each step its page must
parse, through prometheus_client's own parser, to exactly what prometheus_client
renders from the same entries with ``GaugeMetricFamily`` and ``generate_latest``,
and its gzip form must decompress to the same bytes.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from exporter.exposition.jobseries import JobSeries
from exporter.exposition.lines import FAMILIES
from exporter.jobs.entry import JobView
from exporter.jobs.keys import Origin
from exporter.jobs.table import JobTable
from exporter.model import Snapshot, Status

V = TypeVar("V")
NOW = 1_700_000_000.0
HOSTILE = st.text(alphabet='ab7 "\\\n%{},=é\t', max_size=6)
SOURCES = st.sampled_from(["evo", "fs", 'td"\\%'])
# Few enough that operations keep hitting watched jobs, hostile enough to need escaping
# (and a ``%`` that must not reach the duration template unescaped).
IDS = st.sampled_from(["a", 'q"x', "b\\", "n\nl", "p%d", "%.3f", "é{", "z,=", "7", "t\tu"])
KEYS = st.tuples(SOURCES, IDS)
COUNT = st.none() | st.integers(min_value=0, max_value=2**60)
STAMP = st.none() | st.floats(min_value=1e9, max_value=2e9)
LABELS = st.lists(st.tuples(st.sampled_from(["team", "env", "owner"]), HOSTILE), max_size=3)
INFO = st.lists(st.tuples(st.sampled_from(["name", "format", "timezone"]), HOSTILE), max_size=2)


def unique(pairs: list[tuple[str, V]]) -> tuple[tuple[str, V], ...]:
    """Pairs with each name once, in name order."""
    return tuple(sorted(dict(pairs).items()))


snapshots = st.builds(
    Snapshot,
    status=st.sampled_from(list(Status)),
    vendor_status=HOSTILE,
    total_items=COUNT,
    remaining_items=COUNT,
    completed_items=COUNT,
    successful_items=COUNT,
    error_items=COUNT,
    created=STAMP,
    finished=STAMP,
    info=INFO.map(unique),
)
ORIGINS = st.sampled_from(Origin)
operations = st.one_of(
    st.tuples(st.just("add"), KEYS, st.sampled_from(["a1", "a2"]), LABELS.map(unique), ORIGINS),
    st.tuples(st.just("relabel"), KEYS, LABELS.map(unique), ORIGINS),
    st.tuples(st.just("success"), KEYS, snapshots, st.floats(0, 5000)),
    st.tuples(st.just("failure"), KEYS),
    st.tuples(
        st.just("errors"),
        KEYS,
        st.lists(st.tuples(HOSTILE, st.integers(0, 10**6)), max_size=3).map(unique),
    ),
    st.tuples(st.just("remove"), KEYS),
    st.tuples(st.just("expire"), st.floats(0, 10_000)),
)


def apply(table: JobTable, op: tuple[Any, ...]) -> None:
    """Run one random operation; those on unwatched jobs are skipped."""
    kind, *args = op
    if kind == "add":
        table.add(*args)
    elif kind == "expire":
        table.expire(NOW + args[0])
    elif args[0] not in table:
        return
    elif kind == "success":
        table.record_success(args[0], args[1], NOW + args[2])
    elif kind == "failure":
        table.record_failure(args[0])
    elif kind == "relabel":
        table.relabel(*args)
    elif kind == "errors":
        table.record_errors(args[0], args[1])
    else:
        table.remove(args[0])


def reference(entries: Iterable[JobView], now: float) -> Iterator[Metric]:
    """What the page should say, built from the entries' fields alone."""
    families = {name: GaugeMetricFamily(name, help_) for name, help_ in FAMILIES}
    watched: dict[str, int] = {}

    def add(metric: str, entry: JobView, value: float, /, **extra: str) -> None:
        labels = {"source": entry.key[0], "job_id": entry.key[1], **extra}
        families[metric].samples.append(Sample(metric, labels, float(value)))

    for e in entries:
        watched[e.key[0]] = watched.get(e.key[0], 0) + 1
        snap = e.snapshot
        if snap is not None:
            for name, value in (
                ("batchjob_total_items", snap.total_items),
                ("batchjob_remaining_items", snap.remaining_items),
                ("batchjob_completed_items", snap.completed_items),
                ("batchjob_successful_items", snap.successful_items),
                ("batchjob_error_items", snap.error_items),
                ("batchjob_created_timestamp_seconds", snap.created),
                ("batchjob_finished_timestamp_seconds", snap.finished),
            ):
                if value is not None:
                    add(name, e, value)
            for status in Status:
                add("batchjob_status", e, int(status is snap.status), status=status.value)
            start, end = e.duration_bounds()
            if start is not None:
                end = now if end is None else end
                add("batchjob_duration_seconds", e, round(max(end - start, 0.0), 3))
        for code, n in e.errors_by_code or ():
            add("batchjob_errors_by_code", e, n, code=code)
        info = {"api": e.api, "vendor_status": snap.vendor_status if snap else ""}
        info |= {"origin": e.origin} | dict(e.labels) | dict(snap.info if snap else ())
        add("batchjob_info", e, 1, **info)
        if e.poll_success is not None:
            add("batchjob_poll_success", e, int(e.poll_success))
        if e.last_success is not None:
            add("batchjob_last_poll_success_timestamp_seconds", e, e.last_success)
    yield from (f for f in families.values() if f.samples)
    if watched:
        w = GaugeMetricFamily(
            "batchjob_exporter_watched_jobs",
            "Jobs with series on this page, by source.",
            labels=["source"],
        )
        for source, n in sorted(watched.items()):
            w.add_metric([source], n)
        yield w


class Reference:
    """A prometheus_client collector of :func:`reference`."""

    def __init__(self, table: JobTable, now: float) -> None:
        self._table = table
        self._now = now

    def collect(self) -> Iterator[Metric]:
        """The reference families."""
        return reference(self._table, self._now)


def parsed(text: bytes) -> list[tuple[str, str, str, list[tuple[str, list[Any], float]]]]:
    """Families in page order (name, help, type) with their samples in sorted order."""
    return [
        (
            f.name,
            f.documentation,
            f.type,
            sorted((s.name, sorted(s.labels.items()), s.value) for s in f.samples),
        )
        for f in text_string_to_metric_families(text.decode())
    ]


def rendered_by_reference(table: JobTable, now: float) -> bytes:
    """The reference page, rendered by prometheus_client."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Reference(table, now))
    return generate_latest(registry)


@settings(max_examples=60, deadline=None)
@given(ops=st.lists(operations, max_size=40), scrapes=st.lists(st.floats(0, 9000), min_size=1))
def test_fast_path_parses_like_the_reference(
    ops: list[tuple[Any, ...]], scrapes: list[float]
) -> None:
    """After every operation the page parses exactly as prometheus_client's own rendering."""
    table = JobTable(retention=600)
    series = JobSeries(table, block_size=3, tick_chunk=2)
    for i, op in enumerate(ops):
        apply(table, op)
        now = NOW + scrapes[i % len(scrapes)]
        page = series.page(now)
        assert parsed(bytes(page)) == parsed(rendered_by_reference(table, now))
        assert gzip.decompress(b"".join(page.gzip())) == bytes(page)


def test_reference_sees_every_family() -> None:
    """The reference is not vacuous: a busy table yields every per-job family."""
    table = JobTable(retention=600)
    series = JobSeries(table)
    key = ("evo", "a")
    table.add(key, "a1", (("team", "t"),), Origin.API)
    snap = Snapshot(Status.RUNNING, "x", 1, 2, 3, 4, 5, created=NOW - 9, finished=NOW, info=())
    table.record_success(key, snap, NOW)
    table.record_errors(key, (("E1", 2),))
    names = [name for name, *_ in parsed(rendered_by_reference(table, NOW))]
    assert names == [*(name for name, _ in FAMILIES), "batchjob_exporter_watched_jobs"]
    assert parsed(series.render(NOW)) == parsed(rendered_by_reference(table, NOW))


def test_a_thinned_table_compacts_and_still_renders_like_the_reference() -> None:
    """Removing most jobs regroups the survivors into fewer blocks, with the same series."""
    table = JobTable(retention=600)
    series = JobSeries(table, block_size=3)
    keys = [("evo", f"j{i}") for i in range(30)]
    for i, key in enumerate(keys):
        table.add(key, "a1")
        table.record_success(key, Snapshot(Status.RUNNING, "x", total_items=i), NOW)
    # 5 families of cached pieces in 10 blocks; ticking durations; watched jobs
    assert len(series.page(NOW).parts) == 5 * (1 + 10) + 2 + 2
    for i, key in enumerate(keys):
        if i % 3:
            table.remove(key)  # one job left in each block
    page = series.page(NOW)
    assert len(page.parts) == 5 * (1 + 4) + 2 + 2  # regrouped into 4 blocks
    assert parsed(bytes(page)) == parsed(rendered_by_reference(table, NOW))


def test_block_size_and_tick_chunk_do_not_change_the_page() -> None:
    """Tiny blocks and duration chunks give the same bytes as the defaults."""
    table = JobTable(retention=60)
    default, tiny = JobSeries(table), JobSeries(table, block_size=2, tick_chunk=3)
    for i in range(11):
        table.add(("fs", f"j{i}"), "batch_import_job")
        snap = Snapshot(Status.RUNNING, "PROCESSING", created=NOW - i)
        table.record_success(("fs", f"j{i}"), snap, NOW)
    table.remove(("fs", "j4"))
    assert tiny.render(NOW + 1) == default.render(NOW + 1)
    # 5 families with lines, each a header and one piece per block (6 of 2, or 1), the
    # durations' header and templates (4 of 3, or 1), the watched-jobs header and line.
    assert len(tiny.page(NOW + 1).parts) == 5 * (1 + 6) + (1 + 4) + 2
    assert len(default.page(NOW + 1).parts) == 5 * (1 + 1) + (1 + 1) + 2
