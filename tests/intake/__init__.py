"""Tests of exporter.intake: the watchlist, registration API, watch dir and reload."""
