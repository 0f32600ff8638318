"""``CloseListeners``: listeners run once, in order, when their owner closes; one registered
after runs at once; one that fails is logged and the others still run."""

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
    listeners = CloseListeners(log)
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


async def test_a_late_listener_without_an_owner_given_still_runs():
    listeners = CloseListeners(log)
    await listeners.run()
    told = asyncio.Event()

    async def late() -> None:
        told.set()

    listeners.add(late)
    await asyncio.wait_for(told.wait(), 2)


async def test_a_failing_listener_is_logged_and_the_others_run(caplog):
    calls: list[str] = []

    async def failing() -> None:
        raise RuntimeError("boom")

    listeners = CloseListeners(log, what="seat release")
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
