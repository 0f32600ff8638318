"""``stagepass storage migrate``: publish every local replay to the configured object store.

For a user who outgrows one machine (or whose store was unreachable at some start): every
recording folder that is ``packaged``, ``uploading``, ``upload_failed`` or ``ready`` without
``storage`` is uploaded by ``ReplayUploads.publish`` -- the same verified, resumable path
as at packaging (an interrupted migration skips what is already there when run again).
Safe while the server runs. Exit status 0 when everything is published, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import sys

from core.settings import ConfigError, Settings
from mediaserver.packaging.uploads import PUBLISHABLE, ReplayUploads
from mediaserver.storage import StorageError, open_storage, publishes

__all__ = ["migrate"]


def migrate(argv: list[str]) -> int:
    try:
        settings = Settings.load(argv)
    except ConfigError as exc:
        print(f"stagepass: invalid configuration: {exc}", file=sys.stderr)
        return 2
    storage = open_storage(settings.recording.storage_url, settings.server.data_dir)
    if not publishes(storage, settings.server.data_dir):
        print("stagepass: STAGEPASS_STORAGE_URL is this node's recordings folder: nothing to migrate",
              file=sys.stderr)
        return 2

    async def run() -> int:
        try:
            await storage.check()
        except StorageError as exc:
            print(f"stagepass: storage {exc}", file=sys.stderr)
            return 1
        uploads = ReplayUploads(settings.server.data_dir, storage, keep_local=settings.recording.keep_local)
        pending = uploads.pending(PUBLISHABLE)
        failed = 0
        for directory in pending:
            try:
                manifest = await uploads.publish(directory)
            except StorageError as exc:
                failed += 1
                print(f"{directory.parent.name}/{directory.name}: {exc}", file=sys.stderr)
            else:
                info = manifest["storage"]
                print(f"{directory.parent.name}/{directory.name}: {len(info['objects'])} objects, "
                      f"{info['bytes']} bytes in {storage.location.url}")
        print(f"{len(pending) - failed} of {len(pending)} replay(s) published to {storage.location.url}")
        return 1 if failed else 0

    async def main() -> int:
        try:
            return await run()
        finally:
            await storage.close()

    return asyncio.run(main())
