"""What Prometheus reads: job lines in cached blocks, pages, self-metrics, the HTTP server."""
