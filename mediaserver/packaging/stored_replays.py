"""``StoredReplays``: the replays in the object store, whichever node recorded them.

A published replay is ``{room}/{broadcast}/manifest.json`` (status ``ready``) plus its files
in the store; this class finds one by its id (the manifest is looked up under each room
folder), lists them all, and keeps what it read in memory: published manifests and
playlists do not change, so a found manifest is cached for ``ttl_s`` (a deleted replay
disappears after that), a miss for ``miss_ttl_s``, the folder listing for ``list_ttl_s``.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from typing import Optional

from mediaserver.recording.manifest import MANIFEST_NAME
from mediaserver.storage.base import Storage

__all__ = ["StoredReplays"]


class StoredReplays:
    def __init__(self, storage: Storage, *, ttl_s: float = 60.0, miss_ttl_s: float = 3.0,
                 list_ttl_s: float = 5.0, max_cached: int = 1024) -> None:
        self.storage = storage
        self.ttl_s, self.miss_ttl_s, self.list_ttl_s = ttl_s, miss_ttl_s, list_ttl_s
        self.max_cached = max_cached
        self._found: OrderedDict[str, tuple[float, str, dict]] = OrderedDict()
        self._missing: dict[str, float] = {}
        self._rooms: tuple[float, list[str]] = (0.0, [])
        self._listing: tuple[float, Optional[list[tuple[str, dict]]]] = (0.0, None)
        self._texts: OrderedDict[str, str] = OrderedDict()

    def forget(self, recording_id: str) -> None:
        self._found.pop(recording_id, None)
        self._listing = (0.0, None)
        for key in [k for k in self._texts if f"/{recording_id}/" in k]:
            del self._texts[key]

    async def rooms(self) -> list[str]:
        at, names = self._rooms
        if time.monotonic() - at > self.list_ttl_s:
            names = await self.storage.children("")
            self._rooms = (time.monotonic(), names)
        return names

    async def _manifest(self, room: str, recording_id: str) -> Optional[dict]:
        data = await self.storage.read(f"{room}/{recording_id}/{MANIFEST_NAME}")
        if data is None:
            return None
        try:
            manifest = json.loads(data)
        except ValueError:
            return None
        if not isinstance(manifest, dict) or manifest.get("status") != "ready" or not manifest.get("storage"):
            return None
        self._remember(recording_id, room, manifest)
        return manifest

    def _remember(self, recording_id: str, room: str, manifest: dict) -> None:
        self._found[recording_id] = (time.monotonic(), room, manifest)
        self._found.move_to_end(recording_id)
        while len(self._found) > self.max_cached:
            self._found.popitem(last=False)

    async def find(self, recording_id: str) -> Optional[tuple[str, dict]]:
        """(room, manifest) of a published replay, or None."""
        now = time.monotonic()
        hit = self._found.get(recording_id)
        if hit is not None and now - hit[0] <= self.ttl_s:
            return hit[1], hit[2]
        if now - self._missing.get(recording_id, -1e9) <= self.miss_ttl_s:
            return None
        for room in await self.rooms():
            manifest = await self._manifest(room, recording_id)
            if manifest is not None:
                return room, manifest
        self._missing[recording_id] = now
        if len(self._missing) > self.max_cached:
            self._missing = {k: v for k, v in self._missing.items() if now - v <= self.miss_ttl_s}
        return None

    async def all(self) -> list[tuple[str, str, dict]]:
        """(room, id, manifest) of every published replay."""
        at, listing = self._listing
        if listing is not None and time.monotonic() - at <= self.list_ttl_s:
            return listing  # type: ignore[return-value]
        out = []
        for room in await self.rooms():
            for recording_id in await self.storage.children(f"{room}/"):
                hit = self._found.get(recording_id)
                manifest = hit[2] if hit is not None else await self._manifest(room, recording_id)
                if manifest is not None:
                    out.append((room, recording_id, manifest))
        self._listing = (time.monotonic(), out)  # type: ignore[assignment]
        return out

    async def text(self, key: str) -> Optional[str]:
        """A small published object as text (playlists), cached."""
        if key in self._texts:
            self._texts.move_to_end(key)
            return self._texts[key]
        data = await self.storage.read(key)
        if data is None:
            return None
        text = data.decode("utf-8", "replace")
        self._texts[key] = text
        while len(self._texts) > self.max_cached:
            self._texts.popitem(last=False)
        return text
