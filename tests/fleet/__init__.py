"""Tests of exporter.fleet against a real redis-server: link, windows, budgets, registrations."""
