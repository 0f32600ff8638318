"""core.job_queue.JobQueue: the queue packaging and replay uploads share (one job at a
time, a folder never queued twice, a failing job does not stop the next, resume from a
scan of the disk, close cancels the running job)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from core.job_queue import JobQueue
import pytest

pytestmark = pytest.mark.unit

log = logging.getLogger("test.job_queue")


async def test_one_at_a_time_in_order_never_twice(tmp_path):
    ran: list[str] = []
    running = 0
    most = 0
    gate = asyncio.Event()

    async def run(path: Path) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await gate.wait()
        ran.append(path.name)
        running -= 1

    jobs = JobQueue("test", run, log)
    await jobs.start()
    a, b = tmp_path / "a", tmp_path / "b"
    assert jobs.enqueue(a) and jobs.enqueue(b)
    assert not jobs.enqueue(a)  # already queued
    await asyncio.sleep(0.05)
    assert jobs.current == a.resolve() and jobs.queued == 1
    assert not jobs.enqueue(a)  # running
    gate.set()
    await asyncio.wait_for(jobs.join(), 5)
    assert ran == ["a", "b"] and most == 1 and jobs.current is None
    assert jobs.enqueue(a)  # done: it may run again
    await asyncio.wait_for(jobs.join(), 5)
    assert ran == ["a", "b", "a"]
    await jobs.close()
    assert not jobs.enqueue(b)


async def test_a_failing_job_is_logged_and_the_next_runs(tmp_path, caplog):
    ran: list[str] = []

    async def run(path: Path) -> None:
        if path.name == "bad":
            raise RuntimeError("disk on fire")
        ran.append(path.name)

    jobs = JobQueue("test", run, log)
    await jobs.start()
    jobs.enqueue(tmp_path / "bad")
    jobs.enqueue(tmp_path / "good")
    with caplog.at_level(logging.WARNING, logger="test.job_queue"):
        await asyncio.wait_for(jobs.join(), 5)
    await jobs.close()
    assert ran == ["good"]
    assert "test of" in caplog.text and "disk on fire" in caplog.text


async def test_resume_queues_what_the_scan_finds_and_close_cancels(tmp_path):
    started = asyncio.Event()
    cancelled = []

    async def run(path: Path) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(path.name)
            raise

    jobs = JobQueue("test", run, log)
    await jobs.start()
    jobs.enqueue(tmp_path / "x")
    queued = await jobs.resume(lambda: [tmp_path / "x", tmp_path / "y"])
    assert queued == [(tmp_path / "y").resolve()]  # x was queued already
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.wait_for(jobs.close(), 5)
    assert cancelled == ["x"]
