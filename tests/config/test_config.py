"""The YAML config loader: resolved values, and every mistake reported with its place."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yaml.nodes import Node

import exporter.config
from exporter.config import (
    RESERVED_LABELS,
    Authorization,
    BasicAuth,
    Config,
    ConfigError,
    GlobalConfig,
    Header,
    JobConfig,
    OAuth2,
    RequestSignature,
    Secret,
    TLSConfig,
    label_name_problem,
    load_config,
    parse_config,
    reserved_labels,
)
from exporter.model import ErrorsPage, Response, Snapshot, Status
from exporter.vendors import REGISTRY as VENDORS
from exporter.vendors.base import ApiSpec
from tests.polling.test_client_tls import issue, make_ca, openssl

SECRET = "hunter2"  # noqa: S105 - a fake secret that no message may show


def _parse_job(response: Response) -> Snapshot:
    """Stand in for a vendor parser: the loader never calls it."""
    return Snapshot(Status.UNKNOWN, str(response.status))


def _parse_errors(response: Response) -> ErrorsPage:
    """Stand in for an errors-page parser: the loader never calls it."""
    return ErrorsPage((), None)


REGISTRY: dict[str, ApiSpec] = {
    "evocalize_batch_report": ApiSpec(
        name="evocalize_batch_report",
        vendor="evocalize",
        default_path="management/v1/items/report/{id}",
        parse_job=_parse_job,
        default_errors_path="management/v1/items/report/{id}/errors",
        parse_errors_page=_parse_errors,
    ),
    "batch_import_job": ApiSpec(
        name="batch_import_job",
        vendor="fullstory",
        default_path="v2/events/batch/{id}",
        parse_job=_parse_job,
    ),
    "report_job": ApiSpec(
        name="report_job",
        vendor="talkdesk",
        default_path="data/reports/{report_type}/jobs/{id}",
        parse_job=_parse_job,
        path_params=("report_type",),
    ),
}


def parse(text: str) -> Config:
    """Parse dedented YAML with the fake registry."""
    return parse_config(textwrap.dedent(text), "config.yaml", REGISTRY)


def problems(text: str) -> list[str]:
    """Return the problems of a config that must be rejected."""
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return list(caught.value.problems)


def one_problem(text: str) -> str:
    """Return the single problem of a config that must be rejected."""
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def source(extra: str = "", api: str = "batch_import_job") -> str:
    """Return a config with one valid source plus ``extra`` keys (from line 5, column 5)."""
    body = textwrap.indent(textwrap.dedent(extra), "    ")
    return (
        f"sources:\n  - name: src\n    api: {api}\n    base_url: https://api.example.com/\n{body}"
    )


@pytest.fixture
def secret_file(tmp_path: Path) -> str:
    """Return the path of a readable secret file holding SECRET."""
    path = tmp_path / "token"
    path.write_text(SECRET + "\n", encoding="utf-8")
    return str(path)


# --- a complete file --------------------------------------------------------


def test_full_config_resolves_every_field(
    tmp_path: Path, secret_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every documented key lands in the model, with durations in seconds."""
    monkeypatch.setenv("TD_SECRET", SECRET)
    ca = make_ca(tmp_path, "ca")
    leaf = issue(tmp_path, ca, "cert")
    leaf.key.rename(tmp_path / "key.pem")
    config = parse(
        f"""\
        global:
          poll_interval: 1m
          request_timeout: 5s
          max_concurrency: 4
          finished_job_retention: 2h
        sources:
          - name: evo
            api: evocalize_batch_report
            base_url: https://api.example.com
            path: /management/v2/report/{{id}}
            errors_path: management/v2/report/{{id}}/errors
            errors_page_token_param: next
            max_requests_per_second: 5
            poll_interval: 15s
            authorization: {{credentials_file: {secret_file}}}
            http_headers:
              X-Evocalize-Client-Key: {{files: [{secret_file}]}}
              X-Evocalize-Client-Key-Id: {{values: [my-id], secrets: [inline]}}
            tls_config:
              ca_file: {tmp_path}/ca.pem
              cert_file: {tmp_path}/cert.pem
              key_file: {tmp_path}/key.pem
              server_name: api.internal
              insecure_skip_verify: true
              min_version: TLS12
            jobs:
              - 7fb1c2
              - id: abd123=
                labels: {{team: growth}}
          - name: fs
            api: batch_import_job
            base_url: http://fs.example.com:8080/api/
            basic_auth: {{username: u, password: {SECRET}}}
            max_requests_per_second: 0.5
          - name: td
            api: report_job
            base_url: https://td.example.com/
            report_type: calls
            oauth2:
              client_id: id
              client_secret_env: TD_SECRET
              token_url: https://id.example.com/oauth/token
              scopes: [a, b]
              endpoint_params: {{audience: x}}
        """
    )
    assert config.global_ == GlobalConfig(
        poll_interval=60.0, request_timeout=5.0, max_concurrency=4, finished_job_retention=7200.0
    )
    evo, fs, td = config.sources
    assert evo.name == "evo"
    assert evo.api == "evocalize_batch_report"
    assert evo.base_url == "https://api.example.com/"
    assert evo.path == "management/v2/report/{id}"
    assert evo.errors_path == "management/v2/report/{id}/errors"
    assert evo.errors_page_token_param == "next"  # noqa: S105 - a parameter name
    assert evo.max_requests_per_second == 5.0
    assert evo.poll_interval == 15.0
    assert evo.authorization == Authorization("Bearer", Secret(file=secret_file))
    assert evo.http_headers == (
        Header("X-Evocalize-Client-Key", secrets=(Secret(file=secret_file),)),
        Header("X-Evocalize-Client-Key-Id", values=("my-id",), secrets=(Secret(inline="inline"),)),
    )
    assert evo.tls_config == TLSConfig(
        ca_file=f"{tmp_path}/ca.pem",
        cert_file=f"{tmp_path}/cert.pem",
        key_file=f"{tmp_path}/key.pem",
        server_name="api.internal",
        insecure_skip_verify=True,
        min_version="TLS12",
    )
    assert evo.jobs == (JobConfig("7fb1c2"), JobConfig("abd123=", (("team", "growth"),)))
    assert fs.base_url == "http://fs.example.com:8080/api/"
    assert fs.basic_auth == BasicAuth("u", Secret(inline=SECRET))
    assert fs.max_requests_per_second == 0.5
    assert fs.poll_interval == 60.0
    assert td.path == "data/reports/{report_type}/jobs/{id}"
    assert td.path_params == (("report_type", "calls"),)
    assert td.oauth2 == OAuth2(
        client_id="id",
        client_secret=Secret(env="TD_SECRET"),
        token_url="https://id.example.com/oauth/token",  # noqa: S106 - a URL
        scopes=("a", "b"),
        endpoint_params=(("audience", "x"),),
    )
    assert td.errors_path is None


def test_minimal_source_gets_every_default() -> None:
    """A source with only name, api and base_url takes the spec's paths and global defaults."""
    config = parse(source(api="evocalize_batch_report"))
    assert config.global_ == GlobalConfig()
    (src,) = config.sources
    assert src.path == "management/v1/items/report/{id}"
    assert src.errors_path == "management/v1/items/report/{id}/errors"
    assert src.errors_page_token_param == "pageToken"  # noqa: S105 - a parameter name
    assert src.poll_interval == 30.0
    assert src.jobs == ()
    assert src.authorization is None
    assert src.basic_auth is None
    assert src.oauth2 is None
    assert src.tls_config is None
    assert src.max_requests_per_second is None


def test_source_poll_interval_inherits_the_global_one() -> None:
    """Without its own poll_interval a source polls at the global one."""
    config = parse("global: {poll_interval: 2m}\n" + source())
    assert config.sources[0].poll_interval == 120.0


def test_null_sections_mean_defaults() -> None:
    """An empty global: or jobs: is the same as leaving it out."""
    config = parse("global:\n" + source("jobs:\npoll_interval: ~\n"))
    assert config.global_ == GlobalConfig()
    assert config.sources[0].jobs == ()
    assert config.sources[0].poll_interval == 30.0


def test_zero_retention_is_allowed() -> None:
    """finished_job_retention: 0s drops a finished job's series at once."""
    config = parse("global: {finished_job_retention: 0s}\n" + source())
    assert config.global_.finished_job_retention == 0.0


