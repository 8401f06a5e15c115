"""Command-line subcommands of the ingest service."""

from __future__ import annotations

import argparse
import asyncio


def _serve(_: argparse.Namespace) -> int:
    from services.ingest.server import serve
    from services.ingest.settings import IngestSettings

    asyncio.run(serve(IngestSettings()))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser("ingest", help="run the ingest HTTP API").set_defaults(handler=_serve)
