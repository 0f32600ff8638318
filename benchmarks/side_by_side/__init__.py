"""The parts of ``benchmarks/janus_side_by_side.py``: the ``clip`` every server is fed, the
``feeder`` and ``viewers`` worker processes, the ``janus`` configuration, the ``servers``
it launches, one measured ``step``, and the ``report`` it prints."""

from pathlib import Path

#: the benchmark script, run again for each worker process (``--worker feeder|viewers``)
SCRIPT = Path(__file__).resolve().parent.parent / "janus_side_by_side.py"
VIEWERS_PER_PROCESS = 25