def test_load_config_reads_the_file(tmp_path: Path) -> None:
    """load_config reads and parses a file from disk."""
    path = tmp_path / "config.yaml"
    path.write_text(source("jobs: [a]\n"), encoding="utf-8")
    assert load_config(str(path), REGISTRY).sources[0].jobs == (JobConfig("a"),)


def test_relative_secret_files_are_resolved_next_to_the_config(tmp_path: Path) -> None:
    """As in Prometheus, a relative file name is relative to the config file's directory."""
    (tmp_path / "token").write_text(SECRET, encoding="utf-8")
    path = tmp_path / "config.yaml"
    path.write_text(source("authorization: {credentials_file: token}\n"), encoding="utf-8")
    config = load_config(str(path), REGISTRY)
    assert config.sources[0].authorization == Authorization(
        "Bearer", Secret(file=str(tmp_path / "token"))
    )


def test_public_names_are_exported() -> None:
    """The package re-exports the loader, the errors, durations, the model and job lists."""
    for name in ("ConfigError", "load_config", "parse_config", "parse_duration", "SourceConfig"):
        assert hasattr(exporter.config, name)
    # What the watch dir reads its job files with, so it needs none of the private modules.
    for name in ("Walker", "build_jobs", "describe", "is_null", "quote", "RESERVED_LABELS"):
        assert name in exporter.config.__all__
    assert set(exporter.config.__all__) <= set(dir(exporter.config))


# --- how problems are reported -----------------------------------------------


def test_problem_names_file_line_column_and_path() -> None:
    """A bad value is reported as FILE:LINE:COL: dotted.path: message."""
    assert one_problem(source("poll_interval: 3x\n")) == (
        'config.yaml:5:20: sources[0].poll_interval: invalid duration "3x": '
        'unknown unit "x" (use one of y, w, d, h, m, s, ms)'
    )


def test_every_problem_is_reported_in_file_order() -> None:
    """All mistakes come in one error, sorted by line."""
    found = problems(
        """\
        global:
          max_concurrency: 0
          poll_interval: 30
        sources:
          - name: a b
            api: nope
            base_url: ftp://x/
        """
    )
    assert [problem.split(": ")[1] for problem in found] == [
        "global.max_concurrency",
        "global.poll_interval",
        "sources[0].name",
        "sources[0].api",
        "sources[0].base_url",
    ]
    assert [int(problem.split(":")[1]) for problem in found] == [2, 3, 5, 6, 7]


def test_config_error_str_joins_the_problems() -> None:
    """str(ConfigError) is one problem per line."""
    error = ConfigError(["a", "b"])
    assert isinstance(error, Exception)
    assert error.problems == ("a", "b")
    assert str(error) == "a\nb"


def test_load_config_names_the_path_in_problems(tmp_path: Path) -> None:
    """load_config's problems start with the path it was given."""
    path = tmp_path / "config.yaml"
    path.write_text(source("poll_interval: 500ms\n"), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(str(path), REGISTRY)
    assert caught.value.problems == (
        f"{path}:5:20: sources[0].poll_interval: must be at least 1s, got 500ms",
    )


# --- the file as a whole -------------------------------------------------------


def test_missing_file_is_one_problem(tmp_path: Path) -> None:
    """A file that cannot be read is one problem naming it, not a traceback."""
    path = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(str(path), REGISTRY)
    assert caught.value.problems == (f"{path}: cannot read: No such file or directory",)


def test_file_that_is_not_utf8_is_one_problem(tmp_path: Path) -> None:
    """Invalid UTF-8 is reported at its line and byte column."""
    path = tmp_path / "config.yaml"
    path.write_bytes(b"sources:\n  - name: \xff\n")
    with pytest.raises(ConfigError) as caught:
        load_config(str(path), REGISTRY)
    assert caught.value.problems == (f"{path}:2:11: not valid UTF-8",)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n", "~\n"])
def test_empty_file_is_one_problem(text: str) -> None:
    """A file with no document says so."""
    assert one_problem(text) == "config.yaml:1:1: the file is empty: it needs a sources: list"


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "a list"), ("hello\n", "a string")])
def test_top_level_must_be_a_mapping(text: str, kind: str) -> None:
    """A top level that is not a mapping is one clear problem."""
    assert one_problem(text) == (
        f"config.yaml:1:1: the top level must be a mapping with a sources: list, got {kind}"
    )


def test_yaml_syntax_error_is_one_problem_with_its_line() -> None:
    """A syntax error is reported at its line, with PyYAML's explanation."""
    problem = one_problem("sources:\n  - name: a\n    api: [b\n")
    assert problem.startswith("config.yaml:4:1: invalid YAML: expected ',' or ']'")
    assert "(while parsing a flow sequence at line 3)" in problem


def test_several_documents_are_a_syntax_error() -> None:
    """Only one YAML document is allowed."""
    problem = one_problem(source() + "---\nsources: []\n")
    assert problem.startswith("config.yaml:5:1: invalid YAML:")


def test_forbidden_character_is_reported_by_code_point_only() -> None:
    """A control character is located, and the text around it is not quoted."""
    problem = one_problem(source(f"authorization: {{credentials: {SECRET}\x07}}\n"))
    assert problem == "config.yaml:5:41: invalid YAML: character #x0007 is not allowed"


def test_nesting_too_deep_is_a_problem_not_a_crash() -> None:
    """Pathologically nested YAML gives a problem instead of a RecursionError."""
    problem = one_problem("sources: " + "[" * 5000 + "]" * 5000 + "\n")
    assert problem == "config.yaml:1:1: invalid YAML: nested too deeply"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (yaml.YAMLError("odd"), "config.yaml:1:1: invalid YAML: odd"),
        (yaml.MarkedYAMLError(), "config.yaml:1:1: invalid YAML: syntax error"),
        (
            yaml.MarkedYAMLError(context="while x", problem="bad"),
            "config.yaml:1:1: invalid YAML: bad (while x)",
        ),
    ],
)
def test_unusual_yaml_errors_are_still_problems(error: yaml.YAMLError, expected: str) -> None:
    """Any PyYAML error, even one without a position, becomes a problem."""

    def fail(text: str) -> Node | None:
        raise error

    with pytest.raises(ConfigError) as caught:
        parse_config(source(), "config.yaml", REGISTRY, compose=fail)
    assert caught.value.problems == (expected,)


def test_the_loader_composes_with_the_function_it_is_given() -> None:
    """The injected ``compose`` gets the whole text, and its root node is what is read."""
    seen: list[str] = []

    def compose(text: str) -> Node | None:
        seen.append(text)
        return yaml.compose(source("jobs: [b]\n"), Loader=yaml.SafeLoader)

    config = parse_config("not read as YAML", "config.yaml", REGISTRY, compose=compose)
    assert seen == ["not read as YAML"]
    assert config.sources[0].jobs == (JobConfig("b"),)


# --- structure: unknown keys, types, duplicates ----------------------------------


def test_unknown_top_level_key_lists_the_allowed_ones() -> None:
    """An unknown key is named, with a suggestion and the allowed keys."""
    assert one_problem("globl: {}\n" + source()) == (
        'config.yaml:1:1: globl: unknown key "globl" (did you mean "global"?); '
        "allowed keys: global, sources"
    )


def test_unknown_key_without_a_near_miss_has_no_suggestion() -> None:
    """A key unlike any allowed one just lists the allowed keys."""
    problem = one_problem("global: {zzz: 1}\n" + source())
    assert problem == (
        'config.yaml:1:10: global.zzz: unknown key "zzz"; allowed keys: adaptive_polling, '
        "finished_job_retention, fleet, max_concurrency, poll_interval, request_timeout, "
        "watch_dir"
    )


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        ("pol_interval: 1m\n", "sources[0].pol_interval"),
        ("authorization: {credentials: x, scheme: y}\n", "sources[0].authorization.scheme"),
        ("basic_auth: {username: u, pass: y}\n", "sources[0].basic_auth.pass"),
        ("tls_config: {ca: x}\n", "sources[0].tls_config.ca"),
        ("http_headers: {X-A: {value: [a]}}\n", "sources[0].http_headers.X-A.value"),
        ("jobs: [{id: a, label: {}}]\n", "sources[0].jobs[0].label"),
    ],
)
def test_unknown_keys_are_rejected_everywhere(extra: str, path: str) -> None:
    """Every mapping with a fixed set of keys rejects others, naming their path."""
    found = problems(source(extra))
    assert any(f" {path}: unknown key" in problem for problem in found), found


