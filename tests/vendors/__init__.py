"""Tests of exporter.vendors: each vendor's parser, and the registry."""
