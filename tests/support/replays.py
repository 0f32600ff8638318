"""Generated recordings and a packaged replay for the tests that package, store, serve,
cut, show or gate one (a pytest plugin, registered in tests/conftest.py).

Each is made once per session (generating and packaging a recording takes seconds);
tests never change them: they copy them (``install``, ``copy_recording``) into a data folder.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from pathlib import Path

import pytest

from mediaserver.packaging.packager import package_recording
from stagepass.access_log import RedactingAccessLogger
from stagepass.app import create_app
from tests.support.paywall_fixtures import Api, paid_room, paywall_settings
from tests.support.recordings import OPTIONS, make_recording


@pytest.fixture(scope="session")
def recorded_9s(tmp_path_factory) -> Path:
    """A 9 s H.264 + Opus recording (a keyframe every 2 s), not packaged (status
    ``recorded``); read only."""
    return make_recording(tmp_path_factory.mktemp("recorded") / "rec", seconds=9.0, keyint_s=2.0)


@pytest.fixture(scope="session")
def packaged(tmp_path_factory, recorded_9s) -> Path:
    """``recorded_9s`` packaged into three segments (0, ~4, ~8 s); read only."""
    rec = tmp_path_factory.mktemp("packaged") / "rec"
    shutil.copytree(recorded_9s, rec)
    manifest = package_recording(rec, OPTIONS)
    assert manifest["status"] == "ready" and manifest["segments"] >= 2
    return rec


@pytest.fixture(scope="session")
def recordings(tmp_path_factory) -> dict[str, Path]:
    """10 s recordings, H.264 (a keyframe every 2 s) and VP8 (one keyframe), not packaged;
    read only: every test copies the one it needs (``copy_recording``)."""
    base = tmp_path_factory.mktemp("sources")
    return {
        "h264": make_recording(base / "h264"),
        "vp8": make_recording(base / "vp8", video="vp8", keyint_s=100),
    }


def install(packaged: Path, data_dir: Path, room: str) -> str:
    """Copy the packaged recording into ``data_dir`` as a recording of ``room``."""
    rec_id = secrets.token_hex(8)
    dst = data_dir / "recordings" / room / rec_id
    shutil.copytree(packaged, dst)
    m = json.loads((dst / "manifest.json").read_text())
    m.update(room=room, broadcast=rec_id, started_at=time.time())
    (dst / "manifest.json").write_text(json.dumps(m))
    return rec_id


@pytest.fixture
async def shop(aiohttp_server, tmp_path, database_url, packaged):
    """A server with a creator's paid room ``maths`` (3 s preview) and one ready replay:
    (base_url, app, creator, rec_id, settings)."""
    settings = paywall_settings(tmp_path, database_url)
    app = create_app(settings)
    srv = await aiohttp_server(app, access_log_class=RedactingAccessLogger)
    base = str(srv.make_url("")).rstrip("/")
    creator = await Api.sign_up(base, "creator")
    await paid_room(creator, preview_seconds=3)
    rec_id = install(packaged, settings.server.data_dir, "maths")
    return base, app, creator, rec_id, settings