def test_duplicate_key_is_a_problem() -> None:
    """A key written twice in one mapping points at the second, naming the first line."""
    assert one_problem(source("poll_interval: 1m\npoll_interval: 2m\n")) == (
        "config.yaml:6:5: sources[0].poll_interval: duplicate key (first at line 5)"
    )


def test_keys_must_be_scalars() -> None:
    """A list used as a key is a problem."""
    problem = one_problem(source("? [a]\n: 1\n"))
    assert problem == "config.yaml:5:7: sources[0]: keys must be strings, got a list"


def test_merge_keys_apply_and_explicit_keys_override() -> None:
    """YAML merge keys share settings between sources; keys written out win."""
    config = parse(
        """\
        sources:
          - &base
            name: a
            api: batch_import_job
            base_url: https://api.example.com/
            poll_interval: 1m
          - <<: *base
            name: b
        """
    )
    assert [(src.name, src.poll_interval) for src in config.sources] == [("a", 60.0), ("b", 60.0)]


def test_invalid_merge_is_a_problem() -> None:
    """Merging something that is not a mapping is reported, and checking goes on."""
    found = problems("sources:\n  - <<: 5\n    name: a\n")
    assert found[0].startswith("config.yaml:2:5: sources[0]: invalid merge: expected a mapping")
    assert "config.yaml:2:5: sources[0].api: required key is missing" in found


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("global: []\n", "config.yaml:1:9: global: expected a mapping, got a list"),
        (
            "global: {max_concurrency: true}\n",
            "config.yaml:1:27: global.max_concurrency: expected an integer, got a boolean",
        ),
        (
            "global: {max_concurrency: '4'}\n",
            "config.yaml:1:27: global.max_concurrency: expected an integer, got a string",
        ),
        (
            "global: {max_concurrency: 0}\n",
            "config.yaml:1:27: global.max_concurrency: must be at least 1, got 0",
        ),
        (
            "global: {poll_interval: 30}\n",
            "config.yaml:1:25: global.poll_interval: invalid duration 30: a unit is required: "
            'write "30s"',
        ),
        (
            "global: {poll_interval: 0.5}\n",
            "config.yaml:1:25: global.poll_interval: invalid duration 0.5: a unit is required",
        ),
        (
            "global: {poll_interval: [1s]}\n",
            'config.yaml:1:25: global.poll_interval: expected a duration such as "30s", got a list',
        ),
        (
            "global: {request_timeout: 0s}\n",
            "config.yaml:1:27: global.request_timeout: must be at least 1ms, got 0s",
        ),
        (
            "global: {finished_job_retention: 1h1h}\n",
            'config.yaml:1:34: global.finished_job_retention: invalid duration "1h1h": '
            'unit "h" appears more than once',
        ),
    ],
)
def test_global_values_are_checked(text: str, problem: str) -> None:
    """Each global key has its type and range checked."""
    assert one_problem(text + source()) == problem


# --- sources ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("global: {}\n", "config.yaml:1:1: sources: required key is missing"),
        ("sources:\n", "config.yaml:1:9: sources: a value is required"),
        ("sources: []\n", "config.yaml:1:10: sources: list at least one source"),
        ("sources: {a: 1}\n", "config.yaml:1:10: sources: expected a list, got a mapping"),
        ("sources: [a]\n", "config.yaml:1:11: sources[0]: expected a mapping, got a string"),
    ],
)
def test_sources_must_be_a_non_empty_list(text: str, problem: str) -> None:
    """The sources key is required and lists at least one mapping."""
    assert one_problem(text) == problem


def test_source_required_keys_are_reported_at_the_source() -> None:
    """Missing name, api and base_url are each a problem pointing at the source."""
    assert problems("sources:\n  - jobs: []\n") == [
        "config.yaml:2:5: sources[0].name: required key is missing",
        "config.yaml:2:5: sources[0].api: required key is missing",
        "config.yaml:2:5: sources[0].base_url: required key is missing",
    ]


def test_null_required_value_is_reported_at_the_value() -> None:
    """A required key with an empty value says a value is needed."""
    text = "sources:\n  - name:\n    api: batch_import_job\n    base_url: https://x/\n"
    assert one_problem(text) == "config.yaml:2:10: sources[0].name: a value is required"


@pytest.mark.parametrize("name", ["a b", "x" * 65, "é", "a/b"])
def test_source_name_must_be_a_safe_label_value(name: str) -> None:
    """Source names are 1 to 64 of a-z A-Z 0-9 _ . -."""
    text = f"sources:\n  - name: '{name}'\n    api: batch_import_job\n    base_url: https://x/\n"
    assert "must be 1 to 64 of the characters" in one_problem(text)


def test_source_name_may_use_every_allowed_character() -> None:
    """Dots, dashes, underscores and digits are fine in a name, up to 64 characters."""
    name = "A.b-c_9" + "x" * 57
    text = f"sources:\n  - name: {name}\n    api: batch_import_job\n    base_url: https://x/\n"
    assert parse(text).sources[0].name == name


def test_duplicate_source_names_point_at_the_second() -> None:
    """The second use of a name is the problem, and it names the line of the first."""
    text = source() + "  - name: src\n    api: batch_import_job\n    base_url: https://x/\n"
    assert one_problem(text) == (
        'config.yaml:5:11: sources[1].name: duplicate source name "src" (first at line 2)'
    )


def test_unknown_api_lists_the_known_ones() -> None:
    """An api that is not registered is named, with the valid names."""
    assert one_problem(source(api="nope")) == (
        'config.yaml:3:10: sources[0].api: unknown API "nope"; known APIs: '
        "batch_import_job, evocalize_batch_report, report_job"
    )


def test_unknown_api_with_an_empty_registry() -> None:
    """With no API registered the message says so."""
    with pytest.raises(ConfigError, match="known APIs: none are registered"):
        parse_config(source(), "config.yaml", {})


def test_unknown_api_still_checks_the_rest() -> None:
    """A bad api does not hide mistakes in keys that depend on it."""
    found = problems(source("path: [x]\nreport_type: [x]\nerrors_path: {}\n", api="nope"))
    assert found == [
        'config.yaml:3:10: sources[0].api: unknown API "nope"; known APIs: '
        "batch_import_job, evocalize_batch_report, report_job",
        "config.yaml:5:11: sources[0].path: expected a string, got a list",
        "config.yaml:6:18: sources[0].report_type: expected a string, got a list",
        "config.yaml:7:18: sources[0].errors_path: expected a string, got a mapping",
    ]


def test_unknown_api_accepts_plausible_values() -> None:
    """With an unknown api, well-typed dependent keys add no further problems."""
    found = problems(source("path: x/{id}\nerrors_path: y\nreport_type: calls\n", api="nope"))
    assert len(found) == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://api.example.com/", "must be an http:// or https:// URL"),
        ("api.example.com", "must be an http:// or https:// URL"),
        ("https:///path", "must include a host"),
        (f"https://user:{SECRET}@api.example.com/", "must not contain credentials"),
        ("https://api.example.com/#x", "must not contain a #fragment"),
        ("https://api.example.com/?a=b", "must not contain a ?query"),
        ("https://api.example.com:99999/", "is not a valid URL"),
        ("https://[::1/", "is not a valid URL"),
    ],
)
def test_base_url_must_be_plain_http(url: str, message: str) -> None:
    """base_url is an http(s) URL with a host, no credentials, query or fragment."""
    text = f"sources:\n  - name: a\n    api: batch_import_job\n    base_url: '{url}'\n"
    problem = one_problem(text)
    assert problem.startswith("config.yaml:4:15: sources[0].base_url: ")
    assert message in problem
    assert SECRET not in problem


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("https://api.example.com", "https://api.example.com/"),
        ("HTTP://api.example.com/v1", "HTTP://api.example.com/v1/"),
        ("https://api.example.com/v1/", "https://api.example.com/v1/"),
    ],
)
def test_base_url_ends_with_a_slash(url: str, normalised: str) -> None:
    """base_url is normalised to end with /, so a path appends to it."""
    text = f"sources:\n  - name: a\n    api: batch_import_job\n    base_url: {url}\n"
    assert parse(text).sources[0].base_url == normalised


