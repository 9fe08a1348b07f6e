"""The jobs page's one stylesheet, and the Content-Security-Policy that allows exactly it.

The page loads nothing: its CSS is this one inline ``<style>`` block, which the
policy allows by its SHA-256 (computed here, once), so no other style, no
script and no fetch of any kind runs, even if an escaping bug let markup in.
Colours come in a light and a dark set (``prefers-color-scheme``), each text
colour at a contrast of 4.5:1 or more on its background (WCAG AA).
"""

from __future__ import annotations

import base64
import hashlib
from types import MappingProxyType

__all__ = ["CSP", "HEADERS", "STYLE"]

STYLE = """
:root{color-scheme:light dark;--bg:#fff;--fg:#1f2328;--muted:#57606a;--line:#d0d7de;
--panel:#f6f8fa;--link:#0969da;--warn:#9a3412;--ok:#1a7f37;--err:#cf222e;--track:#d8dee4}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9da7b3;
--line:#30363d;--panel:#161b22;--link:#58a6ff;--warn:#fdba74;--ok:#3fb950;--err:#ff7b72;
--track:#30363d}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,
"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
a{color:var(--link)}
header{display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;align-items:baseline;padding:.75rem 1.25rem;
border-bottom:1px solid var(--line);background:var(--panel)}
header h1{font-size:1.15rem;margin:0}
header nav{display:flex;gap:1rem;margin-left:auto}
main{padding:0 1.25rem 2rem}
h2{font-size:1rem;margin:1.25rem 0 .5rem}
.muted,.sub{color:var(--muted)}
.sub{display:block;font-size:.85em}
.wrap{overflow-x:auto}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;vertical-align:top;padding:.4rem .6rem;border-bottom:1px solid var(--line)}
thead th{font-size:.8rem;text-transform:uppercase;letter-spacing:.03em;color:var(--muted);
border-bottom:2px solid var(--line);white-space:nowrap}
tbody th{font-weight:normal}
tbody tr:hover{background:var(--panel)}
.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.id{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-weight:600;word-break:break-all}
.label{display:inline-block;margin:.15rem .25rem 0 0;padding:0 .35rem;border:1px solid var(--line);
border-radius:.6rem;font-size:.8em;color:var(--muted)}
.badge{display:inline-block;padding:.05rem .5rem;border-radius:.7rem;font-size:.8rem;
font-weight:600;white-space:nowrap;color:#fff;background:#4b5563;text-decoration:none}
.b-failed{background:#b42318}.b-poll_failed{background:#92400e}.b-running{background:#1d4ed8}
.b-pending{background:#6d28d9}.b-completed{background:#15803d}.b-not_found{background:#0e7490}
.b-unpolled{background:transparent;color:var(--muted);border:1px solid var(--line)}
.counts{display:flex;flex-wrap:wrap;gap:.25rem}
.bar{display:block;width:10rem;height:.5rem;margin:.3rem 0 .15rem;border-radius:.25rem}
.bar .track{fill:var(--track)}.bar .ok{fill:var(--ok)}.bar .err{fill:var(--err)}
.split{opacity:.5}
.warn{color:var(--warn);font-weight:600}
.errs{color:var(--err)}
code{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:.9em}
.gate-open{color:var(--ok);font-weight:600}
.gate-closed{color:var(--warn);font-weight:600}
form{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:end;margin:.5rem 0 .75rem}
form div{display:flex;flex-direction:column;gap:.15rem}
label{font-size:.8rem;color:var(--muted)}
select,input,button{font:inherit;padding:.3rem .5rem;border:1px solid var(--line);
border-radius:.35rem;background:var(--bg);color:var(--fg)}
input[type=search]{min-width:16rem}
button{background:var(--link);border-color:var(--link);color:var(--bg);font-weight:600;
cursor:pointer}
.pager{display:flex;gap:1rem;align-items:baseline;margin:.75rem 0}
.alert{border:1px solid var(--warn);border-left-width:4px;padding:.5rem .75rem;margin:1rem 0;
background:var(--panel)}
""".lstrip()

_DIGEST = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
# Nothing but this stylesheet; "data:" images for the empty favicon link only (without it
# the browser asks for /favicon.ico, a 404 in its console); forms post back to this server.
CSP = (
    f"default-src 'none'; style-src 'sha256-{_DIGEST}'; img-src data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = MappingProxyType(
    {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }
)
