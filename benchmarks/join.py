"""Join latency: how long a viewer waits for a picture.

Run from the repository root::

    .venv/bin/python benchmarks/join.py [--joins 20] [--block 5] [--no-chromium] [--json out.json]

Two measurements, each over ``--joins`` sequential joins of one live room (an aiortc
publisher, H.264 640x480 at 30 fps, frames numbered, Opus beside it):

* **aiortc**: WHEP ``POST`` sent -> first decoded video frame, for a ``tests/peers.Viewer``;
* **chromium**: page open (navigation start) -> first painted video frame
  (``requestVideoFrameCallback``) of ``/static/watch.html`` in headless Debian Chromium,
  launched without ``--use-fake-ui-for-media-stream`` so its candidates are mDNS names
  (``<uuid>.local``), the browser default for a page that never asked for a camera;
  **chromium POST** is the part of it from the page's WHEP ``POST`` (Resource Timing)
  to the painted frame, without loading the page and gathering its candidates.

Modes, run in alternating blocks of ``--block`` joins so machine load hits them alike
(each block has a fresh server and publisher, so only one publisher encodes at a time):

* **new**: the current code;
* **pages**: the current server with the pages (``web/static``) of commit ``--pages-from``
  (default: the main of issue 10's first stop, whose ``whip.js`` waited for the whole ICE
  gathering, minted the view token before making its offer and loaded its modules one
  after the other), served from a copy under ``/static-base/``; Chromium only;
* **old**: the behaviour before issue 10: the join's keyframe request made at the POST
  (``Fanout.add``), mDNS candidates resolved before answering, and
  ``KEYFRAME_MIN_INTERVAL`` at its old default of 1 s.

The servers run in this process, on loopback. Prints p50/p95/max per client and mode,
the ratio of each median to new's, and where a Chromium join's time goes (medians of
each phase, from the page's Resource Timing and its peer connection's state).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Optional

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # tests/support/peers.py lives in the repository, not the package
    sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402

from mediaserver.live import remote_candidates  # noqa: E402
from stagepass.app import create_app  # noqa: E402
from core.settings import Settings  # noqa: E402
from mediaserver.sfu.fanout import Fanout  # noqa: E402
from core.access import StreamKeyAccess  # noqa: E402
from signalling.whip import ROOMS  # noqa: E402
from tests.support.browser import CHROMIUM, FLAGS  # noqa: E402
from tests.support.peers import Publisher, Viewer  # noqa: E402

KEY = "benchmark-key"
OLD_KEYFRAME_MIN_INTERVAL = 1.0
#: main when issue 10's first stop landed: whip.js sent its offer after full ICE gathering
PAGES_BASELINE = "863c2f2"
#: the browser's own default: no fake media UI, so no camera permission and mDNS names
CHROMIUM_FLAGS = [f for f in FLAGS if f != "--use-fake-ui-for-media-stream"]

FIRST_PAINT_JS = """
window.__firstPaint = null;
window.__connected = null;
// when the page's peer connection is up (ICE and DTLS), for the breakdown
window.RTCPeerConnection = class extends window.RTCPeerConnection {
  constructor(...args) {
    super(...args);
    this.addEventListener('connectionstatechange', () => {
      if (this.connectionState === 'connected' && window.__connected === null) {
        window.__connected = performance.now();
      }
    });
  }
};
document.addEventListener('DOMContentLoaded', () => {
  const v = document.getElementById('video');
  if (!v || !v.requestVideoFrameCallback) return;
  v.requestVideoFrameCallback((now) => { window.__firstPaint = now; });
});
"""


@contextlib.contextmanager
def old_behaviour() -> Iterator[None]:
    """Put back what issue 10 changed on the join path, for the baseline."""
    add, take_from = Fanout.add, remote_candidates.DeferredCandidates.take_from

    def add_and_request(self: Fanout, downstream: Any) -> None:
        add(self, downstream)
        self.request_keyframe()  # at the POST, before the viewer's transport is up

    def keep_all(sdp: str) -> tuple[str, remote_candidates.DeferredCandidates]:
        return sdp, remote_candidates.DeferredCandidates()  # aiortc resolves them before answering

    Fanout.add = add_and_request  # type: ignore[method-assign]
    remote_candidates.DeferredCandidates.take_from = staticmethod(keep_all)  # type: ignore[assignment]
    try:
        yield
    finally:
        Fanout.add = add  # type: ignore[method-assign]
        remote_candidates.DeferredCandidates.take_from = take_from  # type: ignore[method-assign]


class Server:
    """One Stagepass app on loopback with a live publisher in room ``demo``."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.settings = Settings.build(data_dir=Path(tempfile.mkdtemp(prefix=f"join-{mode}-")),
                                 rooms={"demo": KEY}, recordings=False, workers=1)  # media in this process
        if mode == "old":
            self.settings.media.keyframe_min_interval = OLD_KEYFRAME_MIN_INTERVAL
        self.settings.validate()
        self.static_base: Optional[Path] = None  #: "pages" mode: the baseline's web/static
        self.mdns_offers = 0
        self.base = ""
        self._runner: Optional[web.AppRunner] = None
        self.publisher: Optional[asyncio.subprocess.Process] = None

    async def start(self) -> None:
        app = create_app(self.settings, access=StreamKeyAccess(self.settings.stream_keys()))
        if self.static_base is not None:
            app.router.add_static("/static-base/", self.static_base)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"
        self.app = app
        # the publisher encodes in its own process, as a creator's machine would
        self.publisher = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).resolve()), "--publish-to", self.base)
        deadline = time.monotonic() + 30
        while True:
            room = app[ROOMS].get("demo")
            if room is not None and room.publisher is not None and room.publisher.last_media() is not None:
                break
            if time.monotonic() > deadline or self.publisher.returncode is not None:
                raise RuntimeError("the publisher sent no media")
            await asyncio.sleep(0.05)

    def keyframes(self) -> dict:
        return self.app[ROOMS].get("demo").stats()["keyframe_requests"]

    async def close(self) -> None:
        if self.publisher is not None and self.publisher.returncode is None:
            self.publisher.terminate()
            await self.publisher.wait()
        if self._runner is not None:
            await self._runner.cleanup()