def test_path_keeps_literal_braces_and_strips_one_slash() -> None:
    """A path may escape braces as in str.format, and one leading / is dropped."""
    config = parse(source("path: /v2/{{x}}/{id}\n"))
    assert config.sources[0].path == "v2/{{x}}/{id}"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("v2/events", "must contain the {id} placeholder"),
        ("v2/{job}/{id}", "placeholder {job} is not allowed; use only {id}"),
        ("v2/{id!r}", "placeholder {id!r} is not allowed"),
        ("v2/{id:>9}", "placeholder {id:>9} is not allowed"),
        ("v2/{}/{id}", "placeholder {} is not allowed"),
        ("v2/{report_type}/{id}", "placeholder {report_type} is not allowed"),
        ("v2/{id", "invalid template: expected '}' before end of string"),
        ("v2/}{id}", "invalid template: Single '}' encountered"),
        ("https://evil.example.com/{id}", "must be a path relative to base_url"),
        ("//evil.example.com/{id}", "must be a path relative to base_url"),
    ],
)
def test_path_template_is_checked(path: str, message: str) -> None:
    """A path needs {id}, may use only the API's placeholders, and stays on base_url's host."""
    found = problems(source(f"path: '{path}'\n"))
    assert any(message in problem for problem in found), found
    assert all(problem.startswith("config.yaml:5:11: sources[0].path: ") for problem in found)


def test_report_type_fills_the_path_params() -> None:
    """An API's own path_params are required keys, stored in order."""
    config = parse(source("report_type: calls\npath: r/{report_type}/{id}\n", api="report_job"))
    assert config.sources[0].path_params == (("report_type", "calls"),)
    assert config.sources[0].path == "r/{report_type}/{id}"


def test_report_type_is_required_for_its_api() -> None:
    """Leaving out a path param the API needs is a problem at the source."""
    assert one_problem(source(api="report_job")) == (
        "config.yaml:2:5: sources[0].report_type: required key is missing (the API's path needs it)"
    )


def test_report_type_is_not_needed_when_the_path_names_the_type() -> None:
    """A path with the report type written in needs no ``report_type`` key."""
    config = parse(source("path: data/reports/calls/jobs/{id}\n", api="report_job"))
    assert config.sources[0].path == "data/reports/calls/jobs/{id}"
    assert config.sources[0].path_params == ()


def test_report_type_with_a_path_that_does_not_use_it_is_a_problem() -> None:
    """``report_type`` beside a path without ``{report_type}`` names both."""
    found = one_problem(
        source("path: data/reports/calls/jobs/{id}\nreport_type: calls\n", api="report_job")
    )
    assert found == (
        "config.yaml:6:5: sources[0].report_type: is not used: "
        'path "data/reports/calls/jobs/{id}" has no {report_type} placeholder'
    )


def test_an_invalid_path_does_not_also_ask_for_report_type() -> None:
    """A path that does not validate is the one problem; ``report_type`` is not demanded."""
    found = problems(source("path: data/{nope}/{id}\n", api="report_job"))
    assert found == [
        "config.yaml:5:11: sources[0].path: placeholder {nope} is not allowed; "
        "use only {id}, {report_type}"
    ]


@pytest.mark.parametrize(
    ("value", "message"), [("''", "must not be empty"), ("[a]", "expected a string, got a list")]
)
def test_report_type_must_be_a_non_empty_string(value: str, message: str) -> None:
    """A path param value is a non-empty string."""
    problem = one_problem(source(f"report_type: {value}\n", api="report_job"))
    assert problem == f"config.yaml:5:18: sources[0].report_type: {message}"


def test_report_type_is_rejected_for_other_apis() -> None:
    """A path param of another API is rejected, naming the API that uses it."""
    assert one_problem(source("report_type: calls\n")) == (
        "config.yaml:5:5: sources[0].report_type: API batch_import_job takes no report_type: "
        "it is for report_job"
    )


@pytest.mark.parametrize("key", ["errors_path: x/{id}", "errors_page_token_param: p"])
def test_errors_keys_need_an_api_with_an_errors_endpoint(key: str) -> None:
    """errors_path and errors_page_token_param are only for APIs with an errors endpoint."""
    problem = one_problem(source(key + "\n"))
    assert problem.endswith("API batch_import_job has no errors endpoint")
    assert problem.startswith("config.yaml:5:5: sources[0].errors_")


def test_errors_path_is_checked_like_path() -> None:
    """errors_path follows the same template rules as path."""
    problem = one_problem(source("errors_path: x/errors\n", api="evocalize_batch_report"))
    assert problem == "config.yaml:5:18: sources[0].errors_path: must contain the {id} placeholder"


@pytest.mark.parametrize(("value", "message"), [("'a b'", "must not contain"), ("''", "empty")])
def test_page_token_param_must_be_usable_in_a_query(value: str, message: str) -> None:
    """The page-token parameter is a non-empty name that cannot break the query string."""
    problem = one_problem(
        source(f"errors_page_token_param: {value}\n", api="evocalize_batch_report")
    )
    assert problem.startswith("config.yaml:5:30: sources[0].errors_page_token_param: ")
    assert message in problem


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "must be a finite number greater than 0, got 0"),
        ("-1.5", "must be a finite number greater than 0, got -1.5"),
        (".inf", "must be a finite number greater than 0, got .inf"),
        (".nan", "must be a finite number greater than 0, got .nan"),
        ("true", "expected a number, got a boolean"),
        ("fast", "expected a number, got a string"),
    ],
)
def test_max_requests_per_second_is_a_positive_number(value: str, message: str) -> None:
    """The rate limit is a finite number above zero."""
    problem = one_problem(source(f"max_requests_per_second: {value}\n"))
    assert problem == f"config.yaml:5:30: sources[0].max_requests_per_second: {message}"


def test_source_poll_interval_has_a_minimum() -> None:
    """A source polls at most once a second."""
    problem = one_problem(source("poll_interval: 999ms\n"))
    assert problem == "config.yaml:5:20: sources[0].poll_interval: must be at least 1s, got 999ms"


# --- authentication ----------------------------------------------------------------


def test_authorization_type_defaults_to_bearer_and_may_be_basic() -> None:
    """The type defaults to Bearer; Basic with an API key (Fullstory) is allowed."""
    config = parse(
        source("authorization: {credentials: a}\n")
        + "  - name: b\n    api: batch_import_job\n    base_url: https://x/\n"
        + "    authorization: {type: Basic, credentials: b}\n"
    )
    assert config.sources[0].authorization == Authorization("Bearer", Secret(inline="a"))
    assert config.sources[1].authorization == Authorization("Basic", Secret(inline="b"))


def test_authorization_type_is_one_word() -> None:
    """An auth scheme with a space would corrupt the header."""
    problem = one_problem(source("authorization: {type: 'Bear er', credentials: a}\n"))
    assert problem == (
        "config.yaml:5:27: sources[0].authorization.type: must be a single word such as Bearer"
    )


def test_credentials_env_must_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """credentials_env names a variable that exists when the config is loaded."""
    monkeypatch.delenv("NO_SUCH_VAR", raising=False)
    problem = one_problem(source("authorization: {credentials_env: NO_SUCH_VAR}\n"))
    assert problem == (
        "config.yaml:5:38: sources[0].authorization.credentials_env: "
        "environment variable NO_SUCH_VAR is not set"
    )
    monkeypatch.setenv("NO_SUCH_VAR", SECRET)
    config = parse(source("authorization: {credentials_env: NO_SUCH_VAR}\n"))
    assert config.sources[0].authorization == Authorization("Bearer", Secret(env="NO_SUCH_VAR"))


def test_env_name_that_is_not_a_name_is_not_quoted() -> None:
    """A secret pasted into an _env key is rejected without being echoed."""
    problem = one_problem(source(f"authorization: {{credentials_env: '{SECRET}!'}}\n"))
    assert problem.endswith("credentials_env: is not a valid environment variable name")
    assert SECRET not in problem


def test_credentials_are_required_exactly_once(secret_file: str) -> None:
    """Authorization takes one of credentials, credentials_file, credentials_env, not two."""
    missing = one_problem(source("authorization: {type: Bearer}\n"))
    assert missing == (
        "config.yaml:5:20: sources[0].authorization: one of credentials, credentials_file "
        "or credentials_env is required"
    )
    both = one_problem(
        source(f"authorization: {{credentials: {SECRET}, credentials_file: {secret_file}}}\n")
    )
    assert both.startswith("config.yaml:5:43: sources[0].authorization.credentials_file: ")
    assert both.endswith("set only one of credentials, credentials_file or credentials_env")
    assert SECRET not in both


