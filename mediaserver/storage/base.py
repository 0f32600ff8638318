"""The storage seam for finished media: one small interface, a local and an S3 backend.

Keys are ``/``-separated paths below the store's root (``{room}/{broadcast}/hls/seg-00000.ts``);
the S3 backend puts them under its prefix, the local one under its folder. Every method is
async; the local backend runs file work in threads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Optional, Protocol

__all__ = ["Storage", "StorageError", "StorageLocation", "parse_storage_url"]

BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class StorageError(Exception):
    """A storage operation failed; ``str()`` is one line saying what and why."""


@dataclass(frozen=True)
class StorageLocation:
    """What ``STAGEPASS_STORAGE_URL`` names: ``file`` (a folder) or ``s3`` (bucket + prefix)."""

    scheme: str
    bucket: str = ""
    prefix: str = ""  #: without slashes at either end; "" = the bucket's root
    path: Optional[Path] = None

    @property
    def url(self) -> str:
        if self.scheme == "s3":
            return f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return f"file://{self.path}"


def parse_storage_url(url: str, default_path: Path) -> StorageLocation:
    """``""`` / ``file://`` (the default folder) / ``file:///abs/path`` / ``s3://BUCKET[/PREFIX]``.

    Raises ``ValueError`` with a message naming what is wrong."""
    url = url.strip()
    if not url or url == "file://":
        return StorageLocation("file", path=default_path)
    if url.startswith("file://"):
        path = Path(url[len("file://"):])
        if not path.is_absolute():
            raise ValueError(f"{url!r}: a file:// URL needs an absolute path (file:///srv/recordings)")
        return StorageLocation("file", path=path)
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://"):].partition("/")
        if not BUCKET_RE.match(bucket):
            raise ValueError(f"{url!r}: {bucket!r} is not an S3 bucket name (3-63 of a-z, 0-9, '.', '-')")
        prefix = prefix.strip("/")
        if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
            raise ValueError(f"{url!r}: the prefix has an empty, '.' or '..' part")
        return StorageLocation("s3", bucket=bucket, prefix=prefix)
    raise ValueError(f"{url!r}: use file:///path or s3://BUCKET/PREFIX")


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
