"""``CloseListeners``: listeners run once, in order, when their owner closes; one registered
after runs at once, as a task of the long-lived owner given (cancelled and awaited when it
closes), or is not run, with a warning, once that owner has closed; one that fails is
logged and the others still run."""

from __future__ import annotations

import asyncio
import logging

import pytest

from core.close_listeners import CloseListeners
from core.tasks import TaskOwner

pytestmark = pytest.mark.unit

log = logging.getLogger("test.close_listeners")


def recording(calls: list[str], name: str):
    async def listener() -> None:
        calls.append(name)

    return listener


async def test_listeners_run_once_in_order_when_closed():
    calls: list[str] = []
    listeners = CloseListeners(log, late=TaskOwner(log))
    listeners.add(recording(calls, "a"))
    listeners.add(recording(calls, "b"))
    assert calls == [] and len(listeners) == 2 and not listeners.ran
    await listeners.run()
    await listeners.run()  # a second close tells nobody again
    assert calls == ["a", "b"] and listeners.ran and len(listeners) == 0


async def test_a_listener_registered_after_the_close_runs_at_once():
    calls: list[str] = []
    owner = TaskOwner(log)
    listeners = CloseListeners(log, late=owner)
    await listeners.run()
    told = asyncio.Event()

    async def late() -> None:
        calls.append("late")
        told.set()

    listeners.add(late)
    await asyncio.wait_for(told.wait(), 2)
    assert calls == ["late"]
    await owner.close()


async def test_a_late_listener_still_running_is_cancelled_and_awaited_with_its_owner():
    owner = TaskOwner(log)
    listeners = CloseListeners(log, late=owner)
    await listeners.run()
    started, ended = asyncio.Event(), asyncio.Event()

    async def slow() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            ended.set()

    listeners.add(slow)
    await asyncio.wait_for(started.wait(), 2)
    assert len(owner) == 1
    await owner.close()  # shutdown: the late listener does not outlive the room
    assert ended.is_set() and len(owner) == 0


async def test_a_listener_registered_after_its_owner_shut_down_is_not_run_and_says_so(caplog):
    owner = TaskOwner(log)
    listeners = CloseListeners(log, late=owner, what="seat release")
    await listeners.run()
    await owner.close()
    calls: list[str] = []
    with caplog.at_level(logging.WARNING, logger="test.close_listeners"):
        listeners.add(recording(calls, "too late"))
    await asyncio.sleep(0)
    assert calls == [] and len(owner) == 0
    assert [r.getMessage() for r in caplog.records] == [
        "seat release not run: registered after the close, once its owner had shut down"]


async def test_a_failing_listener_is_logged_and_the_others_run(caplog):
    calls: list[str] = []

    async def failing() -> None:
        raise RuntimeError("boom")

    listeners = CloseListeners(log, late=TaskOwner(log), what="seat release")
    listeners.add(recording(calls, "before"))
    listeners.add(failing)
    listeners.add(recording(calls, "after"))
    with caplog.at_level(logging.ERROR, logger="test.close_listeners"):
        await listeners.run()
    assert calls == ["before", "after"]
    failures = [r for r in caplog.records if r.getMessage() == "seat release failed"]
    assert len(failures) == 1 and failures[0].exc_info is not None
    assert "boom" in str(failures[0].exc_info[1])


async def test_a_failing_late_listener_is_logged(caplog):
    owner = TaskOwner(log)
    listeners = CloseListeners(log, late=owner)
    await listeners.run()
    done = asyncio.Event()

    async def failing() -> None:
        done.set()
        raise RuntimeError("late boom")

    with caplog.at_level(logging.ERROR, logger="test.close_listeners"):
        listeners.add(failing)
        await asyncio.wait_for(done.wait(), 2)
        await owner.close()  # awaits the late listener's task
    assert [r.getMessage() for r in caplog.records] == ["close listener failed"]
