"""Tests of exporter.exposition: lines, blocks, pages and the metrics server."""
