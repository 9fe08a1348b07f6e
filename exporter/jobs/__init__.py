"""Watched jobs: their keys and origins, and the table that owns each job's state."""
