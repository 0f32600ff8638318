"""``ReplayUploads``: packaged replays go up to the object store; ``ready`` only once all is there.

A recording folder that the packager left ``packaged`` (``hls/``, poster, thumbnails, the
recorded source file) is published under ``{room}/{broadcast}/`` with the same layout, so
the bucket holds plain HLS an operator can inspect with any S3 tool:

1. status ``uploading``; list what the store already has there (a resumed job skips every
   object whose size matches: idempotent by listing);
2. upload the rest, ``concurrency`` at a time, each with ``attempts`` tries and exponential
   backoff (the backend verifies an MD5 per request and the stored size);
3. list again and compare every key and size; only then write ``manifest.json`` (status
   ``ready`` plus ``storage``: where, every object and its size) to the store and to disk;
4. remove the local media (``keep_local`` keeps them); the local ``manifest.json`` stays.

An upload that keeps failing leaves status ``upload_failed`` with the error, the local
files untouched and servable by nobody until fixed; :meth:`enqueue` retries it (the
retry endpoint and every start do). A ``ready`` local replay without ``storage`` (recorded
before S3 was configured, or while the store was unreachable) is published the same way
and stays ``ready`` meanwhile (``stagepass storage migrate``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Optional

from core.job_queue import JobQueue
from core.logs import context_logger
from mediaserver.packaging.files import DOWNLOAD_NAME, HLS_DIR, IMAGE_FILES
from mediaserver.recording.manifest import MANIFEST_NAME, read_manifest, recording_manifests, update_manifest
from mediaserver.storage.base import Storage, StorageError

__all__ = ["ReplayUploads", "PUBLISHABLE", "recording_key"]

#: statuses a recording folder can be published from
PUBLISHABLE = ("packaged", "uploading", "upload_failed", "ready")


def recording_key(room: str, broadcast: str) -> str:
    return f"{room}/{broadcast}/"


def _local_files(directory: Path, manifest: dict) -> dict[str, Path]:
    """Store-relative name -> local file of everything a replay consists of."""
    files: dict[str, Path] = {}
    hls = directory / HLS_DIR
    if hls.is_dir():
        for p in sorted(hls.iterdir()):
            if p.is_file() and not p.is_symlink() and not p.name.startswith("."):
                files[f"{HLS_DIR}/{p.name}"] = p
    for name in IMAGE_FILES:
        p = directory / name
        if p.is_file() and not p.is_symlink():
            files[name] = p
    source = manifest.get("file")
    if isinstance(source, str) and source and "/" not in source and not source.startswith("."):
        p = directory / source
        if p.is_file() and not p.is_symlink():
            files[source] = p
    return files


class ReplayUploads:
    def __init__(
        self,
        data_dir: Path,
        storage: Storage,
        *,
        keep_local: bool = False,
        concurrency: int = 4,
        attempts: int = 5,
        backoff_s: float = 0.5,
        logger: Optional[logging.Logger | logging.LoggerAdapter] = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.storage = storage
        self.keep_local = keep_local
        self.concurrency = concurrency
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.log = logger or logging.getLogger("stagepass.storage")
        self.uploaded = 0
        self.failed = 0
        self._jobs = JobQueue("upload", self.publish, self.log)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await self._jobs.start()

    async def close(self) -> None:
        await self._jobs.close()

    def enqueue(self, directory: Path | str) -> bool:
        """Queue one recording folder for upload; False if already queued or uploading."""
        return self._jobs.enqueue(directory)

    async def resume(self) -> list[Path]:
        """Queue the replays a previous run left packaged, uploading or upload_failed."""
        queued = await self._jobs.resume(lambda: self.pending(("packaged", "uploading", "upload_failed")))
        if queued:
            self.log.info("resuming the upload of %d replay(s) to %s", len(queued), self.storage.location.url)
        return queued

    def pending(self, statuses: tuple[str, ...]) -> list[Path]:
        """Recording folders with one of ``statuses`` and not yet in the store."""
        return [directory for directory, m in recording_manifests(self.data_dir)
                if m.get("status") in statuses and not (m.get("status") == "ready" and m.get("storage"))]

    async def join(self) -> None:
        await self._jobs.join()

    # ------------------------------------------------------------------ one replay
    async def publish(self, directory: Path) -> dict:
        """Upload one recording folder; returns its manifest (``ready`` with ``storage``)."""
        directory = Path(directory)
        room, broadcast = directory.parent.name, directory.name
        log = context_logger("stagepass.storage", room, broadcast[:8])
        manifest = read_manifest(directory)
        status = manifest.get("status")
        if status not in PUBLISHABLE:
            raise StorageError(f"recording {broadcast} is {status}, not packaged")
        if status == "ready" and manifest.get("storage"):
            return manifest
        prefix = recording_key(room, broadcast)
        upload = dict(manifest.get("upload") or {})
        upload.update(attempts=int(upload.get("attempts") or 0) + 1, started_at=time.time(), error=None)
        if status != "ready":  # a local ready replay stays servable while it is migrated
            manifest = update_manifest(directory, status="uploading", error=None, upload=upload)
        began = time.monotonic()
        try:
            files = await asyncio.to_thread(_local_files, directory, manifest)
            if not any(name.startswith(f"{HLS_DIR}/") for name in files):
                raise StorageError(f"recording {broadcast} has no HLS files to upload")
            objects = await self._upload_all(prefix, files, log)
            stored = {k[len(prefix):]: v for k, v in (await self.storage.list(prefix)).items()}
            missing = [n for n, size in objects.items() if stored.get(n) != size]
            if missing:
                raise StorageError(f"after upload, {len(missing)} object(s) missing or of another size: "
                                   f"{', '.join(missing[:3])}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failed += 1
            message = f"upload to {self.storage.location.url} failed: {_one_line(exc)}"
            upload.update(error=message, finished_at=time.time())
            changes = dict(upload=upload)
            if status != "ready":
                changes.update(status="upload_failed", error=message)
            update_manifest(directory, **changes)
            log.error("%s (local files kept; retried at the next start or on request)", message)
            raise StorageError(message) from exc
        info = {
            "url": self.storage.location.url,
            "key": prefix,
            "objects": objects,
            "bytes": sum(objects.values()),
            "uploaded_at": time.time(),
        }
        upload.update(finished_at=time.time(), error=None, seconds=round(time.monotonic() - began, 3))
        final = dict(read_manifest(directory), status="ready", progress=100, error=None, storage=info,
                     upload=upload, local_media=self.keep_local)
        await self._retrying(lambda: self.storage.put_bytes(
            prefix + MANIFEST_NAME, json.dumps(final, indent=2).encode(), "application/json"), MANIFEST_NAME)
        final = update_manifest(directory, **{k: final[k] for k in
                                              ("status", "progress", "error", "storage", "upload", "local_media")})
        self.uploaded += 1
        if not self.keep_local:
            await asyncio.to_thread(_remove_media, directory, files)
        log.info("replay uploaded to %s%s: %d objects, %d bytes in %.1f s%s", self.storage.location.url.rstrip("/") + "/",
                 prefix, len(objects), info["bytes"], upload["seconds"], " (local copy kept)" if self.keep_local else "")
        return final

    async def _upload_all(self, prefix: str, files: dict[str, Path], log) -> dict[str, int]:
        existing = {k[len(prefix):]: v for k, v in (await self.storage.list(prefix)).items()}
        sizes = {name: path.stat().st_size for name, path in files.items()}
        todo = [n for n in files if existing.get(n) != sizes[n]]
        if len(todo) < len(files):
            log.info("resuming upload: %d of %d objects already stored", len(files) - len(todo), len(files))
        gate = asyncio.Semaphore(self.concurrency)

        async def one(name: str) -> None:
            async with gate:
                await self._retrying(lambda: self.storage.put_file(prefix + name, files[name]), name)

        results = await asyncio.gather(*(one(n) for n in todo), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return sizes

    async def _retrying(self, action, name: str):
        delay = self.backoff_s
        for attempt in range(1, self.attempts + 1):
            try:
                return await action()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if attempt == self.attempts:
                    raise StorageError(f"{name}: {_one_line(exc)} (after {attempt} attempts)") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)


def _one_line(exc: BaseException) -> str:
    from mediaserver.storage.s3 import describe_error

    text = describe_error(exc) if not isinstance(exc, StorageError) else str(exc)
    return " ".join(text.split())


def _remove_media(directory: Path, files: dict[str, Path]) -> None:
    for name, path in files.items():
        if "/" not in name:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
    shutil.rmtree(directory / HLS_DIR, ignore_errors=True)
    try:
        os.unlink(directory / DOWNLOAD_NAME)
    except FileNotFoundError:
        pass
