"""What the staff side watches: Prometheus metrics (across server processes), one JSON log line per answer,
and the /metrics view."""
