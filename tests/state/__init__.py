"""Tests of exporter.state: records, the state file, and restarts."""
