"""Real ``stagepass serve`` processes for tests that kill, restart or run several of them."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Optional

import aiohttp

from tests.support.password_costs import CHEAP_ARGON2_ENV
from tests.support.worker_pins import ONE_WORKER_EACH_FLAGS

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_server(data_dir: Path, *flags: str, ready_path: str = "/api/catalog",
                       pin_workers: bool = True, cpus: Optional[set[int]] = None,
                       own_group: bool = False) -> tuple[subprocess.Popen, str]:
    """``stagepass serve --data-dir data_dir *flags`` on a free port, once ``ready_path``
    answers 200; the environment's own Stagepass settings are left out, password hashes are
    cheap (``CHEAP_ARGON2_ENV``). One media and one
    interaction worker (a single process) unless ``flags`` say otherwise or ``pin_workers``
    is false (the server's own default: one of each per CPU); ``cpus``: the CPUs the server may
    run on (its affinity, as ``taskset`` or a container's cpuset sets it); ``own_group``: the server
    and its workers in a process group of their own (a new session), for ``os.killpg``."""
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STAGEPASS_") and k not in ("REDIS_URL", "DATABASE_URL")}
    # rooms are listed at once, as in the in-process fixtures (tests/paywall/test_trust.py tests the queue)
    env["STAGEPASS_REVIEW_UNVERIFIED"] = "off"
    env.update(CHEAP_ARGON2_ENV)  # flags given in ``flags`` win over the environment
    proc = subprocess.Popen(
        [sys.executable, "-m", "stagepass.cli", "serve", "--port", str(port), "--data-dir", str(data_dir),
         *(ONE_WORKER_EACH_FLAGS if pin_workers else ()), *flags],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus), start_new_session=own_group,
    )
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            if proc.poll() is not None:
                raise AssertionError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                async with http.get(base + ready_path) as r:
                    if r.status == 200:
                        return proc, base
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    proc.kill()
    raise AssertionError("server did not start")


def ready(base: str):
    """A check for ``until``: the server's ``/readyz`` answers 200 (every media worker runs)."""
    async def check() -> bool:
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/readyz") as r:
                return r.status == 200

    return check


def worker_pids(server_pid: int) -> dict[int, int]:
    """Media worker index -> pid, from the children of a ``stagepass serve --workers N`` process."""
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()
    out = {}
    for pid in map(int, children):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            continue
        if b"mediaserver.workers.worker" in argv:
            out[int(argv[argv.index(b"--index") + 1])] = pid
    return out


def interaction_worker_pids(server_pid: int) -> list[int]:
    """The pids of the interaction worker processes of a ``stagepass serve`` process."""
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()
    out = []
    for pid in map(int, children):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            continue
        if b"stagepass.interaction_worker" in argv:
            out.append(pid)
    return out


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 20 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def restarted(server_pid: int, index: int, old_pid: int):
    """A check for ``until``: media worker ``index`` runs again, not as ``old_pid``."""
    async def check() -> bool:
        now = worker_pids(server_pid)
        return index in now and now[index] != old_pid

    return check
