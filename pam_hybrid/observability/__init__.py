"""What the staff side watches: Prometheus metrics (across server processes) and one JSON log line per answer."""
