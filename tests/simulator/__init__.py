"""Tests of exporter.simulator: the three vendor APIs it serves."""
