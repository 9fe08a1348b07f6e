"""Tests of exporter.config: validation, every problem with its place in the file."""
