"""Browser libraries from npm (``web/package.json``, pinned in ``web/package-lock.json``),
served under ``/vendor/`` from ``web/node_modules``. Nothing comes from a CDN at run time.

Only the files listed in ``VENDOR_FILES`` are reachable; ``scripts/web-deps.sh`` installs
them (``npm ci``), and the README's two commands run it.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

__all__ = ["VENDOR_FILES", "NODE_MODULES", "missing_vendor_files", "setup_vendor_routes"]

NODE_MODULES = Path(__file__).parent / "node_modules"

#: URL name under /vendor/ -> file under web/node_modules
VENDOR_FILES: dict[str, str] = {
    "socket.io.min.js": "socket.io-client/dist/socket.io.min.js",
    "hls.min.js": "hls.js/dist/hls.min.js",
    "danmaku.min.js": "danmaku/dist/danmaku.min.js",
    "chart.umd.min.js": "chart.js/dist/chart.umd.min.js",
}


def missing_vendor_files() -> list[str]:
    return [name for name, rel in VENDOR_FILES.items() if not (NODE_MODULES / rel).is_file()]


async def _vendor_file(request: web.Request) -> web.StreamResponse:
    rel = VENDOR_FILES.get(request.match_info["name"])
    path = NODE_MODULES / rel if rel else None
    if path is None or not path.is_file():
        raise web.HTTPNotFound(text="no such library (run scripts/web-deps.sh)")
    return web.FileResponse(path, headers={"Cache-Control": "public, max-age=3600",
                                           "Content-Type": "text/javascript; charset=utf-8"})


def setup_vendor_routes(app: web.Application) -> None:
    app.router.add_get("/vendor/{name}", _vendor_file)