def test_secret_file_must_be_readable(tmp_path: Path) -> None:
    """A missing secret file, or a directory, is named in the problem."""
    missing = tmp_path / "nope"
    found = problems(
        source(
            f"authorization: {{credentials_file: {missing}}}\n"
            f"http_headers: {{X-A: {{files: [{tmp_path}]}}}}\n"
        )
    )
    assert found == [
        f"config.yaml:5:39: sources[0].authorization.credentials_file: "
        f'cannot read file "{missing}": No such file or directory',
        f"config.yaml:6:34: sources[0].http_headers.X-A.files[0]: "
        f'cannot read file "{tmp_path}": Is a directory',
    ]


def test_basic_auth_password_is_optional() -> None:
    """basic_auth needs a username; the password may be left out."""
    config = parse(source("basic_auth: {username: 1234}\n"))
    assert config.sources[0].basic_auth == BasicAuth("1234", None)


def test_basic_auth_problems() -> None:
    """A missing username and two passwords are both reported, without the password."""
    found = problems(source(f"basic_auth: {{password: {SECRET}, password_env: HOME}}\n"))
    assert found == [
        "config.yaml:5:17: sources[0].basic_auth.username: required key is missing",
        "config.yaml:5:37: sources[0].basic_auth.password_env: "
        "set only one of password, password_file or password_env",
    ]


def test_oauth2_defaults() -> None:
    """oauth2 scopes and endpoint_params are optional."""
    config = parse(
        source("oauth2: {client_id: i, client_secret: s, token_url: 'http://t.example.com/t'}\n")
    )
    assert config.sources[0].oauth2 == OAuth2("i", Secret(inline="s"), "http://t.example.com/t")


def test_oauth2_problems() -> None:
    """oauth2 needs client_id, one client secret and an http(s) token_url."""
    found = problems(source("oauth2: {scopes: a, endpoint_params: {k: [v]}, token_url: x}\n"))
    assert found == [
        "config.yaml:5:13: sources[0].oauth2.client_id: required key is missing",
        "config.yaml:5:13: sources[0].oauth2: one of client_secret, client_secret_file "
        "or client_secret_env is required",
        "config.yaml:5:22: sources[0].oauth2.scopes: expected a list, got a string",
        "config.yaml:5:46: sources[0].oauth2.endpoint_params.k: expected a string, got a list",
        "config.yaml:5:63: sources[0].oauth2.token_url: must be an http:// or https:// URL",
    ]


def test_only_one_kind_of_authentication() -> None:
    """authorization, basic_auth and oauth2 exclude each other."""
    found = problems(
        source(
            "authorization: {credentials: a}\n"
            "basic_auth: {username: u}\n"
            "oauth2: {client_id: i, client_secret: s, token_url: 'https://t/'}\n"
        )
    )
    assert found == [
        "config.yaml:6:5: sources[0].basic_auth: set only one of authorization, basic_auth, "
        "oauth2 (authorization is set at line 5)",
        "config.yaml:7:5: sources[0].oauth2: set only one of authorization, basic_auth, "
        "oauth2 (authorization is set at line 5)",
    ]


def test_auth_sections_must_be_mappings() -> None:
    """A list where an auth mapping goes is a type problem."""
    found = problems(source("authorization: [a]\n"))
    assert found == ["config.yaml:5:20: sources[0].authorization: expected a mapping, got a list"]
    found = problems(source("basic_auth: a\n") + "  - name: b\n    api: report_job\n")
    assert "config.yaml:5:17: sources[0].basic_auth: expected a mapping, got a string" in found
    found = problems(source("oauth2: 1\n"))
    assert found == ["config.yaml:5:13: sources[0].oauth2: expected a mapping, got an integer"]


def test_secrets_never_appear_in_problems() -> None:
    """Wherever a secret is misplaced, no message quotes it."""
    found = problems(
        source(
            f"""\
            authorization: {{credentials: [{SECRET}], credentials_env: {SECRET}-x}}
            http_headers:
              X-A: {SECRET}
              X-B: {{secrets: ["{SECRET}\\r\\n"], values: ["{SECRET}\\n"]}}
              X-C: {{secrets: [{{a: {SECRET}}}]}}
            """
        )
        + "  - name: b\n    api: batch_import_job\n    base_url: https://x/\n"
        + f"    oauth2: {{client_id: i, client_secret: {{v: {SECRET}}}, token_url: {SECRET}}}\n"
    )
    assert len(found) == 9, found
    assert not any(SECRET in problem for problem in found), found


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (
            "authorization: {credentials_file: ''}",
            "5:39: sources[0].authorization.credentials_file: must not be empty",
        ),
        (
            "authorization: {credentials_env: [A]}",
            "5:38: sources[0].authorization.credentials_env: expected a string, got a list",
        ),
        (
            "oauth2: {client_id: i, client_secret: s, token_url: {}}",
            "5:57: sources[0].oauth2.token_url: expected a string, got a mapping",
        ),
    ],
)
def test_secret_references_and_urls_are_strings(extra: str, problem: str) -> None:
    """File names, variable names and URLs must be non-empty strings."""
    assert one_problem(source(extra + "\n")) == f"config.yaml:{problem}"


