"""Grafana dashboards as code: the panels, queries and dashboards behind ``generate.py``."""
