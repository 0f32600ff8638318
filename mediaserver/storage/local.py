"""``LocalStorage``: finished media in a folder of this node (the default: ``DATA_DIR/recordings``).

The recorder and the packager already write there, so publishing a replay to the default
folder moves nothing; the backend exists so that every user of the seam (migration,
deletion, stored bytes) works the same whatever the store. Keys never leave the folder:
``..``, absolute keys and links are refused.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import AsyncIterator, Optional

from .base import StorageError, StorageLocation

__all__ = ["LocalStorage"]


class LocalStorage:
    def __init__(self, location: StorageLocation) -> None:
        assert location.scheme == "file" and location.path is not None
        self.location = location
        self.root = location.path

    @property
    def remote(self) -> bool:
        return False

    def path(self, key: str) -> Path:
        parts = key.rstrip("/").split("/")
        if key.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise StorageError(f"{key!r}: not a storage key")
        return self.root.joinpath(*parts)

    async def check(self) -> None:
        try:
            await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"{self.location.url}: {exc.strerror or exc}") from exc

    async def put_file(self, key: str, path: Path) -> int:
        target = self.path(key)
        if target.resolve() == path.resolve():
            return path.stat().st_size

        def copy() -> int:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp")
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)
            return target.stat().st_size

        return await asyncio.to_thread(copy)

    async def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        target = self.path(key)

        def write() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)

        await asyncio.to_thread(write)

    async def read(self, key: str) -> Optional[bytes]:
        target = self.path(key)
        try:
            return await asyncio.to_thread(target.read_bytes)
        except FileNotFoundError:
            return None

    async def stream(self, key: str, start: int = 0, end: Optional[int] = None) -> AsyncIterator[bytes]:
        f = await asyncio.to_thread(open, self.path(key), "rb")
        try:
            f.seek(start)
            left = None if end is None else end - start
            while left is None or left > 0:
                chunk = await asyncio.to_thread(f.read, 256 * 1024 if left is None else min(left, 256 * 1024))
                if not chunk:
                    break
                if left is not None:
                    left -= len(chunk)
                yield chunk
        finally:
            f.close()

    async def list(self, prefix: str) -> dict[str, int]:
        base = self.path(prefix.rstrip("/")) if prefix else self.root

        def walk() -> dict[str, int]:
            out: dict[str, int] = {}
            for dirpath, _, files in os.walk(base):
                for name in files:
                    p = Path(dirpath) / name
                    if p.is_file() and not p.is_symlink():
                        out[p.relative_to(self.root).as_posix()] = p.stat().st_size
            return out

        return await asyncio.to_thread(walk)

    async def children(self, prefix: str) -> list[str]:
        base = self.path(prefix.rstrip("/")) if prefix else self.root
        try:
            return sorted(e.name for e in os.scandir(base) if e.is_dir(follow_symlinks=False))
        except OSError:
            return []

    async def delete_prefix(self, prefix: str) -> int:
        count = len(await self.list(prefix))
        await asyncio.to_thread(shutil.rmtree, self.path(prefix.rstrip("/")), True)
        return count

    async def presign_get(self, key: str, expires_s: int) -> Optional[str]:
        return None

    async def close(self) -> None:
        pass
