"""Running ``tests/support/gst_whip_client.py`` (GStreamer ``webrtcbin`` WHIP/WHEP clients) from
tests and benchmarks.

The clients run under the *system* python3 with Debian's GStreamer (python3-gi,
gstreamer1.0-plugins-bad/-good/-ugly/-libav, gstreamer1.0-nice), never in the project's
virtualenv. The ``gstreamer`` fixture skips when that stack is missing, except under
``CI=true``, where a missing GStreamer fails the test (``tests/support/missing_tools.py``;
``.ci/run`` installs it).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Callable, Optional

import pytest

from tests.support.missing_tools import missing_tool

__all__ = ["GstClient", "SYSTEM_PYTHON", "gstreamer", "gstreamer_missing"]

SYSTEM_PYTHON = os.environ.get("STAGEPASS_GST_PYTHON", "/usr/bin/python3")
CLIENT = Path(__file__).with_name("gst_whip_client.py")
ELEMENTS = ("webrtcbin", "nicesrc", "x264enc", "rtph264pay", "vp8enc", "opusenc", "avdec_h264", "vp8dec")

_PROBE = f"""
import gi
gi.require_version("Gst", "1.0"); gi.require_version("GstWebRTC", "1.0"); gi.require_version("GstSdp", "1.0")
from gi.repository import Gst, GstWebRTC, GstSdp
Gst.init(None)
missing = [e for e in {ELEMENTS!r} if Gst.ElementFactory.find(e) is None]
print(",".join(missing))
"""


def gstreamer_missing() -> Optional[str]:
    """Why the GStreamer clients cannot run here, or None if they can."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"no system python at {SYSTEM_PYTHON}"
    try:
        probe = subprocess.run([SYSTEM_PYTHON, "-c", _PROBE], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run {SYSTEM_PYTHON}: {exc}"
    if probe.returncode != 0:
        return f"python3-gi / GStreamer introspection missing: {probe.stderr.strip().splitlines()[-1:]}"
    if probe.stdout.strip():
        return f"GStreamer elements missing: {probe.stdout.strip()}"
    return None


@pytest.fixture(scope="session")
def gstreamer() -> None:
    """Skips (fails under CI=true) unless the GStreamer WHIP/WHEP clients can run."""
    reason = gstreamer_missing()
    if reason:
        missing_tool(reason + " (apt-get install gstreamer1.0-plugins-bad gstreamer1.0-nice "
                     "python3-gi ...; see .ci/run)")


class GstClient:
    """One ``gst_whip_client.py`` process: its JSON events, as they come."""

    def __init__(self, *args: str) -> None:
        self.args = [str(CLIENT), *args]
        self.events: list[dict] = []
        self.stderr = b""
        self._proc: Optional[asyncio.subprocess.Process] = None
        self._reader: Optional[asyncio.Task] = None
        self._err_reader: Optional[asyncio.Task] = None
        self._changed = asyncio.Event()

    @classmethod
    async def publish(cls, url: str, token: str, *, codec: str = "h264", seconds: float = 8,
                      **options: object) -> "GstClient":
        client = cls("publish", url, "--token", token, "--codec", codec, "--seconds", str(seconds),
                     *_options(options))
        await client.start()
        return client

    @classmethod
    async def play(cls, url: str, *, token: Optional[str] = None, seconds: float = 6,
                   **options: object) -> "GstClient":
        args = ["play", url, "--seconds", str(seconds), *_options(options)]
        if token:
            args += ["--token", token]
        client = cls(*args)
        await client.start()
        return client

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            SYSTEM_PYTHON, *self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "GST_DEBUG": os.environ.get("GST_DEBUG", "0")},
        )
        self._reader = asyncio.ensure_future(self._read())
        self._err_reader = asyncio.ensure_future(self._read_stderr())

    async def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        async for line in self._proc.stderr:
            if len(self.stderr) < 1 << 16:
                self.stderr += line

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        async for line in self._proc.stdout:
            try:
                self.events.append(json.loads(line))
            except ValueError:
                continue
            self._changed.set()
            self._changed = asyncio.Event()

    def event(self, name: str, until: Optional[Callable[[dict], bool]] = None) -> Optional[dict]:
        """The first ``name`` event (for which ``until`` holds, if given)."""
        return next((e for e in self.events if e["event"] == name and (until is None or until(e))), None)

    async def wait_event(self, name: str, timeout: float = 30,
                         until: Optional[Callable[[dict], bool]] = None) -> dict:
        async def wait() -> dict:
            while True:
                found = self.event(name, until)
                if found is not None:
                    return found
                if self._reader is not None and self._reader.done():
                    raise AssertionError(f"the GStreamer client exited before {name!r}: {self.describe()}")
                changed = self._changed
                await asyncio.wait([asyncio.ensure_future(changed.wait()), self._reader], timeout=1,
                                   return_when=asyncio.FIRST_COMPLETED)

        return await asyncio.wait_for(wait(), timeout)

    async def finish(self, timeout: float = 60) -> dict:
        """End the session now (the client DELETEs it, as at the end of its ``seconds``);
        its summary."""
        assert self._proc is not None
        if self._proc.returncode is None:
            self._proc.send_signal(signal.SIGUSR1)
        return await self.summary(timeout)

    async def summary(self, timeout: float = 60) -> dict:
        """Wait for the client to finish (it DELETEs its session first); its summary."""
        assert self._proc is not None
        try:
            await asyncio.wait_for(self._proc.wait(), timeout)
        finally:
            await self.close()
        found = self.event("summary")
        assert found is not None, f"no summary from the GStreamer client: {self.describe()}"
        return found

    def describe(self) -> str:
        events = [{k: (v if k not in ("sdp", "answer", "numbers") else "...") for k, v in e.items()}
                  for e in self.events]
        return f"events={events} stderr={self.stderr.decode(errors='replace')[-2000:]}"

    async def close(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        for reader in (self._reader, self._err_reader):
            if reader is not None:
                await reader


def _options(options: dict) -> list[str]:
    out: list[str] = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            out.append(flag)
        elif value is not False and value is not None:
            out += [flag, str(value)]
    return out
