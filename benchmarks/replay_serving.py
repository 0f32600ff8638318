"""Replay serving: what the per-request token and entitlement check costs.

Starts the real app (SQLite, in process, on loopback), a creator's paid room, a buyer of
its replay and one packaged recording (tests/mediaserver/packaging/test_vod.py's ``make_recording``), then has
``--clients`` concurrent clients fetch segments for ``--seconds``:

* ``static``: the same segment files through aiohttp's static file route (no check):
  the baseline, measured in the same run;
* ``replay token``: ``/replay/{id}/seg-NNNNN.ts?token=`` (JWT verify, revocation lookup,
  catalog lookup, entitlement query, playlist lookup, path checks, then the file);
* ``playlist``: ``/replay/{id}/index.m3u8?token=`` (the same checks plus signing every
  segment URI);
* ``S3 redirect``: the same checked segment requests on a node whose replay is in an
  S3 bucket (moto's server): each answers ``302`` to a presigned URL (not followed: the
  bytes would come from the bucket, not the node);
* ``S3 proxy``: ``STAGEPASS_STORAGE_PROXY=1`` on a third node that never had the replay
  on its disk: it finds it in the bucket and streams every segment through.

The three nodes share the SQLite database (one token works on all). The clients run in a
child process, so "node CPU" is the CPU time of this process (the nodes) per request.
Prints requests/s, median and p95 latency, node CPU ms per request and the ratio of the
median to the baseline.

    .venv/bin/python benchmarks/replay_serving.py [--clients 8] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import multiprocessing
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

from stagepass.app import create_app  # noqa: E402
from mediaserver.storage import open_storage  # noqa: E402
from mediaserver.packaging.uploads import ReplayUploads  # noqa: E402
from mediaserver.packaging.options import PackageOptions  # noqa: E402
from mediaserver.packaging.packager import package_recording  # noqa: E402
from tests.support.paywall_fixtures import Api, buy, paid_room, paywall_settings  # noqa: E402
from tests.support.s3 import aws_env, start_moto  # noqa: E402
from tests.support.replays import install  # noqa: E402
from tests.support.recordings import make_recording  # noqa: E402


async def load(urls: list[str], clients: int, seconds: float, expect: int = 200) -> list[float]:
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def client(i: int) -> None:
        async with aiohttp.ClientSession() as http:
            n = i
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                async with http.get(urls[n % len(urls)], allow_redirects=False) as r:
                    await r.read()
                    assert r.status == expect, r.status
                latencies.append(time.perf_counter() - t0)
                n += 1

    await asyncio.gather(*(client(i) for i in range(clients)))
    return latencies


def load_in_child(urls: list[str], clients: int, seconds: float, expect: int) -> list[float]:
    """Runs in the client process: the load, without following redirects."""
    return asyncio.run(load(urls, clients, seconds, expect))


async def start_node(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


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
        runner, base = await start_node(app)
        creator = await Api.sign_up(base, "creator")
        await paid_room(creator)
        rec_id = install(rec, settings.server.data_dir, "maths")
        shutil.copytree(settings.server.data_dir / "recordings" / "maths" / rec_id / "hls", static_dir, dirs_exist_ok=True)
        buyer = await Api.sign_up(base)
        await buy(buyer, "maths", "replay")
        status, minted = await buyer.post(f"/api/recordings/{rec_id}/token")
        assert status == 201, minted
        token = minted["token"]
        segments = sorted(p.name for p in static_dir.glob("seg-*.ts"))
        size = statistics.mean((static_dir / s).stat().st_size for s in segments)

        # the same replay in a bucket, served by a redirecting node and a proxying node
        moto, endpoint = start_moto()
        runners = [runner]
        try:
            os.environ.update(aws_env(endpoint))
            import boto3

            boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="bench")
            nodes = {}
            for name, proxy in (("redirect", False), ("proxy", True)):
                s3_settings = paywall_settings(work / name, settings.server.database_url, storage_url="s3://bench/replays",
                                               storage_proxy=proxy)
                if name == "redirect":
                    shutil.copytree(settings.server.data_dir / "recordings" / "maths" / rec_id,
                                    s3_settings.server.data_dir / "recordings" / "maths" / rec_id)
                    storage = open_storage(s3_settings.recording.storage_url, s3_settings.server.data_dir)
                    await ReplayUploads(s3_settings.server.data_dir, storage).publish(
                        s3_settings.server.data_dir / "recordings" / "maths" / rec_id)
                    await storage.close()
                node_runner, node_base = await start_node(create_app(s3_settings))
                runners.append(node_runner)
                nodes[name] = node_base
            rows = [
                ("static (baseline)", [f"{base}/bench-static/{s}" for s in segments], 200),
                ("replay token, local disk", [f"{base}/replay/{rec_id}/{s}?token={token}" for s in segments], 200),
                ("replay token, S3 redirect", [f"{nodes['redirect']}/replay/{rec_id}/{s}?token={token}"
                                               for s in segments], 302),
                ("replay token, S3 proxy", [f"{nodes['proxy']}/replay/{rec_id}/{s}?token={token}"
                                            for s in segments], 200),
                ("playlist, local disk", [f"{base}/replay/{rec_id}/index.m3u8?token={token}"], 200),
            ]
            print(f"{len(segments)} segments of {size / 1e3:.0f} kB; {args.clients} clients in a child process, "
                  f"{args.seconds:.0f} s per row; node CPU = this process (pid {os.getpid()}) per request")
            print("| row | requests/s | median ms | p95 ms | node CPU ms/request | median / baseline |")
            print("|---|---|---|---|---|---|")
            baseline = None
            loop = asyncio.get_running_loop()
            ctx = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                for name, urls, expect in rows:
                    await loop.run_in_executor(pool, load_in_child, urls, args.clients, 1.0, expect)  # warm up
                    cpu0 = time.process_time()
                    lat = await loop.run_in_executor(pool, load_in_child, urls, args.clients, args.seconds, expect)
                    cpu = time.process_time() - cpu0
                    lat.sort()
                    med = statistics.median(lat) * 1000
                    p95 = lat[int(len(lat) * 0.95)] * 1000
                    baseline = baseline or med
                    print(f"| {name} | {len(lat) / args.seconds:.0f} | {med:.2f} | {p95:.2f} | "
                          f"{cpu * 1000 / len(lat):.2f} | {med / baseline:.2f}x |")
        finally:
            for r in runners:
                await r.cleanup()
            moto.terminate()
            moto.wait(10)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    asyncio.run(main(parser.parse_args()))
