"""Replay HTTP API: recordings as products, ``replay:`` tokens, and the token-checked files.

* ``GET  /api/recordings[?room=]`` -- newest first; visitors see ``ready`` ones, the
  creator (and admins) every status of their rooms, with progress and errors.
* ``GET  /api/recordings/{id}`` -- one recording, plus the offer (owned, price, preview).
* ``POST /api/recordings/{id}/token`` -- a short-lived ``replay:<id>`` token and the
  playlist URL that carries it (full, or the preview).
* ``POST /api/recordings/{id}/upload`` -- the creator (or an admin) retries the upload of an
  ``upload_failed`` replay to the object store: ``202``.
* ``DELETE /api/recordings/{id}`` -- the creator (or an admin) deletes a finished recording:
  its objects in the store and its files here; ``409`` while it is recorded or processed.
* ``GET  /replay/{id}/index.m3u8?token=`` -- the VOD playlist, every segment URI signed
  with the same token; a preview token gets a playlist that ends at the preview limit.
* ``GET  /replay/{id}/seg-NNNNN.ts?token=`` -- checked on every request (token, expiry,
  entitlement, preview limit); ``poster.jpg`` and ``thumbs.*`` are public.
* ``GET  /replay/{id}/download?token=`` -- the whole replay as one MPEG-TS file with HTTP
  Range, when the creator allows downloads.

A replay published to the object store (any node's) is served the same way after the same
checks: files from the store by a short-lived presigned redirect or through this node
(``replay_storage_http``).

The token may also come as ``Authorization: Bearer``. Tokens in query strings never reach
the logs (``stagepass.access_log``).
"""

from __future__ import annotations

import logging
from typing import Optional

from aiohttp import web

from core.cpu import off_loop
from mediaserver.packaging.files import PLAYLIST, PUBLIC_FILES
from mediaserver.packaging.playlist import parse_playlist, signed_playlist
from mediaserver.packaging.replays import Recording, Replays
from mediaserver.packaging.uploads import ReplayUploads
from core.access import Grant, Refusal, Target, bearer_token
from core.access_http import ACCESS

from .accounts import UserView
from .catalog import RoomView
from .http import PAYWALL, current_user, optional_user
from .replay_storage_http import send_stored, send_stored_concatenation

__all__ = ["UPLOADS", "RECORDINGS", "authorized_replay", "setup_routes"]

RECORDINGS = web.AppKey("recordings", Replays)
#: the uploads to object storage, when configured and reachable at start
UPLOADS = web.AppKey("uploads", ReplayUploads)
log = logging.getLogger("stagepass.replay")

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
NO_STORE = {"Cache-Control": "private, no-store"}


def _replay_token(request: web.Request) -> Optional[str]:
    return bearer_token(request) or request.query.get("token") or None


async def _find(request: web.Request) -> Recording:
    rec = await request.app[RECORDINGS].find(request.match_info["recording"])
    if rec is None:
        raise Refusal(404, "recording_not_found", "no such recording")
    return rec


async def _recording(request: web.Request) -> tuple[Recording, Optional[RoomView]]:
    rec = await _find(request)
    return rec, await request.app[PAYWALL].catalog.get(rec.room)


async def authorized_replay(request: web.Request) -> tuple[Recording, Grant]:
    """The recording of ``{recording}`` and the door's grant of the request's replay token."""
    rec = await _find(request)
    grant = await request.app[ACCESS].authorize(_replay_token(request), "replay", Target(rec.room, rec.id))
    return rec, grant


def _visible(rec: Recording, room: Optional[RoomView], user: Optional[UserView]) -> bool:
    """Ready replays of listed rooms to everyone; the rest to the room's creator and admins."""
    if rec.ready and (room is None or room.listing == "listed"):
        return True
    return user is not None and (user.role == "admin" or (room is not None and user.id == room.creator_id))


def _describe(rec: Recording, room: Optional[RoomView]) -> dict:
    return {**rec.summary(), "title": room.title if room else rec.room}


async def list_recordings(request: web.Request) -> web.Response:
    slug = request.query.get("room")
    library, catalog = request.app[RECORDINGS], request.app[PAYWALL].catalog
    user = await optional_user(request)
    rooms: dict[str, Optional[RoomView]] = {}
    out = []
    for rec in await library.recordings(slug):  # reads every manifest: off the loop
        if rec.room not in rooms:
            rooms[rec.room] = await catalog.get(rec.room)
        if _visible(rec, rooms[rec.room], user):
            out.append(_describe(rec, rooms[rec.room]))
    return web.json_response({"recordings": out})


async def _recording_for_user(request: web.Request) -> tuple[Recording, Optional[RoomView], Optional[UserView]]:
    """The recording, its room and the visitor; 404 for a recording they may not see."""
    rec, room = await _recording(request)
    user = await optional_user(request)
    if not _visible(rec, room, user):
        raise Refusal(404, "recording_not_found", "no such recording")
    return rec, room, user


async def get_recording(request: web.Request) -> web.Response:
    rec, room, user = await _recording_for_user(request)
    offer = await request.app[PAYWALL].replays.offer(user, room)
    return web.json_response({"recording": _describe(rec, room), "offer": offer})


