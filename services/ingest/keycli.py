"""What the ``keys`` and ``backfill`` commands do, with their real adapters.

The new key is printed alone on the last line of ``keys create`` (scripts take
``tail -n 1``); nothing else ever prints or logs a key. Refusals go to stderr, so a
script reading stdout never takes one for the key; PostgreSQL not answering is one line
too (services/common/pgconnect.py), never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
from pathlib import Path

import asyncpg
from aiokafka.errors import KafkaError

from services.common.contract import Contract
from services.common.kafka import ensure_topics
from services.common.kpis import KpiCatalogue
from services.common.pgconnect import (
    CONNECT_ERRORS,
    DatabaseDown,
    connect,
    say_down,
)
from services.common.summaries import Summarizer, record_signer
from services.common.textrows import escape_field
from services.common.units import UnitRegistry
from services.ingest.backfill import Identity, backfill, backfill_validator
from services.ingest.keys import (
    check_name,
    check_scope,
    check_sources,
    scope_violations,
    split_codes,
)
from services.ingest.keystore import (
    KeyStoreError,
    bind_sources,
    create_key,
    find_cutover,
    key_named,
    list_keys,
    revoke_key,
    rotate_key,
)
from services.ingest.publisher import KafkaPublisher
from services.ingest.reruns import CountedElsewhere
from services.ingest.settings import IngestSettings
from services.ingest.validation import EventValidator


async def run(args: argparse.Namespace, settings: IngestSettings) -> int:
    try:
        conn = await connect(settings.database_url.get_secret_value())
    except DatabaseDown as down:
        return say_down(down)
    try:
        if args.keys_command == "create":
            return await _create(conn, args, settings)
        if args.keys_command == "list":
            return await _list(conn)
        if args.keys_command == "sources":
            return await _sources(conn, args.name, split_codes(args.sources))
        return await _revoke(conn, args.name)
    finally:
        await conn.close()


async def _create(
    conn: asyncpg.Connection, args: argparse.Namespace, settings: IngestSettings
) -> int:
    units, types = split_codes(args.units), split_codes(args.types)
    sources = split_codes(args.sources)
    contract = Contract.load(settings.schemas_dir)
    registry = UnitRegistry.from_dir(settings.units_dir)
    wrong = check_name(args.name) + check_scope(units, types, registry, contract.event_types)
    wrong += check_sources(sources)
    if wrong or not units or not types:
        refused = "; ".join(wrong) or "--units and --types may not be empty"
        print(f"refused: {refused}", file=sys.stderr)
        return 2
    make = rotate_key if args.rotate else create_key
    try:
        key = await make(conn, args.name, units, types, sources=sources)
    except KeyStoreError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    print(
        f"created key {key.key_id} for {args.name!r}: units {','.join(units)}; "
        f"types {','.join(types)}; sources {','.join(sources)}"
    )
    print("store it now: only its hash is kept, it cannot be shown again")
    print(key.token)
    return 0


async def _list(conn: asyncpg.Connection) -> int:
    print("key_id        name  state  created  units  types  sources")
    for key in await list_keys(conn):
        state = "revoked" if key.revoked_at else "live"
        sources = ",".join(key.sources) or "(none: bind with `keys sources`)"
        # Escaped: what was stored before prefixes were checked may hold a line break.
        print(
            f"{key.key_id}  {escape_field(key.name)}  {state}  "
            f"{key.created_at:%Y-%m-%d %H:%M}  {','.join(key.units)}  {','.join(key.types)}  "
            f"{escape_field(sources)}"
        )
    return 0


async def _sources(conn: asyncpg.Connection, name: str, sources: list[str]) -> int:
    wrong = check_sources(sources)
    if wrong:
        print("refused: " + "; ".join(wrong), file=sys.stderr)
        return 2
    if await bind_sources(conn, name, sources):
        print(
            f"the key named {name!r} may publish sources {','.join(sources)} "
            "(effective within the ingest key cache TTL)"
        )
        return 0
    print(f"refused: no live key named {name!r}", file=sys.stderr)
    return 1


async def _revoke(conn: asyncpg.Connection, name: str) -> int:
    if await revoke_key(conn, name):
        print(f"revoked the key named {name!r} (effective within the ingest key cache TTL)")
        return 0
    print(f"refused: no live key named {name!r}", file=sys.stderr)
    return 1


async def backfill_identity(
    settings: IngestSettings, publisher: str | None, registry: UnitRegistry
) -> Identity | str:
    """Whose events a backfill publishes, or why it cannot: a publisher must be a key's
    name (a typo would bind the events to nobody's live identity and count overlaps
    twice), its events must lie within that key's scope (another system's events bound to
    it would never meet their own live copies), and its events dated before the dedup
    cut-over keep the unbound identity."""
    if publisher is None:
        return Identity()
    try:
        conn = await connect(settings.database_url.get_secret_value())
    except DatabaseDown as down:
        return (
            f"--publisher {publisher!r} is checked against the API keys in {down};"
            " start it, or set DATABASE_URL"
        )
    try:
        key = await key_named(conn, publisher)
        if key is None:
            return (
                f"no API key was ever named {publisher!r}: --publisher takes the name of the"
                " integrating system's key (egov-pulse keys list); use --unbound for history"
                " no publisher sends live"
            )
        scope = functools.partial(scope_violations, key, registry=registry)
        return Identity(publisher, await find_cutover(conn), scope)
    finally:
        await conn.close()


async def run_backfill(
    path: Path, batch_size: int, settings: IngestSettings, publisher: str | None = None
) -> int:
    unreadable = _unreadable(path)
    if unreadable is not None:
        print(f"refused: {unreadable}; nothing was published", file=sys.stderr)
        return 2
    registry = UnitRegistry.from_dir(settings.units_dir)
    identity = await backfill_identity(settings, publisher, registry)
    if isinstance(identity, str):
        print(f"refused: {identity}", file=sys.stderr)
        return 2
    pool = await lookup_pool(settings)
    if pool is None and publisher is not None:
        print(
            "refused: PostgreSQL stopped answering after the publisher was checked; the"
            " events' other identity cannot be looked up: run it again once it answers",
            file=sys.stderr,
        )
        return 2
    try:
        return await _run_backfill(path, batch_size, settings, registry, identity, pool)
    finally:
        if pool is not None:
            await pool.close()


def _unreadable(path: Path) -> str | None:
    """Why the file cannot be read (missing, a directory, no permission), or None; checked
    before PostgreSQL and the broker are asked anything. ``-`` is standard input."""
    if str(path) == "-":
        return None
    try:
        path.open("rb").close()
    except OSError as exc:
        return f"cannot read {str(path)!r}: {exc.strerror or exc}"
    return None


async def lookup_pool(settings: IngestSettings) -> asyncpg.Pool | None:
    """A pool for the rerun check (services/ingest/reruns.py), or None when PostgreSQL
    does not answer: an ``--unbound`` run goes on without it, saying so (a ``--publisher``
    run was refused already by ``backfill_identity``)."""
    try:
        return await asyncpg.create_pool(
            settings.database_url.get_secret_value(), min_size=1, max_size=1, timeout=10
        )
    except CONNECT_ERRORS as exc:
        down = DatabaseDown(settings.database_url.get_secret_value(), exc)
        print(
            f"warning: {down}: events counted already under"
            " another identity cannot be looked up, and such an overlap would count twice",
            file=sys.stderr,
        )
        return None


async def _run_backfill(
    path: Path,
    batch_size: int,
    settings: IngestSettings,
    registry: UnitRegistry,
    identity: Identity,
    pool: asyncpg.Pool | None,
) -> int:
    tools = await backfill_tools(settings, registry, identity, pool)
    try:
        await tools.start()
    except (KafkaError, OSError, TimeoutError) as exc:
        print(
            f"stopped: the broker ({settings.kafka_bootstrap_servers}) did not answer"
            f" ({exc!r}); nothing was published: re-run the file once it answers",
            file=sys.stderr,
        )
        return 3
    try:
        # Bytes: parse_lines refuses a line that is not UTF-8 and goes on with the others.
        source = sys.stdin.buffer if str(path) == "-" else path.open("rb")
        with source:
            report = await backfill(
                source, tools.validator, tools.kafka, batch_size, tools.identity
            )
    finally:
        await tools.kafka.stop()
    for line in report.lines():
        print(line)
    if report.stopped is not None:
        what = "refused" if report.stopped_code == 2 else "stopped"
        print(f"{what}: {report.stopped}", file=sys.stderr)
        return report.stopped_code
    return 1 if report.refused else 0


@dataclasses.dataclass(frozen=True, slots=True)
class BackfillTools:
    """What publishing history takes: the validator, the publisher (signing as ingest
    does) and the identity with its rerun lookup; shared by ``backfill`` and
    ``dead-letters replay`` (services/deadletters/replay.py), so both publish alike."""

    validator: EventValidator
    kafka: KafkaPublisher
    identity: Identity
    settings: IngestSettings

    async def start(self) -> None:
        """The topics made if missing, and the producer started (raises what the broker
        raised: KafkaError, OSError, TimeoutError)."""
        await ensure_topics(self.settings)
        await self.kafka.start()


async def backfill_tools(
    settings: IngestSettings,
    registry: UnitRegistry,
    identity: Identity,
    pool: asyncpg.Pool | None,
) -> BackfillTools:
    """The backfill path for ``identity``, its producer not started yet."""
    if pool is not None:
        async with pool.acquire() as conn:
            names = [k.name for k in await list_keys(conn)]
            cutover = await find_cutover(conn)
        counted = CountedElsewhere(pool, identity.publisher, names, cutover)
        identity = dataclasses.replace(identity, counted=counted)
    contract = Contract.load(settings.schemas_dir)
    catalogue = KpiCatalogue.load(
        event_types=contract.event_types, schemas_dir=contract.schemas_dir
    )
    signer = record_signer(settings, contract, catalogue, registry)
    summarizer = Summarizer(catalogue) if signer is not None else None
    validator = backfill_validator(contract, registry, settings.clock_skew_s, summarizer)
    kafka = KafkaPublisher(settings, settings.produce_timeout_s, signer)
    return BackfillTools(validator, kafka, identity, settings)
