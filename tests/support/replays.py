"""A packaged replay for the tests that serve, cut, show or gate one (a pytest plugin,
registered in tests/conftest.py).

``packaged`` is made once per session (a 9 s recording, generated and packaged, takes
seconds); tests never change it: ``install`` copies it into a server's data folder.
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
def packaged(tmp_path_factory) -> Path:
    """A 9 s H.264 + Opus recording packaged into three segments (0, ~4, ~8 s); read only."""
    rec = make_recording(tmp_path_factory.mktemp("packaged") / "rec", seconds=9.0, keyint_s=2.0)
    manifest = package_recording(rec, OPTIONS)
    assert manifest["status"] == "ready" and manifest["segments"] >= 2
    return rec


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
