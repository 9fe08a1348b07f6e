"""The shipped config.example.yaml is valid once its secret files exist."""

from __future__ import annotations

import re
from pathlib import Path

from exporter.config import parse_config
from exporter.vendors import REGISTRY

EXAMPLE = Path(__file__).parent.parent / "config.example.yaml"


def test_example_config_loads_with_its_secrets_in_place(tmp_path: Path) -> None:
    """Every source of the example validates, with /run/secrets files made in tmp."""
    text = EXAMPLE.read_text()
    for path in set(re.findall(r"/run/secrets/[\w./-]+", text)):
        local = tmp_path / path.lstrip("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text("s3cret\n")
        text = text.replace(path, str(local))
    config = parse_config(text, "config.example.yaml", REGISTRY)
    assert {s.api for s in config.sources} == set(REGISTRY)
    assert sum(len(s.jobs) for s in config.sources) == 4
