"""The server of a step, a ``Child`` pinned to the server's CPUs: ``stagepass serve`` (from
this checkout, or from a baseline checkout for ``stagepass-base``) or Janus with a generated
configuration, and ``wait_up`` until it answers."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import aiohttp

from common.children import ROOT, Child, free_port
from fanout import KEY, ROOM
from fanout.step import until
from side_by_side.janus import janus_config


@dataclass
class Server:
    """A started server: the process, the viewers' base URL, the feeder's target
    (``whip:<base url>`` or ``rtp:<port>``) and the URL that answers 200 once it is up."""

    child: Child
    base: str
    feed: str
    probe: str


async def start_stagepass(server: str, name: str, logdir: Path, cpus: frozenset[int],
                          base_root: Optional[Path]) -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "stagepass.cli", "serve", "--port", str(port),
            "--data-dir", str(logdir / "data"), "--rooms", f"{ROOM}={KEY}",
            "--log-level", "WARNING", "--recordings", "off"]
    if server == "stagepass-ports":
        argv += ["--udp-port", "off"]
    elif server.startswith("stagepass-workers"):  # benchmarks/scale.py
        argv += ["--workers", server.removeprefix("stagepass-workers")]
    root = base_root.resolve() if server == "stagepass-base" and base_root is not None else ROOT
    env = dict(os.environ, PYTHONPATH=str(root), STAGEPASS_LOW_RENDITION="off")  # as Janus: no encoder
    # one process unless a workers variant's flag says otherwise (the default is one worker
    # of each kind per CPU; a variable, as older checkouts ignore unknown ones)
    env.update(STAGEPASS_WORKERS="1", STAGEPASS_INTERACTION_WORKERS="1")
    child = await Child.start(f"{name}-server", argv, logdir, cpus, env=env)
    base = f"http://127.0.0.1:{port}"
    return Server(child, base, f"whip:{base}", f"{base}/api/rooms/{ROOM}")


async def start_janus(server: str, name: str, logdir: Path, cpus: frozenset[int]) -> Server:
    port, rtp_port = free_port(), free_port()
    config = janus_config(logdir / f"{name}-conf", port, rtp_port, 2 if server == "janus-el2" else 0)
    # its log to a file (-N -L): a pipe nobody reads would fill and stall it
    child = await Child.start(f"{name}-server",
                              [shutil.which("janus") or "janus", "-C", str(config),
                               "-F", str(config.parent), "-o", "-N", "-L", str(logdir / f"{name}-janus.log")],
                              logdir, cpus)
    base = f"http://127.0.0.1:{port}/janus"
    return Server(child, base, f"rtp:{rtp_port}", f"{base}/info")


async def start_server(server: str, name: str, logdir: Path, cpus: frozenset[int],
                       base_root: Optional[Path] = None) -> Server:
    """``server`` (``stagepass*`` or ``janus*``) started as ``name`` (not yet answering:
    ``wait_up``); the caller stops its ``child``."""
    if server.startswith("stagepass"):
        started = await start_stagepass(server, name, logdir, cpus, base_root)
    else:
        started = await start_janus(server, name, logdir, cpus)
    started.child.takes_commands = False
    return started


async def wait_up(http: aiohttp.ClientSession, server: str, started: Server) -> None:
    """Until the server answers its probe; an error at once if it exited."""
    proc = started.child.proc

    async def up() -> bool:
        if proc.returncode is not None:
            raise RuntimeError(f"server exited; see {started.child.log}")
        try:
            async with http.get(started.probe) as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    await until(up, 30, f"{server} to answer")
