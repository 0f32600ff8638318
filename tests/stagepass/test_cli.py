"""The README's first command: `stagepass serve` starts with embedded defaults."""

import asyncio
import os
import socket
import subprocess
import sys

import aiohttp
import pytest

from tests.support.worker_pins import ONE_WORKER_EACH_FLAGS

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_stagepass_serve_starts_and_serves(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "stagepass.cli", "serve", "--port", str(port), "--data-dir", str(tmp_path),
         *ONE_WORKER_EACH_FLAGS],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(600):  # imports take seconds on a loaded 2-core machine
                try:
                    async with http.get(f"http://127.0.0.1:{port}/api/rooms/demo") as r:
                        assert r.status == 200 and (await r.json())["live"] is False
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("server did not start")
            async with http.get(f"http://127.0.0.1:{port}/static/watch.html") as r:
                assert r.status == 200
        key = (tmp_path / "stream-keys.json").read_text()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert "rooms: demo" in out
    assert key.split('"')[3] not in out  # the generated stream key is never logged


def test_invalid_configuration_exits_with_a_message(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "stagepass.cli", "serve", "--port", "nope"],
        capture_output=True, text=True,
    )
    assert r.returncode == 2 and "invalid configuration: port" in r.stderr


def test_a_bad_cpu_count_variable_exits_with_a_message():
    r = subprocess.run([sys.executable, "-m", "stagepass.cli", "serve"], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "LOKY_MAX_CPU_COUNT": "two"})
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip() == ("stagepass: invalid configuration: LOKY_MAX_CPU_COUNT: expected a whole number "
                                "of CPUs this process may use (e.g. 2), got 'two'")


def test_serve_help_lists_every_setting():
    from core.settings import Settings

    r = subprocess.run([sys.executable, "-m", "stagepass.cli", "serve", "--help"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for _, f in Settings.settings_fields():
        if f.init and not f.name.startswith("_"):
            assert f"STAGEPASS_{f.name.upper()}" in r.stdout.replace("\n", " ").replace("  ", ""), f.name


async def test_json_logs_are_one_object_a_line_without_secrets(tmp_path):
    import json

    port = free_port()
    token = "metrics-token-never-logged-123"
    proc = subprocess.Popen(
        [sys.executable, "-m", "stagepass.cli", "serve", "--port", str(port), "--data-dir", str(tmp_path),
         "--log-format", "json", "--metrics-token", token, *ONE_WORKER_EACH_FLAGS],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(600):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                        assert r.status == 200
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("server did not start")
            async with http.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 200
        key = json.loads((tmp_path / "stream-keys.json").read_text())["demo"]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert any(e["logger"] == "stagepass" and e["message"].startswith("rooms: demo") for e in lines), lines
    assert all({"ts", "level", "logger", "message"} <= set(e) for e in lines)
    assert key not in out and token not in out
