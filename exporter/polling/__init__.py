"""Polling the vendors: schedule, gate, HTTP client and credentials, one poll into job state."""
