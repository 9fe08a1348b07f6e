"""batch-job-exporter: Prometheus metrics for vendor batch import and report jobs."""

__version__ = "0.1.0"
