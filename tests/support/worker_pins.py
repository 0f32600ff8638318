"""One media worker and one interaction worker: what the test harness runs unless a test asks
for more. The server's default is one of each per CPU (``core.settings``); tests pin one so
they run in one process (the in-process servers) or a single ``stagepass serve`` process, as
fast as before, and tests of workers pass their count explicitly."""

from __future__ import annotations

#: for ``Settings.build(**ONE_WORKER_EACH, ...)``
ONE_WORKER_EACH = {"workers": 1, "interaction_workers": 1}

#: for ``stagepass serve``; flags given after these win (argparse keeps the last)
ONE_WORKER_EACH_FLAGS = ("--workers", "1", "--interaction-workers", "1")
