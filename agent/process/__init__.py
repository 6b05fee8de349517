"""The server process's housekeeping, beside the calls: its Prometheus instruments and
resource figures (metrics.py), and giving freed memory back after calls end (memory.py)."""
