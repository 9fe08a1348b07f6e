"""Tests of exporter.jobs: the job table and its entries."""
