"""Generate the Grafana dashboards in ``grafana/dashboards/`` (dashboards as code).

    python grafana/generate.py           # rewrite the JSON files
    python grafana/generate.py --check   # exit 1 and show a diff if a committed file is stale

Edit the ``dashgen`` package next to this script, never the JSON:
``tests/test_dashboards.py`` fails when the committed JSON differs from what this
script writes.  Only the standard library is used.

Every query goes through the ``datasource`` template variable (``${datasource}``), so
the same files work imported through the Grafana UI (``__inputs`` asks for a
Prometheus data source) and provisioned from files (the variable falls back to a
Prometheus data source of the instance).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Python puts this directory on the path only when the script runs directly (not with
# -P or PYTHONSAFEPATH, nor when this file is imported): make sure dashgen is found.
HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from dashgen.cli import main  # noqa: E402 - importable only once the path is set

if __name__ == "__main__":
    raise SystemExit(main())
