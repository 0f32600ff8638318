"""Replay serving: what the per-request token and entitlement check costs.

Starts the real app (SQLite, in process, on loopback), a creator's paid room, a buyer of
its replay and one packaged recording (tests/test_vod.py's ``make_recording``), then has
``--clients`` concurrent clients fetch segments for ``--seconds``:

* ``static``: the same segment files through aiohttp's static file route (no check):
  the baseline, measured in the same run;
* ``replay token``: ``/replay/{id}/seg-NNNNN.ts?token=`` (JWT verify, revocation lookup,
  catalog lookup, entitlement query, playlist lookup, path checks, then the file);
* ``playlist``: ``/replay/{id}/index.m3u8?token=`` (the same checks plus signing every
  segment URI).

Prints requests/s, median and p95 latency per row and the ratio to the baseline.

    .venv/bin/python benchmarks/replay_serving.py [--clients 8] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from mediaserver.app import create_app  # noqa: E402
from mediaserver.vod import PackageOptions, package_recording  # noqa: E402
from tests.paywall_fixtures import Api, buy, paid_room, paywall_settings  # noqa: E402
from tests.test_replay import install  # noqa: E402
from tests.test_vod import make_recording  # noqa: E402


async def load(urls: list[str], clients: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def client(i: int) -> None:
        async with aiohttp.ClientSession() as http:
            n = i
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                async with http.get(urls[n % len(urls)]) as r:
                    await r.read()
                    assert r.status == 200, r.status
                latencies.append(time.perf_counter() - t0)
                n += 1

    await asyncio.gather(*(client(i) for i in range(clients)))
    return latencies


async def main(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="stagepass-replay-bench-"))
    try:
        rec = make_recording(work / "src", seconds=30.0, keyint_s=2.0, video_bitrate=1_500_000, size=(640, 480))
        package_recording(rec, PackageOptions(progress_interval_s=0.0))
        settings = paywall_settings(work, f"sqlite:///{work / 'db.sqlite'}")
        app = create_app(settings)
        static_dir = work / "static-copy"
        static_dir.mkdir()
        app.router.add_static("/bench-static/", static_dir)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        creator = await Api.sign_up(base, "creator")
        await paid_room(creator)
        rec_id = install(rec, settings.data_dir, "maths")
        shutil.copytree(settings.data_dir / "recordings" / "maths" / rec_id / "hls", static_dir, dirs_exist_ok=True)
        buyer = await Api.sign_up(base)
        await buy(buyer, "maths", "replay")
        status, minted = await buyer.post(f"/api/recordings/{rec_id}/token")
        assert status == 201, minted
        token = minted["token"]
        segments = sorted(p.name for p in static_dir.glob("seg-*.ts"))
        size = statistics.mean((static_dir / s).stat().st_size for s in segments)
        rows = [
            ("static (baseline)", [f"{base}/bench-static/{s}" for s in segments]),
            ("replay token", [f"{base}/replay/{rec_id}/{s}?token={token}" for s in segments]),
            ("playlist", [f"{base}/replay/{rec_id}/index.m3u8?token={token}"]),
        ]
        print(f"{len(segments)} segments of {size / 1e3:.0f} kB; {args.clients} clients, {args.seconds:.0f} s per row; "
              f"server and clients share one process (pid {os.getpid()})")
        print("| row | requests/s | median ms | p95 ms | median / baseline |")
        print("|---|---|---|---|---|")
        baseline = None
        for name, urls in rows:
            await load(urls, args.clients, 1.0)  # warm up
            lat = await load(urls, args.clients, args.seconds)
            lat.sort()
            med = statistics.median(lat) * 1000
            p95 = lat[int(len(lat) * 0.95)] * 1000
            baseline = baseline or med
            print(f"| {name} | {len(lat) / args.seconds:.0f} | {med:.2f} | {p95:.2f} | {med / baseline:.2f}x |")
        await runner.cleanup()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    asyncio.run(main(parser.parse_args()))
