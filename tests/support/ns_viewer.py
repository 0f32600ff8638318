"""An aiortc WHEP viewer for a test to run in another network namespace
(``ip netns exec NS python -m tests.support.ns_viewer URL ROOM [REPORT_INTERVAL]``): it plays the
room and prints one JSON line a second, ``{"frames": n, "location": "/whep/..."}``, until it is
killed. ``REPORT_INTERVAL``: seconds between its receiver reports (``Viewer``'s ``report_interval``)."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Optional

from tests.support.peers import Viewer


async def main(base: str, room: str, report_interval: Optional[float] = None) -> None:
    viewer = Viewer(base, report_interval=report_interval)
    status = await viewer.play(room)
    print(json.dumps({"status": status, "location": viewer.location}), flush=True)
    try:
        while True:
            await asyncio.sleep(1.0)
            print(json.dumps({"frames": len(viewer.numbers), "location": viewer.location}), flush=True)
    finally:
        await viewer.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else None))
