"""``egov-pulse dead-letters list|replay``: argument parsing and the run (composition root)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime

from services.ingest.settings import IngestSettings

USAGE_ERROR = 2
BROKER_FAILED = 3


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    letters = sub.add_parser(
        "dead-letters", help="see the dead-lettered records; count them again once fixed"
    )
    letters_sub = letters.add_subparsers(dest="dead_letters_command", required=True)
    listing = letters_sub.add_parser(
        "list", help="one tab-separated row (or JSON line) per dead letter, oldest first"
    )
    _selection_options(listing, reason_required=False)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=_list)
    again = letters_sub.add_parser(
        "replay",
        help="publish the events of a fixed cause's dead letters again, as backfill does,"
        " under the identity they were first published with (counted once)",
    )
    _selection_options(again, reason_required=True)
    again.add_argument(
        "--dry-run",
        action="store_true",
        help="validate and say what would be replayed; publish nothing",
    )
    again.add_argument(
        "--vouch-publisher",
        metavar="NAME",
        help="believe that the selected dead letters naming NAME (egov_publisher) are its"
        " although no ingest MAC on them verifies (publisher-unsigned): only once NAME's"
        " operators confirm the events are theirs",
    )
    again.set_defaults(handler=_replay)


def _selection_options(parser: argparse.ArgumentParser, reason_required: bool) -> None:
    parser.add_argument(
        "--since",
        metavar="DURATION|TIME",
        help="dead-lettered since: 90m, 6h, 7d, 2w, or a time (2026-12-06T08:00, Vietnam time)",
    )
    parser.add_argument(
        "--reason", required=reason_required, help="dlq_reason, e.g. time-in-future, unknown-unit"
    )
    parser.add_argument(
        "--publisher", metavar="P", help="the egov_publisher header (- for unbound: none)"
    )
    parser.add_argument("--province", metavar="NN", help="the province missing the events")
    parser.add_argument("--source-topic", metavar="T", help="the event topic it was read from")


def _list(args: argparse.Namespace) -> int:
    from services.deadletters.run import run_list

    return asyncio.run(run_list(args, IngestSettings(), datetime.now(UTC)))


def _replay(args: argparse.Namespace) -> int:
    from services.deadletters.run import run_replay

    return asyncio.run(run_replay(args, IngestSettings(), datetime.now(UTC)))


def refuse(message: str) -> int:
    print(f"refused: {message}", file=sys.stderr)
    return USAGE_ERROR