def test_secret_reads_its_current_value(secret_file: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Secret reads its file (without the newline), variable or inline value when asked."""
    monkeypatch.setenv("TOKEN_VAR", SECRET)
    assert Secret(file=secret_file).read() == SECRET
    assert Secret(env="TOKEN_VAR").read() == SECRET
    assert Secret(inline=SECRET).read() == SECRET
    assert Secret().read() == ""


def test_secret_describes_its_source_without_the_value(secret_file: str) -> None:
    """describe() says where a secret lives, never what it is."""
    assert Secret(file=secret_file).describe() == f"file {secret_file}"
    assert Secret(env="TOKEN_VAR").describe() == "environment variable TOKEN_VAR"
    assert Secret(inline=SECRET).describe() == "inline value"


def test_secret_value_is_not_in_the_models_repr() -> None:
    """An inline secret stays out of the repr of the loaded config."""
    config = parse(source(f"authorization: {{credentials: {SECRET}}}\n"))
    assert SECRET not in repr(config)


# --- http_headers and tls_config --------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ("{'X A': {values: [a]}}", '"X A" is not a valid HTTP header name'),
        ("{'': {values: [a]}}", '"" is not a valid HTTP header name'),
        ("{authorization: {values: [a]}}", "set the Authorization header with authorization:"),
        ("{X-A: {values: []}}", "set at least one of values, secrets or files"),
        ("{X-A: {}}", "set at least one of values, secrets or files"),
        ("{X-A: [a]}", "expected a mapping, got a list"),
        ("{X-A: {values: a}}", "expected a list, got a string"),
        ('{X-A: {values: ["a\\x7f"]}}', "must not contain control characters"),
        ("[a]", "expected a mapping, got a list"),
    ],
)
def test_http_headers_are_checked(headers: str, message: str) -> None:
    """Header names are tokens, Authorization is not one of them, values are lists."""
    problem = one_problem(source(f"http_headers: {headers}\n"))
    assert message in problem


def test_header_names_are_unique_ignoring_case() -> None:
    """X-A and x-a are the same header."""
    problem = one_problem(source("http_headers:\n  X-A: {values: [a]}\n  x-a: {values: [b]}\n"))
    assert (
        problem
        == "config.yaml:7:7: sources[0].http_headers.x-a: header x-a is already set at line 6"
    )


def test_header_value_may_hold_a_tab() -> None:
    """A tab is legal inside a header value."""
    config = parse(source('http_headers: {X-A: {values: ["a\\tb"]}}\n'))
    assert config.sources[0].http_headers == (Header("X-A", values=("a\tb",)),)


def test_tls_cert_and_key_go_together(tmp_path: Path) -> None:
    """cert_file without key_file is a problem at tls_config."""
    (tmp_path / "cert.pem").write_text("x", encoding="utf-8")
    problem = one_problem(source(f"tls_config: {{cert_file: {tmp_path}/cert.pem}}\n"))
    assert problem == "config.yaml:5:17: sources[0].tls_config: set cert_file and key_file together"


@pytest.mark.parametrize(
    ("tls", "message"),
    [
        (
            "{min_version: TLS1.2}",
            'min_version: must be one of TLS10, TLS11, TLS12, TLS13, got "TLS1.2"',
        ),
        (
            "{insecure_skip_verify: 'yes'}",
            "insecure_skip_verify: expected true or false, got a string",
        ),
        ("{ca_file: /no/such/ca.pem}", 'ca_file: cannot read file "/no/such/ca.pem"'),
        ("{server_name: ''}", "server_name: must not be empty"),
        ("[]", "tls_config: expected a mapping, got a list"),
    ],
)
def test_tls_config_is_checked(tls: str, message: str) -> None:
    """TLS versions come from a fixed list, files must exist, flags are booleans."""
    assert message in one_problem(source(f"tls_config: {tls}\n"))


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    """TLS files by role: a CA, a leaf cert and its key, another key, garbage, encrypted."""
    ca = make_ca(tmp_path, "ca")
    leaf, other = issue(tmp_path, ca, "leaf"), issue(tmp_path, ca, "other")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text(f"not PEM {SECRET}\n", encoding="utf-8")
    encrypted = tmp_path / "encrypted.key"
    openssl("ec", "-in", leaf.key, "-aes128", "-passout", "pass:x", "-out", encrypted)
    return {
        "ca": ca.cert,
        "cert": leaf.cert,
        "key": leaf.key,
        "other_key": other.key,
        "garbage": garbage,
        "encrypted": encrypted,
    }


_NO_CERT = "no PEM certificate found (NO_CERTIFICATE_OR_CRL_FOUND)"


@pytest.mark.parametrize(
    ("roles", "at", "message"),
    [
        (("garbage", None, None), "6:16: sources[0].tls_config.ca_file", _NO_CERT),
        (("ca", "garbage", "key"), "7:18: sources[0].tls_config.cert_file", _NO_CERT),
        (
            (None, "cert", "garbage"),
            "7:17: sources[0].tls_config.key_file",
            'cannot load "{garbage}": no PEM private key found',
        ),
        (
            (None, "cert", "other_key"),
            "7:17: sources[0].tls_config.key_file",
            '"{other_key}" is not the key of cert_file',
        ),
        (
            (None, "cert", "encrypted"),
            "7:17: sources[0].tls_config.key_file",
            '"{encrypted}" is encrypted: give an unencrypted key',
        ),
    ],
)
def test_tls_files_must_load_not_just_be_readable(
    pki: dict[str, Path], roles: tuple[str | None, str | None, str | None], at: str, message: str
) -> None:
    """A TLS file that OpenSSL cannot use is a problem at its key, naming the source."""
    keys = ("ca_file", "cert_file", "key_file")
    lines = [f"  {key}: {pki[role]}\n" for key, role in zip(keys, roles, strict=True) if role]
    problem = one_problem(source("tls_config:\n" + "".join(lines)))
    expected = message.format_map(pki)
    if message == _NO_CERT:
        expected = f'cannot load "{pki["garbage"]}": {_NO_CERT}'
    assert problem == f"config.yaml:{at}: src: cannot set up its HTTP client: {expected}"
    assert SECRET not in problem


def test_tls_load_problems_are_gathered_with_the_others(pki: dict[str, Path]) -> None:
    """Every source's unusable TLS file is reported, in file order, among other problems."""
    text = f"""\
        sources:
          - name: a
            api: batch_import_job
            base_url: https://a.example.com/
            tls_config: {{ca_file: {pki["garbage"]}}}
          - name: b
            api: nope
            base_url: https://b.example.com/
            tls_config: {{cert_file: {pki["cert"]}, key_file: {pki["other_key"]}}}
        """
    found = problems(text)
    key_column = textwrap.dedent(text).splitlines()[8].index(str(pki["other_key"])) + 1
    assert [problem.split(": ")[:3] for problem in found] == [
        ["config.yaml:5:27", "sources[0].tls_config.ca_file", "a"],
        ["config.yaml:7:10", "sources[1].api", 'unknown API "nope"; known APIs'],
        [f"config.yaml:9:{key_column}", "sources[1].tls_config.key_file", "b"],
    ]


def test_usable_tls_files_pass(pki: dict[str, Path]) -> None:
    """A CA, a client certificate and its key that load give a TLSConfig."""
    tls = f"{{ca_file: {pki['ca']}, cert_file: {pki['cert']}, key_file: {pki['key']}}}"
    config = parse(source(f"tls_config: {tls}\n"))
    assert config.sources[0].tls_config == TLSConfig(
        ca_file=str(pki["ca"]), cert_file=str(pki["cert"]), key_file=str(pki["key"])
    )


def test_tls_defaults() -> None:
    """An empty tls_config verifies certificates with the system's CAs."""
    config = parse(source("tls_config: {server_name: h}\n"))
    assert config.sources[0].tls_config == TLSConfig(server_name="h")


# --- jobs and labels ------------------------------------------------------------------


def test_jobs_accept_strings_numbers_and_mappings() -> None:
    """Scalars keep the text as written (007 stays 007); odd characters are legal."""
    config = parse(
        source("jobs: [007, 12, 1.50, true, a/../b, abd123=, ' sp ', {id: x, labels: {n: 1}}]\n")
    )
    assert [job.id for job in config.sources[0].jobs] == [
        "007",
        "12",
        "1.50",
        "true",
        "a/../b",
        "abd123=",
        " sp ",
        "x",
    ]
    assert config.sources[0].jobs[-1].labels == (("n", "1"),)


@pytest.mark.parametrize(
    ("jobs", "message"),
    [
        ("['']", "jobs[0]: must not be empty"),
        ("[~]", "jobs[0]: expected a job ID or a mapping with id and labels, got null"),
        ("[[a]]", "jobs[0]: expected a job ID or a mapping with id and labels, got a list"),
        (f"[{'x' * 257}]", "jobs[0]: job ID is 257 characters long, at most 256"),
        ('["a\\tb"]', 'jobs[0]: job ID "a\\tb" contains a control character'),
        ('["a\\u0085b"]', 'jobs[0]: job ID "a\\x85b" contains a control character'),
        ("[a, b, a]", 'jobs[2]: duplicate job ID "a" (first listed at line 5)'),
        ("[a, {id: a}]", 'jobs[1]: duplicate job ID "a" (first listed at line 5)'),
        ("[{labels: {}}]", "jobs[0].id: required key is missing"),
        ("[{id: []}]", "jobs[0].id: expected a job ID, got a list"),
        ("a", "jobs: expected a list, got a string"),
    ],
)
def test_job_ids_are_checked(jobs: str, message: str) -> None:
    """Job IDs are non-empty, short, free of control characters and unique per source."""
    problem = one_problem(source(f"jobs: {jobs}\n"))
    assert problem.startswith("config.yaml:5:")
    assert f"sources[0].{message}" in problem


def test_job_id_of_256_characters_is_accepted() -> None:
    """The length limit is inclusive."""
    assert parse(source(f"jobs: [{'x' * 256}]\n")).sources[0].jobs[0].id == "x" * 256


def test_same_job_id_in_two_sources_is_fine() -> None:
    """Uniqueness is per source: two sources may watch the same ID."""
    text = source("jobs: [a]\n") + "  - name: b\n    api: batch_import_job\n"
    text += "    base_url: https://x/\n    jobs: [a]\n"
    assert [src.jobs for src in parse(text).sources] == [(JobConfig("a"),), (JobConfig("a"),)]


def test_label_values_are_converted_to_strings() -> None:
    """Numbers and booleans become the text written in the file."""
    config = parse(source("jobs: [{id: a, labels: {n: 1, f: 2.50, b: yes, e: '', s: x}}]\n"))
    assert config.sources[0].jobs[0].labels == (
        ("n", "1"),
        ("f", "2.50"),
        ("b", "yes"),
        ("e", ""),
        ("s", "x"),
    )


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ("{1team: x}", '"1team" is not a valid label name'),
        ("{team-x: x}", '"team-x" is not a valid label name'),
        ("{__team: x}", "label names starting with __ are reserved for Prometheus"),
        ("{job_id: x}", "label job_id is the exporter's own"),
        ("{source: x}", "label source is the exporter's own"),
        ("{status: x}", "label status is the exporter's own"),
        ("{team: [x]}", "labels.team: expected a string, got a list"),
        ("{team: ~}", "labels.team: expected a string, got null"),
        ("[team]", "labels: expected a mapping, got a list"),
    ],
)
def test_labels_are_checked(labels: str, message: str) -> None:
    """Label names follow Prometheus' rules and avoid the exporter's own labels."""
    problem = one_problem(source(f"jobs: [{{id: a, labels: {labels}}}]\n"))
    assert message in problem


FIXED = "api, code, job_id, origin, source, status, vendor_status"


@pytest.mark.parametrize(
    "name", ["source", "job_id", "api", "vendor_status", "code", "status", "origin"]
)
def test_every_fixed_label_is_rejected(name: str) -> None:
    """Each of the exporter's own label names is refused, whatever the registry."""
    problem = one_problem(source(f"jobs: [{{id: a, labels: {{{name}: x}}}}]\n"))
    assert problem == (
        f"config.yaml:5:29: sources[0].jobs[0].labels.{name}: "
        f"label {name} is the exporter's own (reserved: {FIXED})"
    )


