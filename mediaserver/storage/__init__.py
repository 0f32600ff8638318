"""The storage seam for finished media (local disk or S3-compatible object storage).

``open_storage(settings)`` builds the configured backend; ``ReplayUploads``
(``mediaserver.packaging.uploads``) publishes packaged replays to it, ``StoredReplays``
(``mediaserver.packaging.stored_replays``) finds them again from any node.
"""

from __future__ import annotations

from pathlib import Path

from .base import Storage, StorageError, StorageLocation, parse_storage_url
from .local import LocalStorage

__all__ = ["publishes", "LocalStorage", "Storage", "StorageError", "StorageLocation", "open_storage",
           "parse_storage_url", "PRESIGN_SECONDS"]

#: how long a presigned segment URL lives (the issue: at most a minute or two)
PRESIGN_SECONDS = 60


def open_storage(url: str, data_dir: Path) -> Storage:
    """The backend ``url`` names (``""``: ``DATA_DIR/recordings`` on local disk)."""
    location = parse_storage_url(url, Path(data_dir) / "recordings")
    if location.scheme == "s3":
        from .s3 import S3Storage

        return S3Storage(location)
    return LocalStorage(location)


def publishes(storage: Storage, data_dir: Path) -> bool:
    """Do finished replays go anywhere (not the default folder the packager writes into)?"""
    if storage.remote:
        return True
    path = storage.location.path
    return path is not None and path.resolve() != (Path(data_dir) / "recordings").resolve()
