"""The ``stagepass`` command."""

from __future__ import annotations

import argparse
import logging
import sys

from aiohttp import web

from core.heap import freeze_startup_heap

from core.settings import ConfigError, Settings
from core.logs import setup_logging

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="stagepass", description="Stagepass live-class server")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the server (see 'stagepass serve --help')", add_help=False)
    sub.add_parser("migrate", help="bring the database schema up to date", add_help=False)
    sub.add_parser("storage", help="storage migrate: publish local replays to STAGEPASS_STORAGE_URL (resumable)",
                   add_help=False)
    sub.add_parser("set-role", help="set-role EMAIL viewer|creator|admin (make an admin)", add_help=False)
    sub.add_parser("insight", help="insight train-churn: retrain the churn model on the platform's history",
                   add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "serve":
        return serve(rest)
    if args.command == "migrate":
        return _with_paywall(rest, lambda paywall: _done("database is up to date"))
    if args.command == "storage":
        if not rest or rest[0] != "migrate":
            print("usage: stagepass storage migrate [serve options]", file=sys.stderr)
            return 2
        from mediaserver.packaging.migrate import migrate

        return migrate(rest[1:])
    if args.command == "set-role":
        if len(rest) < 2:
            print("usage: stagepass set-role EMAIL ROLE [serve options]", file=sys.stderr)
            return 2
        email, role, rest = rest[0], rest[1], rest[2:]

        async def set_role(paywall):
            user = await paywall.accounts.set_role(email, role)
            await paywall.audit.record(None, "role", f"user:{user.id}", role=user.role, by="command line")
            print(f"user {user.id} is now {user.role}")

        return _with_paywall(rest, set_role)
    if args.command == "insight":
        if not rest or rest[0] != "train-churn":
            print("usage: stagepass insight train-churn [serve options]", file=sys.stderr)
            return 2

        async def train(paywall):
            from insight.service import Insight

            result = await Insight(paywall.settings, paywall).at_risk.train()
            print(f"churn model trained on {result['buyers']} buyers ({result['churned']} churned), "
                  f"coefficients {result['coefficients']}")

        return _with_paywall(rest[1:], train)
    return 2  # pragma: no cover


async def _done(message: str) -> None:
    print(message)


def _with_paywall(argv: list[str], action) -> int:
    """Open the database (running migrations), run ``action(paywall)``, close."""
    import asyncio

    from core.access import Refusal
    from paywall.service import Paywall

    try:
        settings = Settings.load(argv)
    except ConfigError as exc:
        print(f"stagepass: invalid configuration: {exc}", file=sys.stderr)
        return 2

    async def run() -> int:
        paywall = await Paywall.open(settings)
        try:
            await action(paywall)
            return 0
        except Refusal as exc:
            print(f"stagepass: {exc.message}", file=sys.stderr)
            return 1
        finally:
            await paywall.close()

    return asyncio.run(run())


def serve(argv: list[str]) -> int:
    try:
        settings = Settings.load(argv)
    except ConfigError as exc:
        print(f"stagepass: invalid configuration: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.server.log_level, settings.server.log_format)
    from stagepass.app import create_app

    app = create_app(settings)
    log = logging.getLogger("stagepass")
    rooms = ", ".join(sorted(settings.stream_keys()))
    where = "STAGEPASS_ROOMS" if settings.media.rooms else f"{settings.server.data_dir / 'stream-keys.json'}"
    log.info("rooms: %s (stream keys in %s)", rooms, where)
    base = settings.server.public_url or f"http://{settings.server.host}:{settings.server.port}"
    log.info("catalog %s/, studio %s/static/studio.html, open-room player %s/static/watch.html", base, base, base)
    from stagepass.access_log import RedactingAccessLogger

    async def freeze_heap(app: web.Application) -> None:
        """After every startup context (the server process only, not tests that build many
        apps in one process): what is alive now lives as long as the process."""
        log.debug("froze %d start-up objects out of the collector's way", freeze_startup_heap())

    app.on_startup.append(freeze_heap)

    try:
        web.run_app(app, host=settings.server.host, port=settings.server.port, print=None, access_log_class=RedactingAccessLogger)
    except ConfigError as exc:  # found at start: configuration against the database
        print(f"stagepass: invalid configuration: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
