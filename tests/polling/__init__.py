"""Tests of exporter.polling: scheduler, gate, client, credentials and the poller."""
