"""SIGTERM to the whole process group of ``stagepass serve`` (what systemd, ``docker stop`` and
Ctrl-C in a terminal do) reaches the workers as it reaches the control plane: the node stops,
with no worker logged as a crash and none started again, and exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.support.server_process import interaction_worker_pids, start_server, worker_pids

pytestmark = pytest.mark.e2e


async def test_sigterm_to_the_process_group_stops_the_node_without_crash_reports(tmp_path):
    proc, base = await start_server(tmp_path, "--workers", "2", "--interaction-workers", "2", "--rtmp-port", "0",
                                    "--recordings", "off", ready_path="/readyz", own_group=True)
    try:
        assert len(worker_pids(proc.pid)) == 2 and len(interaction_worker_pids(proc.pid)) == 2
        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(timeout=30)
        took = time.monotonic() - started
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        raise
    log = proc.stderr.read().decode()
    assert code == 0, log[-3000:]
    assert " ERROR " not in log and "starting it again" not in log and "started again" not in log, log[-3000:]
    assert took < 10, took
    with pytest.raises(ProcessLookupError):  # no worker outlives the node
        os.killpg(proc.pid, 0)
