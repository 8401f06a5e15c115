"""Command-line subcommand of the wall service: ``wall``."""

from __future__ import annotations

import argparse
import asyncio


def _serve(_: argparse.Namespace) -> int:
    from services.wall.server import serve
    from services.wall.settings import WallSettings

    asyncio.run(serve(WallSettings()))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    wall = sub.add_parser("wall", help="run the IOC wall page (reads the workers and alerts)")
    wall.set_defaults(handler=_serve)
