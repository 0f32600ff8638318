"""An aiortc WHEP viewer for a test to run in another network namespace
(``ip netns exec NS python -m tests.support.ns_viewer URL ROOM``): it plays the room and prints one
JSON line a second, ``{"frames": n, "location": "/whep/..."}``, until it is killed."""

from __future__ import annotations

import asyncio
import json
import sys

from tests.support.peers import Viewer


async def main(base: str, room: str) -> None:
    viewer = Viewer(base)
    status = await viewer.play(room)
    print(json.dumps({"status": status, "location": viewer.location}), flush=True)
    try:
        while True:
            await asyncio.sleep(1.0)
            print(json.dumps({"frames": len(viewer.numbers), "location": viewer.location}), flush=True)
    finally:
        await viewer.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
