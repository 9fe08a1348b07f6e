"""Job state across restarts: records, the SQLite state file, and the stores."""
