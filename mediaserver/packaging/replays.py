"""``Replays``: the recordings on disk (and in the store) as replays: lookup, listing, safe files.

A recording is ``{data_dir}/recordings/{room}/{broadcast}/`` (see ``recording.recorder``
and ``packaging.packager``); its id is the broadcast id. This module only reads what the
recorder and the packager wrote; it knows nothing of HTTP or payment.

**Path safety.** A file of a replay is reachable only by a name from a fixed set
(``index.m3u8``, ``seg-NNNNN.ts``, the poster and thumbnails), inside the recording's own
folder, never through a symbolic link, and only if it is a regular file: ``..``, encoded
slashes, absolute paths and links planted in the folder all resolve to ``None``.

**Stored replays.** With an object store (``mediaserver.storage``), a published replay's
manifest has ``storage`` (its key prefix and every object's size) and its media may be
gone from this disk, or the replay may have been recorded on another node: :meth:`find`,
:meth:`recordings`, :meth:`playlist_text` and :meth:`stored_object` look there too, with
the same fixed set of names. A local file, when present, is still preferred.

The playlist itself is read and rewritten by ``packaging.playlist``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import shutil
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import quote

from core.cpu import off_loop
from mediaserver.packaging.files import DOWNLOAD_NAME, PLAYLIST, object_name
from mediaserver.packaging.playlist import parse_playlist, segment_start
from mediaserver.recording.manifest import MANIFEST_NAME, read_manifest
from mediaserver.storage.base import Storage
from mediaserver.packaging.stored_replays import StoredReplays

__all__ = ["RECORDING_ID_RE", "Recording", "Replays"]

log = logging.getLogger("stagepass.replay")
RECORDING_ID_RE = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True)
class Recording:
    id: str
    room: str
    directory: Path
    manifest: dict

    @property
    def status(self) -> str:
        return str(self.manifest.get("status") or "recording")

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    @property
    def stored(self) -> Optional[dict]:
        """Where the published replay is in the object store (key, objects, bytes), or None."""
        info = self.manifest.get("storage")
        return info if isinstance(info, dict) and isinstance(info.get("objects"), dict) else None

    @property
    def duration_ms(self) -> int:
        m = self.manifest
        return int(m.get("hls_duration_ms") or m.get("duration_ms") or 0)

    @property
    def started_at(self) -> float:
        return float(self.manifest.get("started_at") or 0.0)

    def summary(self) -> dict:
        """What a catalog or a studio shows about the recording."""
        m = self.manifest
        return {
            "id": self.id,
            "room": self.room,
            "started_at": _iso(self.started_at) if self.started_at else None,
            "duration_ms": self.duration_ms,
            "status": self.status,
            "progress": int(m.get("progress") or (100 if self.ready else 0)),
            "error": m.get("error") or m.get("recording_error"),
            "poster_url": f"/replay/{self.id}/poster.jpg" if self.ready and m.get("poster") else None,
            "thumbs_vtt_url": f"/replay/{self.id}/thumbs.vtt" if self.ready and m.get("thumbs") else None,
            "replay_url": f"/static/replay.html?recording={self.id}",
            "has_video": bool(m.get("video")) if self.ready else m.get("video_codec") is not None,
            "stored_bytes": int(self.stored["bytes"]) if self.stored else None,
        }


def _iso(unix: float) -> str:
    return dt.datetime.fromtimestamp(unix, dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _regular_file(path: Path) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode)


class Replays:
    def __init__(self, data_dir: Path, storage: Optional[Storage] = None, *, proxy: bool = False) -> None:
        self.root = Path(data_dir) / "recordings"
        self._download_lock = threading.Lock()
        #: the object store replays are published to (None: local disk only)
        self.storage = storage
        #: stream stored media through this node instead of redirecting to presigned URLs
        self.proxy = proxy or (storage is not None and not storage.remote)
        self.stored = StoredReplays(storage) if storage is not None else None

    # ------------------------------------------------------------------ async lookup (disk, then store)
    async def find(self, recording_id: str) -> Optional[Recording]:
        """Like :meth:`get`, then in the object store (a replay recorded on any node)."""
        rec = self.get(recording_id)
        if rec is not None or self.stored is None or not RECORDING_ID_RE.match(recording_id or ""):
            return rec
        try:
            found = await self.stored.find(recording_id)
        except Exception as exc:  # the store is down: what is on this disk is still served
            log.warning("replay %s: object store lookup failed: %s", recording_id, exc)
            return None
        if found is None:
            return None
        room, manifest = found
        return Recording(recording_id, room, self.root / room / recording_id, manifest)

    async def recordings(self, room: Optional[str] = None) -> list[Recording]:
        """Like :meth:`list`, plus the published replays of other nodes."""
        out = await off_loop(self.list, room)
        if self.stored is not None:
            seen = {r.id for r in out}
            try:
                published = await self.stored.all()
            except Exception as exc:
                log.warning("object store listing failed: %s", exc)
                published = []
            for room_name, rec_id, manifest in published:
                if rec_id not in seen and (room is None or room_name == room):
                    out.append(Recording(rec_id, room_name, self.root / room_name / rec_id, manifest))
            out.sort(key=lambda r: r.started_at, reverse=True)
        return out

    def stored_object(self, rec: Recording, name: str) -> Optional[tuple[str, int]]:
        """(store key, size) of a public file name of a published replay, or None."""
        rel = object_name(name)
        info = rec.stored
        if rel is None or info is None or not rec.ready:
            return None
        size = info["objects"].get(rel)
        if not isinstance(size, int):
            return None
        return f"{rec.room}/{rec.id}/{rel}", size

    def bytes_of(self, rec: Recording) -> int:
        """What the replay occupies: its objects in the store, or its files on this disk.

        Blocking when local (walks the folder): call it in a thread."""
        if rec.stored:
            return int(rec.stored.get("bytes") or 0)
        total = 0
        for dirpath, _, files in os.walk(rec.directory):
            for name in files:
                try:
                    total += os.lstat(os.path.join(dirpath, name)).st_size
                except OSError:
                    pass
        return total

    async def delete(self, rec: Recording) -> int:
        """Delete the recording: its objects in the store (the manifest first, so no node
        finds it any more), then its folder on this disk. Returns the objects deleted."""
        deleted = 0
        if rec.stored and self.storage is not None:
            prefix = f"{rec.room}/{rec.id}/"
            deleted += await self.storage.delete_prefix(prefix + MANIFEST_NAME)
            deleted += await self.storage.delete_prefix(prefix)
        if self.stored is not None:
            self.stored.forget(rec.id)
        directory = self.root / rec.room / rec.id
        if directory.is_dir() and not directory.is_symlink():
            await off_loop(shutil.rmtree, directory, True)
        return deleted

    async def playlist_text(self, rec: Recording) -> Optional[str]:
        if self.file(rec, PLAYLIST) is not None:
            return await off_loop(self.playlist, rec)
        found = self.stored_object(rec, PLAYLIST)
        if found is None or self.stored is None:
            return None
        return await self.stored.text(found[0])

    async def start_of(self, rec: Recording, name: str) -> Optional[int]:
        """Where segment ``name`` starts on the replay's timeline (None if not listed)."""
        return segment_start(await self.playlist_text(rec), name)

    # ------------------------------------------------------------------ lookup
    def get(self, recording_id: str) -> Optional[Recording]:
        """The recording with this id, or None (also for any malformed id)."""
        if not isinstance(recording_id, str) or not RECORDING_ID_RE.match(recording_id):
            return None
        try:
            rooms = [d for d in os.scandir(self.root) if d.is_dir(follow_symlinks=False)]
        except OSError:
            return None
        for room in rooms:
            directory = Path(room.path) / recording_id
            if directory.is_symlink() or not _regular_file(directory / MANIFEST_NAME):
                continue
            return self._load(room.name, directory)
        return None

    def list(self, room: Optional[str] = None) -> list[Recording]:
        """Recordings newest first (of one room if given)."""
        out: list[Recording] = []
        try:
            rooms = [Path(d.path) for d in os.scandir(self.root)
                     if d.is_dir(follow_symlinks=False) and (room is None or d.name == room)]
        except OSError:
            return []
        for room_dir in rooms:
            for entry in os.scandir(room_dir):
                if (RECORDING_ID_RE.match(entry.name) and entry.is_dir(follow_symlinks=False)
                        and _regular_file(Path(entry.path) / MANIFEST_NAME)):
                    rec = self._load(room_dir.name, Path(entry.path))
                    if rec is not None:
                        out.append(rec)
        out.sort(key=lambda r: r.started_at, reverse=True)
        return out

    @staticmethod
    def _load(room: str, directory: Path) -> Optional[Recording]:
        try:
            manifest = read_manifest(directory)
        except (OSError, ValueError):
            return None
        if not isinstance(manifest, dict):
            return None
        return Recording(directory.name, room, directory, manifest)

    # ------------------------------------------------------------------ files
    def file(self, rec: Recording, name: str) -> Optional[Path]:
        """A servable file of the replay by its public name, or None (unknown, unsafe, absent)."""
        rel = object_name(name)
        if rel is None:
            return None
        path = rec.directory / rel
        if not rec.ready or not _regular_file(path):
            return None
        # no link anywhere between the library root and the file
        try:
            resolved = path.resolve(strict=True)
            expected = self.root.resolve(strict=True) / rec.room / rec.id / path.relative_to(rec.directory)
        except (OSError, ValueError):
            return None
        return path if resolved == expected else None

    def playlist(self, rec: Recording) -> Optional[str]:
        path = self.file(rec, PLAYLIST)
        return path.read_text() if path is not None else None

    def segment_start_ms(self, rec: Recording, name: str) -> Optional[int]:
        """Where segment ``name`` starts on the replay's timeline (None if not listed)."""
        return segment_start(self.playlist(rec), name)

    def download(self, rec: Recording) -> Optional[Path]:
        """The replay as one MPEG-TS file (segments concatenated; built once, atomically).

        Blocking (copies the segments): call it in a thread."""
        text = self.playlist(rec)
        if text is None:
            return None
        target = rec.directory / DOWNLOAD_NAME
        names = [seg.uri for _, seg in parse_playlist(text)[1]]
        sources = [self.file(rec, n) for n in names]
        if not sources or any(p is None for p in sources):
            return None
        with self._download_lock:
            newest = max(p.stat().st_mtime for p in sources if p is not None)
            if _regular_file(target) and target.stat().st_mtime >= newest:
                return target
            tmp = rec.directory / f".{DOWNLOAD_NAME}.{os.getpid()}.tmp"
            try:
                with open(tmp, "wb") as out:
                    for p in sources:
                        with open(p, "rb") as src:  # type: ignore[arg-type]
                            shutil.copyfileobj(src, out, 1 << 20)
                os.replace(tmp, target)
            finally:
                if tmp.exists():
                    tmp.unlink()
        return target

    @staticmethod
    def token_query(token: str) -> str:
        return f"token={quote(token, safe='')}"

