"""A recording folder's ``manifest.json``: where it is, and its atomic read and write.

The recorder writes it while live, the packager and the uploads update it after; each
owns its own fields (the recorder's are listed in ``recording.recorder``).
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from pathlib import Path
from typing import Any, Iterator

__all__ = [
    "MANIFEST_NAME", "read_manifest", "recording_dir", "recording_manifests", "update_manifest", "write_manifest",
]

MANIFEST_NAME = "manifest.json"

_update_lock = threading.Lock()


def recording_dir(data_dir: Path, room: str, broadcast_id: str) -> Path:
    """``{data_dir}/recordings/{room}/{broadcast}/``: one broadcast's recording folder."""
    return Path(data_dir) / "recordings" / room / broadcast_id


def recording_manifests(data_dir: Path) -> Iterator[tuple[Path, dict]]:
    """``(folder, manifest)`` of every recording under ``data_dir``, in path order; a
    manifest that cannot be read is skipped. Blocking: call it in a thread."""
    for manifest_path in sorted(Path(data_dir).glob(f"recordings/*/*/{MANIFEST_NAME}")):
        directory = manifest_path.parent.resolve()
        try:
            manifest = read_manifest(directory)
        except (OSError, ValueError):
            continue
        yield directory, manifest


def read_manifest(directory: Path) -> dict:
    return json.loads((Path(directory) / MANIFEST_NAME).read_text())


def write_manifest(directory: Path, manifest: dict) -> None:
    """Atomically replace the manifest (unique temp file, fsync, rename)."""
    directory = Path(directory)
    tmp = directory / f".{MANIFEST_NAME}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(manifest, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, directory / MANIFEST_NAME)
    finally:
        if tmp.exists():
            tmp.unlink()


def update_manifest(directory: Path, **changes: Any) -> dict:
    """Read, merge ``changes`` into, and atomically rewrite the manifest; returns it.
    Fields the caller does not name (the recorder's, the packager's) are kept as they are."""
    with _update_lock:
        manifest = read_manifest(directory)
        manifest.update(changes)
        write_manifest(directory, manifest)
        return manifest
