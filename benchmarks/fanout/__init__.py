"""The parts of ``benchmarks/live_fanout.py``: its worker processes (``publisher``,
``workers``), the stock-aiortc ``baseline`` server, one measured ``step``, the
``results`` computed from a step's readings, the ``report`` it prints, and ``profiling``."""

from pathlib import Path

ROOM, KEY = "bench", "benchkey123"
METRICS_TOKEN = "bench-metrics-token-0123456789"
VIEWERS_PER_PROCESS = 25
CONNECTS_IN_FLIGHT = 5  # per viewer process
LIGHT_VIEWER_NICE = 10
#: the benchmark script, run again for each worker process
SCRIPT = Path(__file__).resolve().parent.parent / "live_fanout.py"
