"""Tests mirror the modules of the exporter package."""
