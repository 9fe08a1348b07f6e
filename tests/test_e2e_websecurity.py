"""End to end: a real Prometheus scrapes exporters secured by ``--web.config.file``.

Two ``--demo`` exporters on 127.0.0.1: one over TLS with basic auth, one over TLS
requiring a client certificate (``RequireAndVerifyClientCert``).  Prometheus
(Debian's ``prometheus``) holds four scrape jobs against them: with the right
password and with a wrong one; with a client certificate and without one.  The
right ones must be up, the others down.  Certificates are made here with
openssl; bcrypt runs at cost 4 to keep it quick.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import bcrypt
import pytest
import yaml

from tests.polling.test_client_tls import issue, make_ca
from tests.test_e2e_prometheus import (
    START_TIMEOUT,
    Processes,
    answers_200,
    free_port,
    query,
    wait_for,
)

pytestmark = pytest.mark.e2e

PASSWORD = "scrape-s3cret"  # noqa: S105 - the test exporter's own, made up here
UP_TIMEOUT = 60.0


def start_secured(procs: Processes, name: str, web_config: Path) -> str:
    """A ``--demo`` exporter with ``web_config`` on port 0; its ``host:port``."""
    procs.start(
        name,
        [
            sys.executable,
            "-m",
            "exporter",
            "--demo",
            "--web.listen-address=127.0.0.1:0",
            f"--web.config.file={web_config}",
        ],
    )
    found: list[str] = []

    def serving() -> bool:
        match = re.search(r"serving /metrics on port (\d+)", procs.log(name).read_text())
        if match:
            found.append(match[1])
        return match is not None

    wait_for(f"{name} to listen", serving, START_TIMEOUT, procs)
    return f"127.0.0.1:{found[0]}"


def test_prometheus_scrapes_over_tls_with_basic_auth_and_client_certificates(
    tmp_path: Path,
) -> None:
    """Right password or certificate: the target is up; wrong password or none: down."""
    prometheus_bin = shutil.which("prometheus")
    if prometheus_bin is None:
        pytest.fail("prometheus not found: run `make test`, which installs Debian's prometheus")
    ca = make_ca(tmp_path, "ca")
    server = issue(tmp_path, ca, "exporter")
    client = issue(tmp_path, ca, "prometheus", usage="clientAuth")
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    tls = {"cert_file": str(server.cert), "key_file": str(server.key)}
    basic_web = tmp_path / "web-basic.yml"
    basic_web.write_text(
        yaml.safe_dump({"tls_server_config": tls, "basic_auth_users": {"prometheus": hashed}})
    )
    mtls_web = tmp_path / "web-mtls.yml"
    mtls = {
        **tls,
        "client_auth_type": "RequireAndVerifyClientCert",
        "client_ca_file": str(ca.cert),
    }
    mtls_web.write_text(yaml.safe_dump({"tls_server_config": mtls}))
    procs = Processes(tmp_path)
    try:
        basic_target = start_secured(procs, "exporter-basic", basic_web)
        mtls_target = start_secured(procs, "exporter-mtls", mtls_web)

        def job(name: str, target: str, **tls_extra: str) -> dict[str, object]:
            return {
                "job_name": name,
                "scheme": "https",
                "tls_config": {"ca_file": str(ca.cert), **tls_extra},
                "static_configs": [{"targets": [target]}],
            }

        wrong = job("basic_wrong", basic_target)
        right = job("basic_right", basic_target)
        right["basic_auth"] = {"username": "prometheus", "password": PASSWORD}
        wrong["basic_auth"] = {"username": "prometheus", "password": "guess"}
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                right,
                wrong,
                job("mtls_cert", mtls_target, cert_file=str(client.cert), key_file=str(client.key)),
                job("mtls_nocert", mtls_target),
            ],
        }
        prom_file = tmp_path / "prometheus.yml"
        prom_file.write_text(yaml.safe_dump(config))
        port = free_port()
        prometheus = f"http://127.0.0.1:{port}/"
        procs.start(
            "prometheus",
            [
                prometheus_bin,
                f"--config.file={prom_file}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
        )
        wait_for("Prometheus' /-/ready", answers_200(prometheus + "-/ready"), START_TIMEOUT, procs)
        want = {"basic_right": "1", "basic_wrong": "0", "mtls_cert": "1", "mtls_nocert": "0"}

        def ups() -> dict[str, str]:
            return {r["metric"]["job"]: r["value"][1] for r in query(prometheus, "up")}

        wait_for("every target scraped", lambda: len(ups()) == len(want), UP_TIMEOUT, procs)
        # A first scrape may run before the exporter has its certificate: wait for the verdicts.
        wait_for("the targets' verdicts", lambda: ups() == want, UP_TIMEOUT, procs)
        samples = query(prometheus, 'batchjob_exporter_build_info{job="basic_right"}')
        assert len(samples) == 1
        assert query(prometheus, 'batchjob_exporter_build_info{job="basic_wrong"}') == []
        log = procs.log("exporter-basic").read_text()
        assert "Traceback" not in log
        assert PASSWORD not in log
        assert hashed not in log
    finally:
        procs.stop()
