"""``Child``: a subprocess of a benchmark (a server, or a worker mode of the benchmark's
own script) pinned to CPUs, dying with its parent, and driven by JSON lines on its
stdin/stdout (:func:`command_loop` is the worker's side)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Awaitable, Callable, Optional

__all__ = ["ALL_CPUS", "Child", "child_setup", "command_loop", "free_port"]

ROOT = Path(__file__).resolve().parents[2]  #: the repository
_LIBC = ctypes.CDLL(None, use_errno=True)
ALL_CPUS = frozenset(os.sched_getaffinity(0))


def _die_with_parent() -> None:  # runs in the child between fork and exec
    _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: no orphans if we are killed


def child_setup(cpus: frozenset[int], nice: int = 0) -> Callable[[], None]:
    def setup() -> None:  # between fork and exec: on these CPUs, dies with its parent
        os.sched_setaffinity(0, cpus)
        if nice:
            os.nice(nice)
        _die_with_parent()

    return setup


class Child:
    """A subprocess: the server, or a worker of the benchmark driven by JSON lines."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.name, self.proc, self.log = name, proc, log
        self.takes_commands = True  #: False for servers: stop them with SIGTERM at once

    @classmethod
    async def start(cls, name: str, argv: list[str], logdir: Path, cpus: frozenset[int],
                    cwd: Path = ROOT, env: Optional[dict[str, str]] = None,
                    nice: int = 0) -> "Child":
        log = logdir / f"{name}.log"
        with open(log, "ab") as err:
            proc = await asyncio.create_subprocess_exec(
                *argv, cwd=cwd, env=env, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=err, start_new_session=True,
                preexec_fn=child_setup(cpus, nice),
            )
        return cls(name, proc, log)

    @classmethod
    async def worker(cls, script: Path, name: str, logdir: Path, cpus: frozenset[int], *args: str,
                     nice: int = 0) -> "Child":
        """``script`` (a benchmark) run again in one of its worker modes (``args``)."""
        argv = [sys.executable, str(script), *args]
        return await cls.start(name, argv, logdir, cpus, nice=nice)

    async def request(self, msg: dict, timeout: float = 120.0) -> dict:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        await self.proc.stdin.drain()
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
            if not line:
                raise RuntimeError(f"{self.name} exited; see {self.log}")
            if line.startswith(b"{"):
                reply = json.loads(line)
                if "error" in reply:
                    raise RuntimeError(f"{self.name}: {reply['error']}")
                return reply

    async def stop(self) -> None:
        """Ask politely (``quit``/SIGTERM), then kill."""
        if self.proc.returncode is not None:
            return
        try:
            if not self.takes_commands:
                raise asyncio.TimeoutError
            with contextlib.suppress(Exception):
                self.proc.stdin.write(b'{"cmd": "quit"}\n')  # type: ignore[union-attr]
                await self.proc.stdin.drain()  # type: ignore[union-attr]
            await asyncio.wait_for(self.proc.wait(), 3)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 3)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]



async def command_loop(handle: Callable[[dict], Awaitable[dict]]) -> None:
    """Answer JSON commands from the parent on stdin, one JSON line each on stdout,
    until ``quit`` or the parent goes away (EOF)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return
        msg = json.loads(line)
        if msg["cmd"] == "quit":
            return
        try:
            reply = await handle(msg)
        except Exception as exc:  # report, keep serving
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