@pytest.mark.parametrize("name", ["name", "format", "timezone"])
def test_the_real_registrys_info_labels_are_rejected(name: str) -> None:
    """Talkdesk's ``batchjob_info`` labels are refused under the real registry."""
    text = source(f"jobs: [{{id: a, labels: {{{name}: x}}}}]\n")
    with pytest.raises(ConfigError) as caught:
        parse_config(textwrap.dedent(text), "config.yaml", VENDORS)
    assert caught.value.problems == (
        f"config.yaml:5:29: sources[0].jobs[0].labels.{name}: label {name} is the exporter's"
        " own (reserved: api, code, format, job_id, name, origin, source, status, timezone,"
        " vendor_status)",
    )


def test_the_given_registrys_info_labels_are_the_reserved_ones() -> None:
    """The registry parse_config is given decides: its info labels are refused, no others."""
    spec = ApiSpec(
        name="batch_import_job",
        vendor="fullstory",
        default_path="v2/events/batch/{id}",
        parse_job=_parse_job,
        info_labels=frozenset({"team"}),
    )
    text = source("jobs: [{id: a, labels: {team: x}}, {id: b, labels: {timezone: UTC}}]\n")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "config.yaml", {spec.name: spec})
    assert caught.value.problems == (
        "config.yaml:5:29: sources[0].jobs[0].labels.team: label team is the exporter's own"
        " (reserved: api, code, job_id, origin, source, status, team, vendor_status)",
    )
    assert parse(source("jobs: [{id: b, labels: {timezone: UTC}}]\n")).sources[0].jobs == (
        JobConfig("b", labels=(("timezone", "UTC"),)),
    )


def test_reserved_labels_are_the_fixed_ones_and_the_registrys_info_labels() -> None:
    """reserved_labels adds each API's info labels; RESERVED_LABELS is the real registry's."""
    fixed = {"api", "code", "job_id", "origin", "source", "status", "vendor_status"}
    assert reserved_labels(REGISTRY) == fixed
    assert RESERVED_LABELS == reserved_labels(VENDORS) == fixed | {"format", "name", "timezone"}


def test_label_name_problem_checks_against_the_set_it_is_given() -> None:
    """A label is reserved only in the set passed; without one, the real registry's applies."""
    assert label_name_problem("team", frozenset({"team", "api"})) == (
        "label team is the exporter's own (reserved: api, team)"
    )
    assert label_name_problem("timezone", frozenset({"team"})) is None
    assert label_name_problem("timezone") == (
        "label timezone is the exporter's own (reserved: api, code, format, job_id, name,"
        " origin, source, status, timezone, vendor_status)"
    )


def test_custom_tags_are_not_strings() -> None:
    """A value with an application tag is rejected rather than guessed at."""
    problem = one_problem(source("jobs: [!secret abc]\n"))
    assert problem.endswith("got a value tagged !secret")


# --- robustness -----------------------------------------------------------------


KEYS = [
    "global",
    "sources",
    "poll_interval",
    "name",
    "api",
    "base_url",
    "path",
    "jobs",
    "id",
    "labels",
    "authorization",
    "credentials",
    "http_headers",
    "values",
    "report_type",
    "errors_path",
    "max_concurrency",
    "tls_config",
    "min_version",
    "oauth2",
    "basic_auth",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=True),
    st.sampled_from(["30s", "3x", "https://x/", "batch_import_job", "report_job", "{id}", ""]),
    st.text(max_size=5),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=12,
)


def outcome(text: str) -> tuple[str, ...]:
    """Return the problems found in ``text``, none if it is a valid config."""
    try:
        parse_config(text, "config.yaml", REGISTRY)
    except ConfigError as exc:
        # An empty error would be a silent failure: make the caller's check see it.
        return exc.problems or ("ConfigError without problems",)
    return ()


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(VALUES)
def test_any_yaml_document_gives_a_config_or_a_config_error(value: object) -> None:
    """Whatever the structure, the loader answers with a Config or a ConfigError."""
    found = outcome(yaml.safe_dump(value))
    assert all(problem.startswith("config.yaml:") for problem in found)


@settings(max_examples=150)
@given(st.text(alphabet=st.sampled_from(list("sources:-[]{},'\"&*!|>#% \n\tab0\x07")), max_size=60))
def test_any_text_gives_a_config_or_a_config_error(text: str) -> None:
    """Arbitrary text never makes the loader raise anything but ConfigError."""
    found = outcome(text)
    assert all(problem.startswith("config.yaml:") for problem in found)


# --- global.watch_dir -------------------------------------------------------------


def test_watch_dir_defaults_to_none() -> None:
    """Without watch_dir no directory is watched."""
    assert parse(source()).global_.watch_dir is None


def test_watch_dir_resolves_against_the_config_files_directory(tmp_path: Path) -> None:
    """A relative watch_dir is relative to the config file, like every other file key."""
    (tmp_path / "jobs.d").mkdir()
    text = "global: {watch_dir: jobs.d}\n" + source()
    config = parse_config(text, str(tmp_path / "config.yaml"), REGISTRY)
    assert config.global_.watch_dir == str(tmp_path / "jobs.d")
    absolute = parse(f"global: {{watch_dir: {tmp_path}}}\n" + source())
    assert absolute.global_.watch_dir == str(tmp_path)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("missing", 'cannot use directory "{dir}/missing": No such file or directory'),
        ("file", 'cannot use directory "{dir}/file": Not a directory'),
        ("[a]", "expected a string, got a list"),
        ("''", "must not be empty"),
    ],
)
def test_watch_dir_must_be_a_directory_now(tmp_path: Path, value: str, message: str) -> None:
    """A missing path, a file or a non-string is a problem at the key's line."""
    (tmp_path / "file").write_text("x", encoding="utf-8")
    text = f"global:\n  poll_interval: 30s\n  watch_dir: {value}\n" + source()
    with pytest.raises(ConfigError) as caught:
        parse_config(text, str(tmp_path / "config.yaml"), REGISTRY)
    (problem,) = caught.value.problems
    expected = message.format(dir=tmp_path)
    assert problem == f"{tmp_path}/config.yaml:3:14: global.watch_dir: {expected}"


# --- evocalize_signature (request signing, through ApiSpec.signature_key) -------------

EVO = "evocalize_batch_report"
KEY_ID = "a5646c38-fc29-11e9-8f0b-362b9e155667"


def signed(text: str) -> Config:
    """Parse dedented YAML with the real registry, whose Evocalize API signs requests."""
    return parse_config(textwrap.dedent(text), "config.yaml", VENDORS)


def signed_problems(text: str) -> list[str]:
    """Return the problems of a config the real registry must reject."""
    with pytest.raises(ConfigError) as caught:
        signed(text)
    return list(caught.value.problems)