async def aiortc_join(server: Server) -> float:
    viewer = Viewer(server.base)
    try:
        t0 = time.monotonic()
        status = await viewer.play("demo")
        assert status == 201, getattr(viewer, "error", status)
        first = await asyncio.wait_for(viewer.first_frame, 15)
        return (first - t0) * 1000
    finally:
        if viewer.location:
            with contextlib.suppress(Exception):
                await viewer.delete()
        await viewer.close()


#: the phases of a Chromium join, in order, each ending at the named moment (ms from page open)
PHASES = ("page and modules", "offer and token", "POST to answer", "ICE and DTLS", "keyframe to paint")

BREAKDOWN_JS = """(() => {
  const entries = performance.getEntriesByType('resource');
  const path = (e) => new URL(e.name).pathname;
  const scripts = entries.filter((e) => path(e).endsWith('.js'));
  const post = entries.find((e) => /^\\/whep\\/[^/]+$/.test(path(e)));
  return [Math.max(...scripts.map((e) => e.responseEnd)), post.startTime, post.responseEnd,
          window.__connected, window.__firstPaint];
})()"""


async def chromium_join(server: Server, browser: Any) -> dict[str, float]:
    """Page open -> first painted frame (``total``), the WHEP POST -> painted frame part
    (``POST``), and the phases of ``PHASES``."""
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.add_init_script(FIRST_PAINT_JS)
        offers: list[str] = []
        # the page's candidates, in its offer or trickled (POST and PATCH bodies)
        page.on("request", lambda r: offers.append(r.post_data or "") if "/whep/" in r.url and r.method in ("POST", "PATCH") else None)
        folder = "static-base" if server.static_base is not None else "static"
        await page.goto(f"{server.base}/{folder}/watch.html?room=demo&autoplay=1")
        await page.wait_for_function("window.__firstPaint !== null", timeout=15_000)
        if any(".local" in o for o in offers):
            server.mdns_offers += 1
        marks = await page.evaluate(BREAKDOWN_JS)
        paint, post = marks[-1], marks[1]
        result = {"total": float(paint), "POST": float(paint - post)}
        previous = 0.0
        for phase, mark in zip(PHASES, marks):
            mark = max(previous, float(mark if mark is not None else previous))
            result[phase] = mark - previous
            previous = mark
        return result
    finally:
        await context.close()


def baseline_pages(rev: str) -> Optional[Path]:
    """``web/static`` of commit ``rev`` in a temporary folder, or None (with why) if git
    cannot give it."""
    folder = Path(tempfile.mkdtemp(prefix="join-pages-"))
    try:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "web/static"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = exc.stderr.decode(errors="replace").strip() if getattr(exc, "stderr", None) else exc
        print(f"no 'pages' baseline: cannot read web/static of {rev}: {detail}", file=sys.stderr)
        shutil.rmtree(folder, ignore_errors=True)
        return None
    return folder / "web" / "static"


async def publish_forever(base: str) -> None:
    """``--publish-to``: an aiortc publisher (H.264 640x480 at 30 fps, Opus) until killed."""
    publisher = Publisher(base, codec="video/H264", width=640, height=480)
    status = await publisher.publish("demo", KEY)
    if status != 201:
        raise SystemExit(f"publish failed: {status} {getattr(publisher, 'error', '')}")
    await asyncio.Event().wait()


