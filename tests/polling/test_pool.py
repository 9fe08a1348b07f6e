"""The source pool across reloads: which clients are kept, and what a kept one re-reads."""

from __future__ import annotations

import random
import ssl
from pathlib import Path

from exporter.clock import FakeClock
from exporter.config import Config, SourceConfig, TLSConfig
from exporter.polling.pool import SourcePool
from tests.polling.test_client_tls import Stats, make_ca


def trusted(context: ssl.SSLContext) -> list[object]:
    """The subjects of the CAs a context trusts."""
    return [cert["subject"] for cert in context.get_ca_certs()]


async def test_a_reload_keeps_the_client_and_makes_it_reread_its_tls_files(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Same settings: the same client, which looks at its rotated ca_file at once."""
    ca1, ca2 = make_ca(tmp_path, "ca1"), make_ca(tmp_path, "ca2")
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca1.cert.read_bytes())
    src = SourceConfig(
        name="vendor",
        api="batch_import_job",
        base_url="https://127.0.0.1:9/",
        path="jobs/{id}",
        poll_interval=30.0,
        tls_config=TLSConfig(ca_file=str(ca_file)),
    )
    config = Config(sources=(src,))
    pool = SourcePool(stats=Stats(), clock=clock, rng=random.Random(0))
    try:
        await pool.update(config)
        client = pool.runtimes["vendor"].client
        before = await client.tls.current()
        assert trusted(before) == [((("commonName", "ca1"),),)]
        ca_file.write_bytes(ca2.cert.read_bytes())
        assert await client.tls.current() is before  # the next check is seconds away
        assert await pool.update(config) == set()
        assert pool.runtimes["vendor"].client is client
        assert trusted(await client.tls.current()) == [((("commonName", "ca2"),),)]
    finally:
        await pool.close()
