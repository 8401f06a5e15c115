"""Command-line subcommands of the alerts service."""

from __future__ import annotations

import argparse
import asyncio


def _serve(_: argparse.Namespace) -> int:
    from services.alerts.server import serve
    from services.alerts.settings import AlertsSettings

    asyncio.run(serve(AlertsSettings()))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser("alerts", help="run the alerts service").set_defaults(handler=_serve)
