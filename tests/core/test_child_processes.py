"""``ChildProcesses`` with real child processes: a child that dies is started again (a clean exit
only when asked to), close asks each child to stop, kills one that does not, and also stops a
child that is still starting."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

import pytest

from core.child_processes import ChildProcesses
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

log = logging.getLogger("test.child_processes")

SLEEPS = "import time; time.sleep(60)"
# stops only at the end of its stdin, never on SIGTERM; says so once it ignores SIGTERM
STUBBORN = ("import signal, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
            "sys.stdin.read()")


async def python(code: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-c", code, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE)


async def test_a_child_that_dies_is_started_again_and_close_terminates_every_child(caplog):
    exits: list[tuple[int, int | None]] = []
    lived: list[float] = []

    async def spawn(index: int) -> asyncio.subprocess.Process:
        process = await python(SLEEPS)
        children.register(index, process)
        return process

    async def exited(index: int, code: int | None) -> None:
        exits.append((index, code))

    def delay(seconds: float) -> float:
        lived.append(seconds)
        return 0.0

    children = ChildProcesses("test worker", log, spawn, exited=exited, restart_delay=delay)
    first = [await children.start(i) for i in range(2)]
    os.kill(first[0].pid, signal.SIGKILL)
    caplog.set_level(logging.WARNING, logger=log.name)
    await wait_for(lambda: children.restarts == 1 and children.processes[0] is not first[0])
    assert exits == [(0, -signal.SIGKILL)] and len(lived) == 1 and lived[0] >= 0
    assert f"test worker 0 (pid {first[0].pid}) exited with signal 9" in caplog.text
    assert f"test worker 0 started again (pid {children.processes[0].pid})" in caplog.text
    assert first[1].returncode is None

    latest = dict(children.processes)
    await children.close()
    assert [p.returncode for p in latest.values()] == [-signal.SIGTERM, -signal.SIGTERM]
    assert children.restarts == 1 and exits == [(0, -signal.SIGKILL)]  # closing restarts nothing


async def test_a_clean_exit_is_final_when_the_owner_says_so():
    spawned = {0: 0, 1: 0}
    exits: list[tuple[int, int | None]] = []

    async def spawn(index: int) -> asyncio.subprocess.Process:
        spawned[index] += 1
        # child 0 exits cleanly; child 1 fails once, then runs
        code = "raise SystemExit(0)" if index == 0 else ("raise SystemExit(3)" if spawned[1] == 1 else SLEEPS)
        process = await python(code)
        children.register(index, process)
        return process

    async def exited(index: int, code: int | None) -> None:
        exits.append((index, code))

    children = ChildProcesses("test worker", log, spawn, exited=exited, restart_delay=lambda lived: 0.0,
                              restart_clean_exit=False)
    for index in (0, 1):
        await children.start(index)
    await wait_for(lambda: spawned[1] == 2 and (0, 0) in exits)
    await asyncio.sleep(0.3)  # time enough for a restart of child 0, were there one
    assert spawned == {0: 1, 1: 2} and sorted(exits) == [(0, 0), (1, 3)] and children.restarts == 1
    await children.close()


async def test_close_asks_then_kills_a_child_that_does_not_stop():
    async def spawn(index: int) -> asyncio.subprocess.Process:
        process = await python(STUBBORN if index == 1 else "import sys; sys.stdin.read()")
        children.register(index, process)
        if index == 1:
            assert process.stdout is not None
            assert await process.stdout.readline() == b"ready\n"
        return process

    async def close_stdin(index: int, process: asyncio.subprocess.Process) -> None:
        if index == 0:  # child 1 is not even asked: it ignores SIGTERM and its stdin stays open
            assert process.stdin is not None
            process.stdin.close()

    children = ChildProcesses("test worker", log, spawn, stop_timeout=0.5)
    polite, stubborn = [await children.start(i) for i in range(2)]
    stubborn.send_signal(signal.SIGTERM)  # ignored
    await children.close(ask=close_stdin)
    assert polite.returncode == 0 and stubborn.returncode == -signal.SIGKILL


async def test_close_stops_a_child_that_is_still_starting():
    """A restart in progress (the child exists, it is not ready yet) is stopped too, not orphaned."""
    starting = asyncio.Event()
    spawned: list[asyncio.subprocess.Process] = []

    async def spawn(index: int) -> asyncio.subprocess.Process:
        process = await python(SLEEPS)
        spawned.append(process)
        children.register(index, process)
        if len(spawned) > 1:
            starting.set()
            await asyncio.Event().wait()  # never ready
        return process

    children = ChildProcesses("test worker", log, spawn, restart_delay=lambda lived: 0.0)
    first = await children.start(0)
    first.kill()
    await asyncio.wait_for(starting.wait(), 10)
    await children.close()
    assert [p.returncode for p in spawned] == [-signal.SIGKILL, -signal.SIGTERM]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
async def test_a_child_stopped_by_a_signal_is_not_a_crash(caplog, stop):
    """SIGTERM or SIGINT to the process group (systemd, docker stop, Ctrl-C) reaches the children
    just before their owner closes: such an exit is logged at INFO and, once the owner closes,
    the child is left stopped. A child signalled alone (the owner runs on) comes back after
    the grace, with a WARNING, never an ERROR."""
    spawned: list[asyncio.subprocess.Process] = []
    ready = "import time; print('ready', flush=True); time.sleep(60)"

    async def spawn(index: int) -> asyncio.subprocess.Process:
        process = await python(ready)
        spawned.append(process)
        children.register(index, process)
        return process

    async def signal_when_ready(child: asyncio.subprocess.Process) -> None:
        assert await child.stdout.readline() == b"ready\n"  # its interpreter handles the signal now
        child.send_signal(stop)

    children = ChildProcesses("test worker", log, spawn, restart_delay=lambda lived: 0.0, signal_grace=0.5)
    caplog.set_level(logging.INFO, logger=log.name)
    child = await children.start(0)
    await signal_when_ready(child)
    await wait_for(lambda: "stopped" in caplog.text)
    await asyncio.sleep(0.2)  # within the grace: no restart yet
    assert len(spawned) == 1 and children.restarts == 0
    records = [r for r in caplog.records if r.name == log.name]
    assert [r.levelname for r in records] == ["INFO"], caplog.text
    assert records[0].getMessage().startswith(f"test worker 0 (pid {child.pid}) stopped: exited with signal {int(stop)} ")
    await wait_for(lambda: children.restarts == 1)  # the owner did not close: the node runs on
    await wait_for(lambda: "started again" in caplog.text)
    records = [r for r in caplog.records if r.name == log.name]
    assert [r.levelname for r in records] == ["INFO", "WARNING", "WARNING"], caplog.text
    assert "stopped alone" in records[1].getMessage()

    await signal_when_ready(spawned[-1])  # now the owner closes within the grace: left stopped
    await wait_for(lambda: caplog.text.count("stopped: exited") == 2)
    await children.close()
    await asyncio.sleep(0.7)
    assert len(spawned) == 2 and children.restarts == 1
    assert all(r.levelname in ("INFO", "WARNING") for r in caplog.records if r.name == log.name), caplog.text
