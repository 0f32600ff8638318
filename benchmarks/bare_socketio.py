"""Bare python-socketio (5.x on aiohttp, its default manager) as a danmaku server: the
baseline of ``benchmarks/danmaku.py``. The same events and payloads as Stagepass (auth
{room}, ``danmaku:send`` acked, ``danmaku`` frames of {items}), one frame per danmaku, no
storage, no checks. ``GET /stats`` answers {"gc_ms": garbage collection time since start}.

    python benchmarks/bare_socketio.py PORT
"""

from __future__ import annotations

import datetime as dt
import gc
import sys
import time

import socketio
from aiohttp import web

gc_seconds = 0.0
_started = 0.0


def _gc(phase: str, info: dict) -> None:
    global gc_seconds, _started
    if phase == "start":
        _started = time.perf_counter()
    else:
        gc_seconds += time.perf_counter() - _started


def main() -> None:
    gc.callbacks.append(_gc)
    sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*")
    app = web.Application()
    sio.attach(app)
    rooms: dict[str, str] = {}
    next_id = [1]

    @sio.event
    async def connect(sid, environ, auth=None):
        room = (auth or {}).get("room", "bench")
        rooms[sid] = room
        await sio.enter_room(sid, room)

    @sio.event
    async def disconnect(sid, *args):
        rooms.pop(sid, None)

    @sio.on("danmaku:send")
    async def send(sid, data):
        item = {"id": next_id[0], "text": str(data.get("text")), "color": data.get("color", "#FFFFFF"),
                "mode": data.get("mode", "scroll"), "t_ms": 0, "broadcast": "", "user": {"id": 0, "name": "bench"},
                "sent_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")}
        next_id[0] += 1
        await sio.emit("danmaku", {"items": [item]}, room=rooms.get(sid, "bench"))
        return {"ok": True, "danmaku": item}

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"gc_ms": gc_seconds * 1000})

    app.router.add_get("/stats", stats)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