def test_signature_with_each_secret_form(secret_file: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``secret_file``, ``secret_env`` and ``secret`` each give the key ID and a Secret."""
    monkeypatch.setenv("EVO_SECRET", SECRET)
    for form, want in (
        (f"secret_file: {secret_file}", Secret(file=secret_file)),
        ("secret_env: EVO_SECRET", Secret(env="EVO_SECRET")),
        (f"secret: {SECRET}", Secret(inline=SECRET)),
    ):
        extra = f"evocalize_signature:\n  key_id: {KEY_ID}\n  {form}\n"
        config = signed(source(extra, api=EVO))
        assert config.sources[0].signature == RequestSignature(KEY_ID, want)
        assert config.sources[0].http_headers == ()


def test_no_signature_by_default() -> None:
    """Without the key, or with it null, a source does not sign."""
    assert signed(source(api=EVO)).sources[0].signature is None
    assert signed(source("evocalize_signature: ~\n", api=EVO)).sources[0].signature is None


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (
            "evocalize_signature: {secret: s}",
            "5:26: sources[0].evocalize_signature.key_id: required key is missing",
        ),
        (
            f"evocalize_signature: {{key_id: {KEY_ID}}}",
            "5:26: sources[0].evocalize_signature: one of secret, secret_file or secret_env "
            "is required",
        ),
        (
            "evocalize_signature: {key_id: '', secret: s}",
            "5:35: sources[0].evocalize_signature.key_id: must not be empty",
        ),
        (
            'evocalize_signature: {key_id: "a\\nb", secret: s}',
            "5:35: sources[0].evocalize_signature.key_id: must not contain control characters",
        ),
        (
            "evocalize_signature: {key_id: [a], secret: s}",
            "5:35: sources[0].evocalize_signature.key_id: expected a string, got a list",
        ),
        (
            "evocalize_signature: {key_id: k, secret: s, secret_env: PATH}",
            "5:49: sources[0].evocalize_signature.secret_env: set only one of secret, "
            "secret_file or secret_env",
        ),
        (
            "evocalize_signature: {key_id: k, secret_file: /nonexistent/evo}",
            '5:51: sources[0].evocalize_signature.secret_file: cannot read file "/nonexistent/evo":'
            " No such file or directory",
        ),
        (
            "evocalize_signature: {key_id: k, secret_env: NO_SUCH_EVO_SECRET_VAR}",
            "5:50: sources[0].evocalize_signature.secret_env: environment variable "
            "NO_SUCH_EVO_SECRET_VAR is not set",
        ),
        (
            "evocalize_signature: {key_id: k, secret: s, secret_id: x}",
            '5:49: sources[0].evocalize_signature.secret_id: unknown key "secret_id" (did you mean'
            ' "secret_file"?); allowed keys: key_id, secret, secret_env, secret_file',
        ),
        (
            "evocalize_signature: k",
            "5:26: sources[0].evocalize_signature: expected a mapping, got a string",
        ),
    ],
)
def test_signature_problems(extra: str, problem: str) -> None:
    """A key ID and exactly one secret are required, each checked where it is written."""
    assert signed_problems(source(extra + "\n", api=EVO)) == [f"config.yaml:{problem}"]


def test_signature_is_for_evocalize_only() -> None:
    """Another API's source with the key is a problem naming the API it belongs to."""
    text = source(f"evocalize_signature: {{key_id: k, secret: {SECRET}}}\n")
    assert signed_problems(text) == [
        "config.yaml:5:5: sources[0].evocalize_signature: API batch_import_job takes no "
        "evocalize_signature: it is for evocalize_batch_report"
    ]


def test_signature_under_an_unknown_api_is_checked_as_a_mapping() -> None:
    """With an unknown API only the unknown API and the mapping's own problems are reported."""
    found = signed_problems(source("evocalize_signature: {secret: s}\n", api="nope"))
    assert [problem.split(": ")[1] for problem in found] == [
        "sources[0].api",
        "sources[0].evocalize_signature.key_id",
    ]


@pytest.mark.parametrize(
    "header",
    [
        "X-Evocalize-Client-Key",
        "x-evocalize-client-key",
        "X-EVOCALIZE-CLIENT-KEY",
        "X-Evocalize-Client-Key-Id",
        "x-evocalize-signature",
        "X-Evocalize-Timestamp",
    ],
)
def test_signature_and_a_client_key_header_do_not_go_together(header: str) -> None:
    """The API prefers a client key over a signature: both set is a problem naming both."""
    text = source(
        f"""\
        http_headers:
          {header}: {{secrets: [{SECRET}]}}
        evocalize_signature: {{key_id: k, secret: {SECRET}}}
        """,
        api=EVO,
    )
    assert signed_problems(text) == [
        "config.yaml:7:5: sources[0].evocalize_signature: set either evocalize_signature or "
        f"the {header} header in http_headers, not both"
    ]


def test_other_headers_go_with_a_signature() -> None:
    """Headers that are not credentials (a proxy's, a tracing one) stay allowed."""
    text = source(
        "http_headers: {X-Trace: {values: [on]}}\nevocalize_signature: {key_id: k, secret: s}\n",
        api=EVO,
    )
    source_ = signed(text).sources[0]
    assert source_.http_headers == (Header("X-Trace", ("on",)),)
    assert source_.signature == RequestSignature("k", Secret(inline="s"))


def test_signature_secret_never_appears_in_problems_or_repr() -> None:
    """A misplaced signature secret is not quoted; the model's repr hides an inline one."""
    found = signed_problems(
        source(
            f"evocalize_signature: {{key_id: [{SECRET}], secret: [{SECRET}], x: {SECRET}}}\n",
            api=EVO,
        )
    )
    assert len(found) == 3, found
    assert not any(SECRET in problem for problem in found), found
    config = signed(source(f"evocalize_signature: {{key_id: k, secret: {SECRET}}}\n", api=EVO))
    assert SECRET not in repr(config)


# --- each API's errors listing (the real registry) ------------------------------------------


def real(text: str) -> Config:
    """Parse dedented YAML with the exporter's own registry."""
    return parse_config(textwrap.dedent(text), "config.yaml", VENDORS)


@pytest.mark.parametrize(
    ("api", "param"), [("evocalize_batch_report", "pageToken"), ("batch_import_job", "page_token")]
)
def test_each_api_has_its_own_default_page_token_param(api: str, param: str) -> None:
    """Without errors_page_token_param a source uses its API's own query parameter."""
    (src,) = real(source(api=api)).sources
    assert src.errors_page_token_param == param


def test_a_configured_page_token_param_wins_over_the_apis() -> None:
    """errors_page_token_param still overrides the API's default."""
    (src,) = real(source("errors_page_token_param: cursor\n")).sources
    assert src.errors_page_token_param == "cursor"  # noqa: S105 - a parameter name


def test_fullstory_reads_the_events_listing_by_default() -> None:
    """A Fullstory source without paths reads its events import and that import's errors."""
    (src,) = real(source()).sources
    assert (src.path, src.errors_path) == ("v2/events/batch/{id}", "v2/events/batch/{id}/errors")


@pytest.mark.parametrize(
    ("api", "path"),
    [
        ("batch_import_job", "v2/users/batch/{id}"),
        ("batch_import_job", "/v2beta/events/batch/{id}/"),
        ("evocalize_batch_report", "management/v2/items/report/{id}"),
    ],
)
def test_the_errors_path_defaults_to_the_path_plus_errors(api: str, path: str) -> None:
    """A source that sets path but not errors_path reads the listing at that path + /errors."""
    (src,) = real(source(f"path: {path}\n", api=api)).sources
    expected = path.strip("/")
    assert (src.path, src.errors_path) == (path.lstrip("/"), expected + "/errors")


def test_an_errors_path_given_wins_over_the_path() -> None:
    """errors_path, when set, is used as written even if path is set too."""
    text = source("path: v2/users/batch/{id}\nerrors_path: v2/users/batch/{id}/failures\n")
    (src,) = real(text).sources
    assert (src.path, src.errors_path) == ("v2/users/batch/{id}", "v2/users/batch/{id}/failures")


def test_an_invalid_path_is_reported_once_not_again_for_the_errors_path() -> None:
    """A path without {id} is one problem; the listing's default does not repeat it."""
    assert real_problems(source("path: v2/users/batch\n")) == [
        "config.yaml:5:11: sources[0].path: must contain the {id} placeholder"
    ]


def real_problems(text: str) -> list[str]:
    """The problems of a config the real registry must reject."""
    with pytest.raises(ConfigError) as caught:
        real(text)
    return list(caught.value.problems)


def test_errors_refresh_is_a_duration_for_an_api_whose_listing_answers_while_running() -> None:
    """``errors_refresh`` is off by default and a duration on Evocalize sources."""
    text = source("errors_refresh: 5m\n", api="evocalize_batch_report")
    assert parse_config(text, "config.yaml", VENDORS).sources[0].errors_refresh == 300.0
    text = source(api="evocalize_batch_report")
    assert parse_config(text, "config.yaml", VENDORS).sources[0].errors_refresh is None


@pytest.mark.parametrize("api", ["batch_import_job", "report_job"])
def test_errors_refresh_is_refused_where_the_listing_does_not_answer_while_running(
    api: str,
) -> None:
    """Fullstory answers 202 while an import runs and Talkdesk has no listing: a problem."""
    extra = "errors_refresh: 5m\n" + ("report_type: calls\n" if api == "report_job" else "")
    assert real_problems(source(extra, api=api)) == [
        f"config.yaml:5:5: sources[0].errors_refresh: API {api} has no errors listing "
        "that answers while a job runs"
    ]


def test_errors_refresh_takes_at_least_a_second() -> None:
    """A refresh more often than once a second is refused like a too short poll interval."""
    found = real_problems(source("errors_refresh: 100ms\n", api="evocalize_batch_report"))
    assert len(found) == 1
    assert found[0].startswith("config.yaml:5:21: sources[0].errors_refresh: ")