async def mint_replay_token(request: web.Request) -> web.Response:
    rec, room, user = await _recording_for_user(request)
    if not rec.ready:
        raise Refusal(409, "not_ready", f"the replay is not ready yet ({rec.status})")
    minted = await request.app[PAYWALL].replays.mint(user, rec.id, room)
    query = Replays.token_query(minted["token"])
    minted["playlist_url"] = f"/replay/{rec.id}/{PLAYLIST}?{query}"
    minted["download_url"] = f"/replay/{rec.id}/download?{query}" if minted["downloads"] else None
    log.info("replay token for recording %s of room %s to user %s (%s)", rec.id, rec.room,
             user.id if user else "visitor", "preview" if minted["preview_ms"] else "full")
    return web.json_response(minted, status=201)


def _manages(user: UserView, room: Optional[RoomView]) -> bool:
    return user.role == "admin" or (room is not None and user.id == room.creator_id)


async def retry_upload(request: web.Request) -> web.Response:
    rec, room = await _recording(request)
    user = await current_user(request)
    if not _manages(user, room):
        raise Refusal(404, "recording_not_found", "no such recording")
    uploads = request.app.get(UPLOADS)
    if uploads is None:
        raise Refusal(503, "storage_unavailable",
                           "no object store is configured, or it failed its check at start (see the server log)")
    if rec.status not in ("upload_failed", "packaged"):
        raise Refusal(409, "not_upload_failed", f"the replay is {rec.status}, not upload_failed")
    uploads.enqueue(rec.directory)
    log.info("upload of recording %s of room %s retried by user %s", rec.id, rec.room, user.id)
    return web.json_response({"recording": _describe(rec, room), "queued": True}, status=202)


#: a recording in one of these states is being written by a job: not deleted under it
BUSY = ("recording", "recorded", "processing", "packaged", "uploading")


async def delete_recording(request: web.Request) -> web.Response:
    rec, room = await _recording(request)
    user = await current_user(request)
    if not _manages(user, room):
        raise Refusal(404, "recording_not_found", "no such recording")
    if rec.status in BUSY:
        raise Refusal(409, "recording_busy", f"the recording is {rec.status}; delete it once it is finished")
    objects = await request.app[RECORDINGS].delete(rec)
    log.info("recording %s of room %s deleted by user %s (%d stored objects)", rec.id, rec.room, user.id, objects)
    return web.json_response({"deleted": rec.id, "objects": objects})


async def replay_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    library = request.app[RECORDINGS]
    if name in PUBLIC_FILES:  # no room or payment involved: no database
        rec = await _find(request)
        path = library.file(rec, name)
        if path is None:
            return await send_stored(request, library, rec, name, {"Cache-Control": "public, max-age=300"})
        return web.FileResponse(path, headers={"Cache-Control": "public, max-age=300"})
    rec, grant = await authorized_replay(request)
    if name == PLAYLIST:
        text = await library.playlist_text(rec)
        if text is None:
            raise Refusal(404, "file_not_found", "the replay is not ready")
        token = _replay_token(request) if "token" in request.query else ""
        body = signed_playlist(text, Replays.token_query(token) if token else "", grant.preview_ms)
        return web.Response(text=body, content_type=PLAYLIST_TYPE, headers=NO_STORE)
    path = library.file(rec, name)
    start = await library.start_of(rec, name) if path is not None or rec.stored else None
    if start is None:
        raise Refusal(404, "file_not_found", "no such file in this replay")
    if not grant.allows(start):
        raise Refusal(403, "preview_over", "the free preview ends here; buy the replay to go on")
    if path is None:
        return await send_stored(request, library, rec, name, {**NO_STORE, "Content-Type": "video/mp2t"})
    return web.FileResponse(path, headers={**NO_STORE, "Content-Type": "video/mp2t"})


async def download(request: web.Request) -> web.StreamResponse:
    rec, grant = await authorized_replay(request)
    if not grant.downloads:
        raise Refusal(403, "downloads_off", "downloads of this replay are not allowed")
    library = request.app[RECORDINGS]
    headers = {**NO_STORE, "Content-Type": "video/mp2t",
               "Content-Disposition": f'attachment; filename="{rec.room}-{rec.id}.ts"'}
    path = await off_loop(library.download, rec)
    if path is None and rec.stored:
        text = await library.playlist_text(rec)
        names = [seg.uri for _, seg in parse_playlist(text)[1]] if text else []
        return await send_stored_concatenation(request, library, rec, names, headers)
    if path is None:
        raise Refusal(404, "file_not_found", "the replay is not ready")
    return web.FileResponse(path, headers=headers)


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/recordings", list_recordings)
    r.add_get("/api/recordings/{recording}", get_recording)
    r.add_delete("/api/recordings/{recording}", delete_recording)
    r.add_post("/api/recordings/{recording}/token", mint_replay_token)
    r.add_post("/api/recordings/{recording}/upload", retry_upload)
    r.add_get("/replay/{recording}/download", download)
    r.add_get("/replay/{recording}/{name}", replay_file)
