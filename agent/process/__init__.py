"""The server process's housekeeping, beside the calls: its Prometheus instruments and
resource figures (metrics.py), giving freed memory back after calls end (memory.py), the
calls it holds in real time (capacity.py), and its model threads stopped at exit
(exit_stop.py)."""