def summary(values: list[float]) -> dict:
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]

    return {"n": len(values), "p50": statistics.median(values), "p95": pct(0.95), "max": ordered[-1]}


async def run(args: argparse.Namespace) -> dict:
    pages = baseline_pages(args.pages_from) if args.chromium and args.pages_from else None
    modes = ("new", "pages", "old") if pages is not None else ("new", "old")
    results: dict[str, dict[str, list[float]]] = {
        c: {m: [] for m in modes} for c in ("aiortc", "chromium", "chromium POST")}
    phases: dict[str, dict[str, list[float]]] = {m: {p: [] for p in PHASES} for m in modes}
    extra = {m: {"keyframe_requests": {"requested": 0, "sent": 0}, "chromium_offers_with_mdns": 0} for m in modes}
    browser = playwright = None
    try:
        if args.chromium:
            from playwright.async_api import async_playwright

            playwright = await async_playwright().start()
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                       args=CHROMIUM_FLAGS)
        wanted = {m: (["aiortc"] if m != "pages" else []) + (["chromium"] if args.chromium else [])
                  for m in modes}
        while any(len(results[c][m]) < args.joins for m in modes for c in wanted[m]):
            for mode in modes:
                # one block: a fresh server and publisher (only one publisher encodes at a time)
                with old_behaviour() if mode == "old" else contextlib.nullcontext():
                    server = Server(mode)
                    server.static_base = pages if mode == "pages" else None
                    try:
                        await server.start()
                        await asyncio.sleep(args.gap)
                        for client in wanted[mode]:
                            for _ in range(min(args.block, args.joins - len(results[client][mode]))):
                                if client == "aiortc":
                                    ms = await aiortc_join(server)
                                else:
                                    join = await chromium_join(server, browser)
                                    ms = join["total"]
                                    results["chromium POST"][mode].append(join["POST"])
                                    for phase in PHASES:
                                        phases[mode][phase].append(join[phase])
                                results[client][mode].append(ms)
                                print(f"  {client:8} {mode}: {ms:7.0f} ms", file=sys.stderr)
                                await asyncio.sleep(args.gap)
                        for k, v in server.keyframes().items():
                            extra[mode]["keyframe_requests"][k] += v
                        extra[mode]["chromium_offers_with_mdns"] += server.mdns_offers
                    finally:
                        await server.close()
    finally:
        if browser is not None:
            await browser.close()
        if playwright is not None:
            await playwright.stop()
        if pages is not None:
            shutil.rmtree(pages.parent.parent, ignore_errors=True)
    return {"results": results, "phases": phases, "servers": extra,
            "pages_from": args.pages_from if pages is not None else None,
            "load": os.getloadavg()}


def print_table(report: dict) -> None:
    print(f"{'client':14} {'mode':5} {'joins':>5} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'p50/new':>8}")
    for client, modes in report["results"].items():
        if not modes["new"]:
            continue
        new = summary(modes["new"])
        for mode, values in modes.items():
            if not values:
                continue
            s = summary(values)
            ratio = f"{s['p50'] / new['p50']:.2f}" if mode != "new" else ""
            print(f"{client:14} {mode:5} {s['n']:5d} {s['p50']:8.0f} {s['p95']:8.0f} {s['max']:8.0f} {ratio:>8}")
    if any(report["phases"][m][PHASES[0]] for m in report["phases"]):
        print("\nChromium join, page open to first paint: median ms of each phase")
        modes = [m for m in report["phases"] if report["phases"][m][PHASES[0]]]
        print(f"{'phase':18} " + " ".join(f"{m:>7}" for m in modes))
        for phase in PHASES:
            print(f"{phase:18} " + " ".join(f"{statistics.median(report['phases'][m][phase]):7.0f}" for m in modes))
    if report["pages_from"]:
        print(f"pages: web/static of {report['pages_from']} on the current server")
    for mode, extra in report["servers"].items():
        print(f"{mode}: keyframe requests {extra['keyframe_requests']}, "
              f"Chromium joins with mDNS candidates (offered or trickled): {extra['chromium_offers_with_mdns']}")
    print("load average at the end (1, 5, 15 min): " + ", ".join(f"{x:.1f}" for x in report["load"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--joins", type=int, default=20, help="joins per client and mode (default 20)")
    parser.add_argument("--block", type=int, default=5, help="joins in a row before switching mode")
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between joins")
    parser.add_argument("--no-chromium", dest="chromium", action="store_false")
    parser.add_argument("--pages-from", default=PAGES_BASELINE,
                        help=f"commit whose web/static is the 'pages' baseline (default {PAGES_BASELINE}; "
                             "empty: no such mode)")
    parser.add_argument("--json", help="also write every sample here")
    parser.add_argument("--publish-to", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publish_to:
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        asyncio.run(publish_forever(args.publish_to))
        return
    report = asyncio.run(run(args))
    print_table(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
