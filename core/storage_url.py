"""Where finished media live, as ``STAGEPASS_STORAGE_URL`` names it (parsed here so the settings
can refuse a bad URL at start; the backends are in ``mediaserver.storage``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

__all__ = ["StorageLocation", "parse_storage_url"]

BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


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
