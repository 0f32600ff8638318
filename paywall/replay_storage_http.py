"""Answering a permitted replay file request from the object store (access is checked before).

* default: ``302`` to a presigned GET that lives ``PRESIGN_SECONDS`` (one minute), so the
  media bytes never pass through this process; the redirect itself is ``no-store``.
* ``STAGEPASS_STORAGE_PROXY=1`` (or a store without presigned URLs): the bytes are streamed
  through this node, with single-range HTTP ``Range`` (``206``/``416``).
* the whole-file download (the segments one after the other) is always streamed, with Range:
  the sizes of the objects are in the manifest, so a range maps onto the right objects.
"""

from __future__ import annotations

from typing import Optional

from aiohttp import web

from mediaserver.packaging.replays import Recording, Replays
from mediaserver.storage import PRESIGN_SECONDS

from core.access import Refusal

__all__ = ["send_stored", "send_stored_concatenation"]


def _range(request: web.Request, size: int) -> Optional[tuple[int, int]]:
    """[start, stop) asked by the Range header (None: no header); 416 when unsatisfiable."""
    if "Range" not in request.headers:
        return None
    try:
        wanted = request.http_range
    except ValueError:
        wanted = None
    if wanted is None or (wanted.start is None and wanted.stop is None):
        raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    start, stop, _ = wanted.indices(size)
    if start >= size or stop <= start:
        raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    return start, stop


async def _stream(request: web.Request, parts: list[tuple[str, int]], headers: dict,
                  library: Replays) -> web.StreamResponse:
    """Stream objects ``parts`` (key, size) as one body, honouring Range."""
    assert library.storage is not None
    total = sum(size for _, size in parts)
    wanted = _range(request, total)
    start, stop = wanted if wanted is not None else (0, total)
    response = web.StreamResponse(status=206 if wanted else 200, headers={**headers, "Accept-Ranges": "bytes"})
    if wanted:
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{total}"
    response.content_length = stop - start
    await response.prepare(request)
    if request.method == "HEAD":
        return response
    offset = 0
    for key, size in parts:
        a, b = max(start - offset, 0), min(stop - offset, size)
        offset += size
        if a >= b:
            continue
        async for chunk in library.storage.stream(key, a, b):
            await response.write(chunk)
    await response.write_eof()
    return response


async def send_stored(request: web.Request, library: Replays, rec: Recording, name: str,
                      headers: dict) -> web.StreamResponse:
    """One published file of ``rec``: presigned redirect, or proxied with Range."""
    found = library.stored_object(rec, name)
    if found is None or library.storage is None:
        raise Refusal(404, "file_not_found", "no such file in this replay")
    key, size = found
    if not library.proxy:
        url = await library.storage.presign_get(key, PRESIGN_SECONDS)
        if url is not None:
            raise web.HTTPFound(url, headers={"Cache-Control": "private, no-store"})
    return await _stream(request, [(key, size)], headers, library)


async def send_stored_concatenation(request: web.Request, library: Replays, rec: Recording,
                                    names: list[str], headers: dict) -> web.StreamResponse:
    """Files ``names`` of ``rec`` as one body (the whole-replay download), with Range."""
    parts = [library.stored_object(rec, n) for n in names]
    if not parts or any(p is None for p in parts):
        raise Refusal(404, "file_not_found", "the replay is not ready")
    return await _stream(request, [p for p in parts if p is not None], headers, library)
