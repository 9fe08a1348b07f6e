"""The results as a table, and the issue's targets checked against them."""

from __future__ import annotations

from typing import Any

from bench import hostile

MB = 1024 * 1024


def _row(results: dict[str, Any], jobs: int, kind: str) -> dict[str, Any] | None:
    for size in results.get("scrapes", []):
        for row in size["rows"]:
            if row["jobs"] == jobs and row["kind"] == kind:
                found: dict[str, Any] = row
                return found
    return None


def _p50(results: dict[str, Any], jobs: int, kind: str, enc: str = "identity") -> float | None:
    row = _row(results, jobs, kind)
    if row is None or enc not in row or not row[enc].get("n"):
        return None
    value: float = row[enc]["p50_ms"]
    return value


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue: what it asks, what was measured, whether it holds."""
    out: list[dict[str, Any]] = []

    def check(name: str, measured: str, ok: bool) -> None:
        out.append({"target": name, "measured": measured, "ok": ok})

    exp, floor, naive = (_p50(results, 10_000, k) for k in ("exporter", "floor", "naive"))
    streamed = _p50(results, 10_000, "floor_streamed")
    if exp and floor:
        check("/metrics at 10k within 1.5x of the floor", f"{exp / floor:.2f}x", exp <= 1.5 * floor)
    if exp and streamed:
        ratio = f"{exp / streamed:.2f}x"
        check("... and of the stricter streamed floor", ratio, exp <= 1.5 * streamed)
    if exp and naive:
        check(">= 30x faster than naive at 10k", f"{naive / exp:.0f}x", naive >= 30 * exp)
    exp50 = _p50(results, 50_000, "exporter")
    if exp and exp50:
        check("50k no worse than 5x the 10k figure", f"{exp50 / exp:.1f}x", exp50 <= 5 * exp)
    row = _row(results, 10_000, "exporter")
    again = _p50(results, 10_000, "exporter", "identity_again")
    streamed_again = _p50(results, 10_000, "floor_streamed", "identity_again")
    if row and exp and again and streamed and streamed_again:
        # Against the streamed floor timed in the same turns: the machine's mood cancels out.
        served = row["gzip"].get("encoding") == "gzip"
        before, after = exp / streamed, again / streamed_again
        ok = served and after <= 1.25 * before
        text = (
            f"gzip {'served' if served else 'NOT served'}; plain after/before the gzip scrapes "
            f"{after / before:.2f}x (vs the streamed floor {before:.2f}x, then {after:.2f}x)"
        )
        check("gzip served when asked, plain path not slowed (<= 1.25x)", text, ok)
    polls = results.get("polls")
    if polls:
        rate, want = polls["polls_per_s"], polls["target_polls_per_s"]
        check(
            "10k jobs at 15 s sustained (>= 98% of 667 polls/s)",
            f"{rate:.0f}/s",
            rate >= 0.98 * want,
        )
        cores = polls["exporter_cpu_cores"]
        check("exporter under half a core while polling", f"{cores:.2f} cores", cores < 0.5)
        late = polls["lateness_p99_s"]
        check("lateness p99 < 1 s", f"{late * 1000:.0f} ms", late < 1.0)
    for mem in results.get("memory", []):
        if mem["jobs"] == 10_000:
            rss = mem["rss_mb"]
            check("RSS <= 100 MB at 10k jobs", f"{rss:.0f} MB", rss <= 100)
    churn = results.get("churn")
    if churn:
        growth, start = churn["rss_growth_mb"], churn["rss_start_mb"]
        ok = growth <= max(5.0, 0.05 * start)
        text = f"{growth:+.1f} MB ({churn['rss_slope_mb_per_min']:+.2f} MB/min)"
        check("RSS flat over the churn run (growth <= 5%)", text, ok)
    out += hostile.targets(results)
    return out


def _ms(summary: dict[str, Any] | None) -> str:
    if not summary or not summary.get("n"):
        return f"{'-':>17}"
    return f"{summary['p50_ms']:8.2f} {summary['p99_ms']:8.2f}"


def _polling(polls: dict[str, Any] | None) -> list[str]:
    """The polling run's lines."""
    if not polls:
        return []
    out = [
        f"Polling {polls['jobs']} jobs every {polls['interval_s']:g} s for "
        f"{polls['window_s']:.0f} s: {polls['polls_per_s']:.0f} polls/s "
        f"(wanted {polls['target_polls_per_s']:.0f}), lateness p50 "
        f"{polls['lateness_p50_s'] * 1000:.0f} ms p99 {polls['lateness_p99_s'] * 1000:.0f} ms, "
        f"exporter {polls['exporter_cpu_cores']:.2f} cores = "
        f"{polls['exporter_cpu_s_per_1000_polls']:.2f} CPU s per 1000 polls, "
        f"simulator {polls['simulator_cpu_cores']:.2f} cores"
    ]
    gz = polls.get("scrape_gzip_ms")
    if gz:
        # Every job running, so every block is re-joined and re-compressed per scrape.
        out.append(
            f"  meanwhile a gzip scrape every 15 s (aiohttp client, every job running): "
            f"p50 {gz['p50']:.0f} ms, max {gz['max']:.0f} ms"
        )
    return out


