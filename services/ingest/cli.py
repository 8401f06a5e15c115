"""Command-line subcommands of the ingest service: ``ingest``, ``keys``, ``backfill``."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from services.ingest.settings import IngestSettings


def _serve(_: argparse.Namespace) -> int:
    import uvloop

    from services.ingest.server import serve

    uvloop.run(serve(IngestSettings()))
    return 0


def _keys(args: argparse.Namespace) -> int:
    from services.ingest import keycli

    return asyncio.run(keycli.run(args, IngestSettings()))


def _backfill(args: argparse.Namespace) -> int:
    from services.ingest.keycli import run_backfill

    publisher = None if args.unbound else args.publisher
    return asyncio.run(run_backfill(Path(args.file), args.batch_size, IngestSettings(), publisher))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser("ingest", help="run the ingest HTTP API").set_defaults(handler=_serve)

    keys = sub.add_parser("keys", help="create, list and revoke publishers' API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="make a key; prints it alone on the last line")
    create.add_argument("--name", required=True, help="the integrating system's name")
    create.add_argument("--units", required=True, help="unit codes, comma-separated")
    create.add_argument("--types", required=True, help="event types, comma-separated")
    create.add_argument(
        "--sources",
        required=True,
        help="prefixes of the CloudEvents sources it may publish, comma-separated",
    )
    create.add_argument(
        "--rotate", action="store_true", help="revoke the live key of this name first"
    )
    keys_sub.add_parser("list", help="list keys (never their secrets)")
    revoke = keys_sub.add_parser("revoke", help="revoke the live key of this name")
    revoke.add_argument("name")
    bind = keys_sub.add_parser(
        "sources", help="set the source prefixes the live key of this name may publish"
    )
    bind.add_argument("name")
    bind.add_argument("--sources", required=True, help="source prefixes, comma-separated")
    keys.set_defaults(handler=_keys)

    backfill = sub.add_parser(
        "backfill", help="validate and publish history (CloudEvents, one per line) to Kafka"
    )
    backfill.add_argument("file", help="path of the file, or - for standard input")
    backfill.add_argument("--batch-size", type=int, default=500, help="events per produce")
    # Whose events these are decides their dedup identity: bound to the publisher, they
    # meet the live deliveries of the same events (counted once); unbound, they meet only
    # other unbound ones. No default: a wrong guess counts an overlap twice.
    whose = backfill.add_mutually_exclusive_group(required=True)
    whose.add_argument(
        "--publisher",
        metavar="NAME",
        help="the integrating system whose history this is: its API key's name (keys list);"
        " an event it also sent live counts once",
    )
    whose.add_argument(
        "--unbound",
        action="store_true",
        help="history no publisher sends live (another system's export): counted once"
        " against other unbound backfills, never against live events",
    )
    backfill.set_defaults(handler=_backfill)
