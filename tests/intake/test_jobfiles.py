"""Job files: the YAML and text formats parsed, and their problems named by line."""

from __future__ import annotations

import pytest

from exporter.intake.jobfiles import DirJob, parse_job_file

SOURCES = frozenset({"fs", "evo", "td"})


def parse(name: str, text: str) -> tuple[list[DirJob], list[str]]:
    """Parse a file with the three test sources."""
    return parse_job_file(name, text, SOURCES)


def test_yaml_lists_ids_and_ids_with_labels() -> None:
    """A YAML file maps sources to jobs shaped like the config's jobs: list."""
    text = "fs: [a, 007, a/../b, {id: b, labels: {team: growth, n: 1}}]\nevo:\n  - x\n"
    jobs, problems = parse("jobs.yaml", text)
    assert problems == []
    assert jobs == [
        DirJob("fs", "a"),
        DirJob("fs", "007"),
        DirJob("fs", "a/../b"),
        DirJob("fs", "b", (("team", "growth"), ("n", "1"))),
        DirJob("evo", "x"),
    ]


def test_yml_suffix_and_empty_yaml_are_accepted() -> None:
    """.yml is YAML too; an empty document or a source with no value lists nothing."""
    assert parse("a.yml", "td: [r]\n") == ([DirJob("td", "r")], [])
    assert parse("a.yaml", "") == ([], [])
    assert parse("a.yaml", "---\n") == ([], [])
    assert parse("a.yaml", "fs:\n") == ([], [])


def test_txt_lists_one_source_and_id_a_line() -> None:
    """Blank lines and comments are ignored; an ID is any run of non-blank characters."""
    text = "# header\n\nfs a/../b\n  evo  abd123=   # trailing comment\ntd #7\r\nfs x%2Fy\n"
    jobs, problems = parse("jobs.txt", text)
    assert problems == []
    assert jobs == [
        DirJob("fs", "a/../b"),
        DirJob("evo", "abd123="),
        DirJob("td", "#7"),
        DirJob("fs", "x%2Fy"),
    ]


def test_txt_problems_name_the_line_and_skip_only_that_line() -> None:
    """Each bad line is a problem with its number; the good lines still count."""
    long_id = "x" * 257
    text = f"fs a\nfs\nfs a b\nnope a\nfs {long_id}\nfs a\u0007b\nfs a\nfs ok\n"
    jobs, problems = parse("j.txt", text)
    assert jobs == [DirJob("fs", "a"), DirJob("fs", "ok")]
    assert problems == [
        "j.txt:2: expected SOURCE JOB_ID, got 1 words",
        "j.txt:3: expected SOURCE JOB_ID, got 3 words",
        'j.txt:4: unknown source "nope" (known: evo, fs, td)',
        "j.txt:5: job ID is 257 characters long, at most 256",
        'j.txt:6: job ID "a\\u0007b" contains a control character',
        'j.txt:7: duplicate job ID "a" (first listed at line 1)',
    ]


def test_yaml_problems_name_the_line_and_skip_only_that_entry() -> None:
    """Unknown sources and bad IDs are skipped, bad labels dropped, each with its line."""
    text = (
        "fs:\n"
        "  - a\n"
        "  - ''\n"
        '  - "a\\tb"\n'
        "  - {id: c, labels: {origin: x}}\n"
        "  - a\n"
        "nope: [z]\n"
        "evo: [y]\n"
    )
    jobs, problems = parse("j.yaml", text)
    assert jobs == [DirJob("fs", "a"), DirJob("fs", "c"), DirJob("evo", "y")]
    assert problems == [
        "j.yaml:3: fs[1]: must not be empty",
        'j.yaml:4: fs[2]: job ID "a\\tb" contains a control character',
        "j.yaml:5: fs[3].labels.origin: label origin is the exporter's own (reserved: api,"
        " code, format, job_id, name, origin, source, status, timezone, vendor_status)",
        'j.yaml:6: fs[4]: duplicate job ID "a" (first listed at line 2)',
        'j.yaml:7: unknown source "nope" (known: evo, fs, td)',
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "fs: [a, b\n",
            "j.yaml:2: invalid YAML: expected ',' or ']', but got '<stream end>'"
            " (while parsing a flow sequence)",
        ),
        (
            "fs: [a]\n\tevo: [b]\n",
            "j.yaml:2: invalid YAML: found character '\\t' that cannot start any token"
            " (while scanning for the next token)",
        ),
        ("fs: [a]\nx: \x07\n", "j.yaml:2: invalid YAML: character #x0007"),
        ("- fs\n- a\n", "j.yaml:1: expected a mapping of sources to jobs, got a list"),
        ("fs: " + "[" * 5000 + "]" * 5000, "j.yaml:1: invalid YAML: nested too deeply"),
        (
            "--- {}\n--- {}\n",
            "j.yaml:2: invalid YAML: but found another document"
            " (expected a single document in the stream)",
        ),
    ],
)
def test_unusable_yaml_is_one_problem_and_no_jobs(text: str, problem: str) -> None:
    """A file that is not a YAML mapping gives no jobs and one problem with its line."""
    assert parse("j.yaml", text) == ([], [problem])


def test_problems_never_quote_the_file_beyond_the_offending_id() -> None:
    """A syntax error or a bad label does not echo the file's other text."""
    _, problems = parse("j.yaml", "fs: [{id: a, labels: {team: hunter2}}, 'hunter2\n")
    _, more = parse("j.yaml", "fs: [{id: a, labels: {team: [hunter2]}}]\n")
    assert problems == [
        "j.yaml:2: invalid YAML: found unexpected end of stream (while scanning a quoted scalar)"
    ]
    assert more == ["j.yaml:1: fs[0].labels.team: expected a string, got a list"]


def test_a_job_file_needs_a_known_suffix() -> None:
    """Only .yaml, .yml and .txt are job files."""
    with pytest.raises(ValueError, match="not a job file"):
        parse_job_file("jobs.json", "{}", SOURCES)
