"""``PackagingJobs``: the background job that turns finished recordings into HLS replays.

A :class:`core.job_queue.JobQueue` takes recording folders one at a time and runs
:func:`mediaserver.packaging.packager.package_recording` in a dedicated thread, so the event
loop that carries the live rooms stays responsive (PyAV releases the GIL while it
decodes, encodes and muxes). That thread runs at a lower CPU priority (nice +10, Linux),
and so do the libx264 threads it starts, so a transcode yields the CPU to live media.

* ``enqueue(path)`` -- package (or re-package) one recording; a folder already queued or
  running is not queued twice. Re-running a ``ready`` recording is safe.
* ``resume()`` -- at startup: queue every recording left ``recorded``, ``processing``
  (the server died mid-job: restart from scratch), ``recording`` (the server died while
  recording: the partial file is packaged) or ``failed`` *by the recorder* (disk full: the
  file up to there is valid). A job that was ``processing`` ``max_attempts`` times in a
  row (it crashed the process each time) is marked ``failed`` instead of crash-looping.
* ``close()`` -- asks the running job to stop at its next check (it stays
  ``processing`` and resumes on the next start), waits for it, cancels the worker.

Progress and results are in each recording's ``manifest.json`` (status, progress);
``state()`` reports the runner's own view for an admin page.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from pathlib import Path
from typing import Awaitable, Callable, Optional, Union

from core.cpu import lower_thread_priority
from core.job_queue import JobQueue
from core.logs import context_logger
from mediaserver.packaging.options import JobCancelled, PackageOptions
from mediaserver.packaging.packager import package_recording
from mediaserver.recording.manifest import read_manifest, recording_manifests, update_manifest

__all__ = ["PackagingJobs"]

Listener = Callable[[Path, dict], Union[Awaitable[None], None]]


def _retrieve(job: asyncio.Future) -> None:
    """Mark a job's outcome as seen: it ended after the server stopped waiting for it."""
    if not job.cancelled():
        job.exception()


class PackagingJobs:
    def __init__(
        self,
        data_dir: Path,
        options: Optional[PackageOptions] = None,
        *,
        logger: Optional[logging.Logger | logging.LoggerAdapter] = None,
        max_attempts: int = 3,
        is_recording: Callable[[str, str], bool] = lambda room, broadcast: False,
        lower_priority: bool = True,
        stop_timeout: float = 30.0,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.options = options or PackageOptions()
        self.log = logger or logging.getLogger("stagepass.packaging")
        self.max_attempts = max_attempts
        #: (room, broadcast) -> True while that broadcast is being recorded in this
        #: process; such a "recording" folder is not a crash left-over
        self.is_recording = is_recording
        self.stop_timeout = stop_timeout
        #: called with (folder, manifest) after each job that ended ready or failed
        self.listeners: list[Listener] = []
        self.finished = 0
        self.failed = 0
        self.progress: Optional[int] = None
        self._jobs = JobQueue("packaging", self._job, self.log)
        self._stop = threading.Event()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="packager",
            initializer=lower_thread_priority if lower_priority else None,
        )
        self._closed = False

    @property
    def current(self) -> Optional[Path]:
        """The recording folder being packaged, if any."""
        return self._jobs.current

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await self._jobs.start()

    async def close(self) -> None:
        """Stop the running job (it resumes on the next start) and the worker."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        await self._jobs.close()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ queue
    def enqueue(self, directory: Path | str) -> bool:
        """Queue one recording folder; False if it is already queued or running."""
        return self._jobs.enqueue(directory)

    async def resume(self) -> list[Path]:
        """Queue the recordings a previous run left unpackaged; returns them."""
        queued = await self._jobs.resume(self._scan)
        if queued:
            self.log.info("resuming packaging of %d recording(s)", len(queued))
        return queued

    def _scan(self) -> list[Path]:
        found: list[Path] = []
        for directory, m in recording_manifests(self.data_dir):
            status = m.get("status")
            packaging = m.get("packaging") or {}
            if status == "recorded":
                found.append(directory)
            elif status == "recording":
                if not self.is_recording(directory.parent.name, directory.name):
                    found.append(directory)
            elif status == "failed" and not packaging:
                found.append(directory)  # the recorder failed; its file is still valid
            elif status == "processing":
                attempts = int(packaging.get("attempts") or 0)
                if attempts >= self.max_attempts:
                    message = f"packaging stopped {attempts} attempts in a row (the server died); not retried"
                    packaging = dict(packaging, error=message, finished_at=time.time())
                    try:
                        update_manifest(directory, status="failed", error=message, packaging=packaging)
                    except OSError:
                        pass
                    self.log.error("packaging of %s crashed %d times: giving up", directory, attempts)
                else:
                    found.append(directory)
        return found

    async def join(self) -> None:
        """Wait until the queue is empty and no job runs (tests, benchmarks)."""
        await self._jobs.join()

    def state(self) -> dict:
        return {
            "current": str(self.current) if self.current else None,
            "progress": self.progress,
            "queued": self._jobs.queued,
            "finished": self.finished,
            "failed": self.failed,
        }

    # ------------------------------------------------------------------ worker
    async def _job(self, path: Path) -> None:
        self.progress = 0
        try:
            manifest = await self._run(path)
        except JobCancelled:
            manifest = None
        except Exception as exc:  # recorded in the manifest by package_recording
            self.failed += 1
            self.log.warning("packaging of %s failed: %s", path, exc)
            try:
                manifest = read_manifest(path)
            except (OSError, ValueError):
                manifest = {"status": "failed", "error": str(exc)}
        else:
            self.finished += 1
        finally:
            self.progress = None
        if manifest is not None:
            await self._notify(path, manifest)

    async def _run(self, path: Path) -> dict:
        loop = asyncio.get_running_loop()

        def on_progress(value: int) -> None:
            loop.call_soon_threadsafe(setattr, self, "progress", value)

        log = context_logger("stagepass.packaging", path.parent.name, path.name[:8])
        future = self._executor.submit(
            package_recording, path, self.options, stop=self._stop, on_progress=on_progress, log=log,
        )
        job = asyncio.wrap_future(future)  # the one asyncio view of the thread's result
        try:
            return await asyncio.shield(job)
        except asyncio.CancelledError:
            # shutting down: the job stops at its next check; wait for its thread, and
            # take its outcome (JobCancelled, normally) so nothing reports it unretrieved
            self._stop.set()
            await asyncio.wait([job], timeout=self.stop_timeout)
            if job.done():
                job.exception()
            else:
                job.add_done_callback(_retrieve)
            raise

    async def _notify(self, path: Path, manifest: dict) -> None:
        for listener in self.listeners:
            try:
                result = listener(path, manifest)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                self.log.exception("packaging listener failed for %s", path)
