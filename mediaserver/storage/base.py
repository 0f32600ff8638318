"""The storage seam for finished media: one small interface, a local and an S3 backend.

Keys are ``/``-separated paths below the store's root (``{room}/{broadcast}/hls/seg-00000.ts``);
the S3 backend puts them under its prefix, the local one under its folder. Every method is
async; the local backend runs file work in threads.
"""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator, Optional, Protocol

from core.storage_url import StorageLocation, parse_storage_url

__all__ = ["Storage", "StorageError", "StorageLocation", "parse_storage_url"]

class StorageError(Exception):
    """A storage operation failed; ``str()`` is one line saying what and why."""


class Storage(Protocol):
    """Finished media by key. Implementations: ``LocalStorage``, ``S3Storage``."""

    location: StorageLocation

    @property
    def remote(self) -> bool:
        """True when the bytes are not on this node's disk (any node may read them)."""
        ...

    async def check(self) -> None:
        """Reachable, credentials accepted, bucket present; else ``StorageError``."""
        ...

    async def put_file(self, key: str, path: Path) -> int:
        """Upload one file (multipart when large), verified; returns its size."""
        ...

    async def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        ...

    async def read(self, key: str) -> Optional[bytes]:
        """The whole object, or None when it does not exist."""
        ...

    def stream(self, key: str, start: int = 0, end: Optional[int] = None) -> AsyncIterator[bytes]:
        """Bytes ``[start, end)`` of the object in chunks."""
        ...

    async def list(self, prefix: str) -> dict[str, int]:
        """Every key below ``prefix`` (a folder, ending in ``/``) and its size."""
        ...

    async def children(self, prefix: str) -> list[str]:
        """The names of the folders directly below ``prefix`` (``""`` = the root)."""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every key below ``prefix``; returns how many."""
        ...

    async def presign_get(self, key: str, expires_s: int) -> Optional[str]:
        """A URL a browser can GET for ``expires_s`` seconds; None when the backend has none."""
        ...

    async def close(self) -> None:
        ...
