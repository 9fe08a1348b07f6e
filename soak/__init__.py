"""The soak: ``python -m soak [--duration 30m]`` (also ``make soak``).

A fleet of three exporters sharing one real redis-server, against one
simulator with its per-account rate limiter and every fault switched on at
random, for a fixed time: jobs come and go through the registration API, the
watch dirs and config reloads (broken ones too), exporters are SIGKILLed and
restarted on their state, Redis is killed and restarted.  At the end it checks
what the fleet promised (no request inside a window it was told about, the
budget held, final values right, no registration lost, no traceback, flat
memory), prints a table and exits 1 if a check failed.  See docs/fleet.md.
"""