def table(results: dict[str, Any]) -> str:
    """Every section as text."""
    lines: list[str] = []
    add = lines.append
    for size in results.get("scrapes", []):
        client = size["rows"][0].get("client", "?")
        add(f"/metrics at {size['jobs']} jobs: p50 and p99 ms end to end over HTTP ({client})")
        add(
            f"  {'server':14} {'plain p50':>9} {'p99':>8} {'gzip p50':>9} {'p99':>8}"
            f" {'again p50':>9} {'p99':>8} {'page MB':>8} {'gzip MB':>8}"
            f" {'CPU ms':>7} {'set-up s':>9} {'RSS MB':>7}"
        )
        for row in size["rows"]:
            plain, gz = row.get("identity", {}), row.get("gzip", {})
            add(
                f"  {row['kind']:14} {_ms(plain):>18} {_ms(gz):>18}"
                f" {_ms(row.get('identity_again')):>18}"
                f" {plain.get('bytes', 0) / MB:8.2f} {gz.get('bytes', 0) / MB:8.2f}"
                f" {plain.get('server_cpu_ms', 0):7.1f} {row['setup_s']:9.2f}"
                f" {row['memory_mb']['rss']:7.0f}"
            )
        jobs = size["jobs"]
        exp, floor, naive, streamed = (
            _p50(results, jobs, k) for k in ("exporter", "floor", "naive", "floor_streamed")
        )
        if exp and floor and naive and streamed:
            ratios = f"exporter/floor {exp / floor:.2f}x (streamed floor {exp / streamed:.2f}x)"
            add(f"  {ratios}, naive/exporter {naive / exp:.0f}x (plain p50)")
        if "same_data_check" in size:
            c = size["same_data_check"]
            add(
                f"  same data: {c['exporter_samples']} exporter samples, "
                f"{c['naive_samples']} naive, {c['differ']} differ"
            )
        add("")
    for live in results.get("live", []):
        plain, gz = live["plain"], live["gzip"]
        add(
            f"In-process render at {live['jobs']} jobs, all {live['running']} running ones just "
            f"polled: plain {plain['static_ms']:.1f} -> {plain['after_polls_ms']:.1f} ms, gzip "
            f"{gz['static_ms']:.1f} -> {gz['after_polls_ms']:.1f} ms; "
            f"{live['record_poll_us']:.0f} us to record a poll"
        )
    sim = results.get("simulator")
    if sim:
        add(
            f"Simulator flat out on loopback: {sim['requests_per_s']:.0f} requests/s "
            f"({sim['workers']} connections; simulator {sim['simulator_cpu_cores']:.2f} cores, "
            f"client {sim['client_cpu_cores']:.2f} cores)"
        )
    lines += _polling(results.get("polls"))
    for mem in results.get("memory", []):
        add(
            f"Memory at {mem['jobs']} jobs (all polled, scraped): RSS {mem['rss_mb']:.0f} MB, "
            f"peak {mem['peak_rss_mb']:.0f} MB; ready in {mem['startup_s']:.2f} s"
        )
    churn = results.get("churn")
    if churn:
        add(
            f"Churn {churn['duration_s']:.0f} s ({churn['registered']} jobs registered, "
            f"{churn['watched_min']}-{churn['watched_max']} watched): RSS "
            f"{churn['rss_start_mb']:.1f} -> {churn['rss_end_mb']:.1f} MB after "
            f"{churn['warmup_s']:.0f} s warm-up, max {churn['rss_max_mb']:.1f}, "
            f"slope {churn['rss_slope_mb_per_min']:+.2f} MB/min"
        )
    start = results.get("startup")
    if start:
        runs = ", ".join(f"{t:.2f}" for t in start["runs"])
        add(f"Start-up to ready with {start['jobs']} jobs: best {start['best_s']:.2f} s ({runs})")
    lines += hostile.lines(results)
    checks = results.get("targets", [])
    if checks:
        add("")
        add("Targets")
        for t in checks:
            add(f"  [{'PASS' if t['ok'] else 'MISS'}] {t['target']}: {t['measured']}")
    return "\n".join(lines)
