"""Benchmarks of the exporter: ``python -m bench [--quick]`` (also ``make bench``).

Compares, in one run on the same data, this exporter's ``/metrics`` with the
naive prometheus_client pattern and with a floor (pre-joined bytes from a bare
aiohttp handler); measures polling throughput against the simulator, memory,
RSS over a churn run, and start-up.  Results are printed as a table and written
as JSON under ``bench/results/``.  See ``docs/performance.md``.
"""
