"""The worker pool's readiness check names the workers that are not running."""

from __future__ import annotations

import pytest

from core.settings import Settings
from mediaserver.workers.supervisor import WorkerPool

pytestmark = pytest.mark.unit


async def test_readiness_names_the_workers_not_running():
    async def nothing(*args) -> None:
        return None

    pool = WorkerPool(Settings.build(), 2, on_event=nothing, on_exit=nothing)
    assert await pool.readiness() == "media worker 0 not running (restarting), media worker 1 not running (restarting)"
    assert pool.alive() == []
    pool.exits[1] = "pid 4321 exited with signal 9"  # as ``_watch`` records a death
    assert await pool.readiness() == ("media worker 0 not running (restarting), "
                                      "media worker 1 not running (pid 4321 exited with signal 9; restarting)")
