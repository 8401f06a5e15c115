"""What ``dead-letters list`` and ``replay`` do, with their real adapters.

Exit status: 0 done; 1 (replay) some events refused or dead letters skipped, each
said; 2 refused before anything was done (an option, an identity PostgreSQL cannot
check, events counted under another identity); 3 the broker did not answer or refused
the read (nothing was published after it).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from services.common.contract import Contract
from services.common.units import UnitRegistry
from services.deadletters.cli import BROKER_FAILED, refuse
from services.deadletters.reading import ReadError, TopicReader
from services.deadletters.replay import replay
from services.deadletters.selection import Selection, parse_since
from services.deadletters.views import Shown, show
from services.ingest.keycli import lookup_pool
from services.ingest.settings import IngestSettings
from services.metrics.decoding import RecordDecoder
from services.metrics.dlqprovince import DeadLetterProvinces


def selection_of(args: argparse.Namespace, now: datetime) -> Selection:
    """The options as a Selection (ValueError: a ``--since`` that reads as neither)."""
    since = None if args.since is None else parse_since(args.since, now)
    return Selection(since, args.reason, args.publisher, args.province, args.source_topic)


async def selected(
    selection: Selection, settings: IngestSettings, registry: UnitRegistry, now: datetime
) -> list[Shown]:
    """The selected dead letters, oldest first, expanded (ReadError: the broker)."""
    contract = Contract.load(settings.schemas_dir)
    provinces = DeadLetterProvinces(RecordDecoder(contract, registry))
    async with TopicReader(settings) as reader:
        letters = await reader.dead_letters(settings.topic_dead_letter, selection.since_ms)
        shown = [await show(d, reader, provinces, now) for d in letters if selection.takes(d)]
    return [s for s in shown if selection.takes_province(s.province)]


async def run_list(args: argparse.Namespace, settings: IngestSettings, now: datetime) -> int:
    registry = UnitRegistry.from_dir(settings.units_dir)
    chosen = await _chosen(args, settings, registry, now)
    if isinstance(chosen, int):
        return chosen
    for item in chosen:
        sys.stdout.buffer.write(item.json() + b"\n" if args.json else (item.row() + "\n").encode())
    sys.stdout.flush()
    return 0


async def run_replay(args: argparse.Namespace, settings: IngestSettings, now: datetime) -> int:
    registry = UnitRegistry.from_dir(settings.units_dir)
    chosen = await _chosen(args, settings, registry, now)
    if isinstance(chosen, int):
        return chosen
    pool = await lookup_pool(settings)
    try:
        report = await replay(chosen, settings, registry, pool, args.dry_run, args.vouch_publisher)
    finally:
        if pool is not None:
            await pool.close()
    for line in report.summary(args.dry_run):
        print(line)
    return report.code


async def _chosen(
    args: argparse.Namespace, settings: IngestSettings, registry: UnitRegistry, now: datetime
) -> list[Shown] | int:
    """The dead letters the options select, or the exit status of a refusal (said)."""
    try:
        selection = selection_of(args, now)
    except ValueError as exc:
        return refuse(str(exc))
    try:
        return await selected(selection, settings, registry, now)
    except ReadError as exc:
        return _stopped(settings, exc)


def _stopped(settings: IngestSettings, exc: ReadError) -> int:
    print(
        f"stopped: reading {settings.topic_dead_letter} at {settings.kafka_bootstrap_servers}:"
        f" {exc}; nothing was done",
        file=sys.stderr,
    )
    return BROKER_FAILED
