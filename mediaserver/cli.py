"""The ``stagepass`` command."""

from __future__ import annotations

import argparse
import logging
import sys

from aiohttp import web

from .config import ConfigError, Settings
from .logs import setup_logging

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="stagepass", description="Stagepass live-class server")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the server (see 'stagepass serve --help')", add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "serve":
        return serve(rest)
    return 2  # pragma: no cover


def serve(argv: list[str]) -> int:
    try:
        settings = Settings.load(argv)
    except ConfigError as exc:
        print(f"stagepass: invalid configuration: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    from .app import create_app

    app = create_app(settings)
    log = logging.getLogger("stagepass")
    rooms = ", ".join(sorted(settings.stream_keys()))
    where = "STAGEPASS_ROOMS" if settings.rooms else f"{settings.data_dir / 'stream-keys.json'}"
    log.info("rooms: %s (stream keys in %s)", rooms, where)
    log.info(
        "studio http://%s:%d/static/studio.html, player http://%s:%d/static/watch.html",
        settings.host, settings.port, settings.host, settings.port,
    )
    web.run_app(app, host=settings.host, port=settings.port, print=None)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
