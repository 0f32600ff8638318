"""Packaging cost: remux (H.264) against transcode (VP8), and the job runner's latency.

Generates synthetic recordings the way the recorder writes them (tests/mediaserver/packaging/test_vod.py's
``make_recording``: numbered 640x480 frames at 30 fps with a noise band and motion, a
440 Hz Opus tone, ms timestamps), then:

1. packages each one ``--runs`` times with ``mediaserver.packaging.packager.package_recording`` and
   prints the median wall time and process CPU time per minute of recording. Rows:

   * ``h264 remux``: H.264 with a keyframe every 2 s (a publisher asked for keyframes):
     stream copy. This is the baseline of the ratio column.
   * ``vp8 transcode``: VP8 decoded and encoded to H.264 (libx264 ``veryfast``).
   * ``h264 long GOP``: H.264 with one keyframe (a browser never asked for another):
     every GOP over ``max_gop_ms`` is re-encoded.

2. runs ``PackagingJobs`` the way the server does (worker thread, nice +10) and measures
   the time from ``enqueue`` of a ``recorded`` folder to its manifest saying ``ready``,
   and how late a 10 ms timer on the event loop fires meanwhile (the live rooms share that
   loop), against the same timer on an idle loop measured in the same run.

    .venv/bin/python benchmarks/replay_packaging.py [--seconds 60] [--runs 3] [--size 640x480] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mediaserver.packaging.jobs import PackagingJobs  # noqa: E402
from mediaserver.packaging.options import PackageOptions  # noqa: E402
from mediaserver.packaging.packager import package_recording  # noqa: E402
from mediaserver.recording.manifest import read_manifest  # noqa: E402
from tests.support.recordings import make_recording  # noqa: E402

CASES = [
    # name, make_recording kwargs
    ("h264 remux", dict(video="h264", keyint_s=2.0)),
    ("vp8 transcode", dict(video="vp8", keyint_s=1000)),
    ("h264 long GOP", dict(video="h264", keyint_s=1000)),
]


def generate(workdir: Path, seconds: float, size: tuple[int, int]) -> dict[str, Path]:
    sources = {}
    for name, kwargs in CASES:
        path = workdir / "sources" / name.replace(" ", "-")
        if not (path / "manifest.json").exists():
            t0 = time.monotonic()
            shutil.rmtree(path, ignore_errors=True)
            make_recording(path, seconds=seconds, size=size, noise=True, video_bitrate=1_500_000, **kwargs)
            print(f"generated {name}: {seconds:.0f} s, {(path / read_manifest(path)['file']).stat().st_size / 1e6:.1f} MB"
                  f" in {time.monotonic() - t0:.1f} s", flush=True)
        sources[name] = path
    return sources


def fresh_copy(src: Path, workdir: Path, name: str) -> Path:
    dst = workdir / "recordings" / "bench" / name
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    return dst


def bench_packaging(sources: dict[str, Path], workdir: Path, runs: int, seconds: float) -> list[dict]:
    rows = []
    minutes = seconds / 60
    for name, src in sources.items():
        walls, cpus = [], []
        manifest = {}
        for run in range(runs):
            rec = fresh_copy(src, workdir, f"{name.replace(' ', '-')}-{run}")
            c0, t0 = time.process_time(), time.monotonic()
            manifest = package_recording(rec, PackageOptions())
            walls.append(time.monotonic() - t0)
            cpus.append(time.process_time() - c0)
            shutil.rmtree(rec)
        video = manifest.get("video") or {}
        rows.append({
            "case": name,
            "wall_s_per_min": statistics.median(walls) / minutes,
            "cpu_s_per_min": statistics.median(cpus) / minutes,
            "realtime_x": seconds / statistics.median(walls),
            "mode": video.get("mode"),
            "segments": manifest.get("segments"),
            "max_seg_s": manifest.get("segment_max_ms", 0) / 1000,
            "hls_mb": manifest.get("hls_bytes", 0) / 1e6,
            "runs": [round(w, 2) for w in walls],
        })
    base = rows[0]["wall_s_per_min"]
    for row in rows:
        row["x_remux"] = row["wall_s_per_min"] / base
    return rows


async def loop_lag(duration: float, stop: asyncio.Event | None = None) -> list[float]:
    """Lateness (ms) of a 10 ms timer, sampled until ``duration`` or ``stop``."""
    loop = asyncio.get_running_loop()
    lags = []
    end = loop.time() + duration
    while loop.time() < end and not (stop and stop.is_set()):
        t0 = loop.time()
        await asyncio.sleep(0.010)
        lags.append((loop.time() - t0 - 0.010) * 1000)
    return lags


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def bench_jobs(sources: dict[str, Path], workdir: Path) -> list[dict]:
    rows = []
    jobs = PackagingJobs(workdir, PackageOptions())
    await jobs.start()
    try:
        for name in ("h264 remux", "vp8 transcode"):
            rec = fresh_copy(sources[name], workdir, "job-" + name.replace(" ", "-"))
            idle = await loop_lag(3.0)
            done = asyncio.Event()
            lag_task = asyncio.create_task(loop_lag(3600, done))
            t0 = time.monotonic()
            jobs.enqueue(rec)
            while read_manifest(rec).get("status") not in ("ready", "failed"):
                await asyncio.sleep(0.02)
            latency = time.monotonic() - t0
            done.set()
            busy = await lag_task
            rows.append({
                "case": name, "recorded_to_ready_s": latency, "status": read_manifest(rec)["status"],
                "idle_p50": pct(idle, 0.5), "idle_p99": pct(idle, 0.99), "idle_max": max(idle),
                "busy_p50": pct(busy, 0.5), "busy_p99": pct(busy, 0.99), "busy_max": max(busy),
            })
            await jobs.join()
    finally:
        await jobs.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each recording")
    ap.add_argument("--runs", type=int, default=3, help="packaging runs per case (median)")
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--keep", help="work directory to keep (and reuse its generated sources)")
    ap.add_argument("--json", help="also write every number to this file")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="packaging-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; recordings {args.seconds:.0f} s "
              f"{size[0]}x{size[1]} 30 fps + Opus; median of {args.runs} runs", flush=True)
        sources = generate(workdir, args.seconds, size)
        rows = bench_packaging(sources, workdir, args.runs, args.seconds)
        print()
        print("packaging one recording (package_recording, in the foreground)")
        print(f"{'case':<15} {'mode':<9} {'wall s/min':>10} {'cpu s/min':>9} {'x realtime':>10} "
              f"{'x remux':>7} {'segs':>4} {'max seg s':>9} {'HLS MB':>6}  runs (s)")
        for r in rows:
            print(f"{r['case']:<15} {r['mode']:<9} {r['wall_s_per_min']:>10.2f} {r['cpu_s_per_min']:>9.2f} "
                  f"{r['realtime_x']:>10.1f} {r['x_remux']:>7.1f} {r['segments']:>4} {r['max_seg_s']:>9.2f} "
                  f"{r['hls_mb']:>6.1f}  {r['runs']}")
        job_rows = asyncio.run(bench_jobs(sources, workdir))
        print()
        print("job runner (PackagingJobs: worker thread at nice +10; a 10 ms timer on the event loop)")
        print(f"{'case':<15} {'recorded->ready s':>17} {'lag p50 ms':>10} {'lag p99 ms':>10} {'lag max ms':>10}"
              f"   idle loop: p50 / p99 / max ms")
        for r in job_rows:
            print(f"{r['case']:<15} {r['recorded_to_ready_s']:>17.2f} {r['busy_p50']:>10.2f} "
                  f"{r['busy_p99']:>10.2f} {r['busy_max']:>10.2f}   {r['idle_p50']:.2f} / {r['idle_p99']:.2f} / "
                  f"{r['idle_max']:.2f}")
        if args.json:
            Path(args.json).write_text(json.dumps({"packaging": rows, "jobs": job_rows}, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
