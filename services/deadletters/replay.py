"""``dead-letters replay``: a fixed cause's dead letters counted again, exactly once.

Each selected dead letter's events go through ``egov-pulse backfill``'s path
(services/ingest/keycli.py ``backfill_tools``): its validation, its ``egov_backfill: 1``
header (no grace: a dead letter waits for a person longer than the grace), its
signature, its rerun lookup, under the identity the events were first published with:
the dead letter's ``egov_publisher`` header as ``--publisher NAME``, none as
``--unbound``. That header is believed only where the worker would believe it
(services/deadletters/vouching.py): a letter naming a publisher without ingest's MAC,
``publisher-unsigned`` above all, is skipped unless the operator vouches for the name
(``--vouch-publisher NAME``). Their dedup keys are then those of the first delivery, which was never
counted (it was dead-lettered), and every later copy of it meets them: a second replay,
a second dead letter of the same record, the publisher's own resend (docs/ingest.md,
"Dead letters replayed").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import orjson
from aiokafka.errors import KafkaError

from services.common.contract import Contract
from services.common.kpis import KpiCatalogue
from services.common.signing import RecordSigner
from services.common.summaries import record_signer
from services.common.units import UnitRegistry
from services.deadletters.views import Shown
from services.deadletters.vouching import unvouched
from services.ingest.backfill import BackfillReport, Identity, backfill, check_chunk, parse_lines
from services.ingest.keycli import BackfillTools, backfill_identity, backfill_tools
from services.ingest.reruns import recount_notice
from services.ingest.settings import IngestSettings


@dataclass(slots=True)
class ReplayReport:
    """What a replay did, one line per dead letter, and the exit status it calls for."""

    lines: list[str] = field(default_factory=list)
    replayed: int = 0
    events: int = 0
    again: int = 0
    skipped: int = 0
    refused: int = 0
    code: int = 0
    """0 all replayed; 1 some events refused or dead letters skipped; 2 refused before a
    dead letter was published (identity, rerun under another identity); 3 broker."""

    def summary(self, dry_run: bool) -> Iterator[str]:
        yield from self.lines
        verb = "would replay" if dry_run else "replayed"
        yield (
            f"{verb} {self.events} events of {self.replayed} dead letters; skipped "
            f"{self.skipped} dead letters; refused {self.refused} events"
        )
        if self.again:
            yield recount_notice(self.again)

    def fail(self, code: int) -> None:
        self.code = max(self.code, code)


def plan(
    shown: list[Shown], signer: RecordSigner | None = None, vouched_for: str | None = None
) -> tuple[list[Shown], list[str]]:
    """The dead letters to publish, and a line for each one left out: a second dead
    letter of a record already taken (a worker that wrote it, then stopped before its
    position was stored, writes it again), one without events to replay, or one whose
    publisher is not believed (``unvouched``: ``signer``'s keys, the operator's
    ``vouched_for``). Pure."""
    taken: dict[tuple[str, int | None], str] = {}
    chosen: list[Shown] = []
    left: list[str] = []
    for item in shown:
        letter = item.letter
        if item.problem:
            left.append(f"skipped {letter.place} ({letter.source}): {item.problem}")
            continue
        try:
            letter.identity()
        except ValueError as exc:
            left.append(
                f"skipped {letter.place} ({letter.source}): {exc}: whose events they are is unknown"
            )
            continue
        doubt = unvouched(letter, signer, vouched_for)
        if doubt:
            left.append(f"skipped {letter.place} ({letter.source}, {letter.reason}): {doubt}")
            continue
        first = taken.setdefault(letter.same_record, letter.place)
        if first != letter.place:
            left.append(
                f"once: {letter.place} is a second dead letter of {letter.source}"
                f" (as {first}): replayed with it"
            )
            continue
        chosen.append(item)
    return chosen, left


async def replay(
    shown: list[Shown],
    settings: IngestSettings,
    registry: UnitRegistry,
    pool: asyncpg.Pool | None,
    dry_run: bool,
    vouched_for: str | None = None,
) -> ReplayReport:
    """Publish (or, ``dry_run``, validate) the selected dead letters' events; those naming
    ``vouched_for`` are believed to be its without a MAC (the operator's word)."""
    report = ReplayReport()
    chosen, left = plan(shown, _signer(settings, registry), vouched_for)
    report.lines += left
    report.skipped += sum(1 for line in left if line.startswith("skipped"))
    if report.skipped:
        report.fail(1)
    identities: dict[str, Identity] = {}
    for name in sorted({item.letter.identity() for item in chosen}):
        identity = await backfill_identity(settings, name or None, registry)
        if isinstance(identity, str):
            report.lines.append(f"refused: {identity}; nothing was replayed")
            report.fail(2)
            return report
        identities[name] = identity
    for name, identity in identities.items():
        mine = [item for item in chosen if item.letter.identity() == name]
        tools = await backfill_tools(settings, registry, identity, pool)
        if not await _replay_as(tools, mine, report, dry_run):
            return report
    return report


def _signer(settings: IngestSettings, registry: UnitRegistry) -> RecordSigner | None:
    """The workers' signer (services/common/summaries.py), to check ingest's MACs."""
    if not settings.signs_records:
        return None
    contract = Contract.load(settings.schemas_dir)
    catalogue = KpiCatalogue.load(
        event_types=contract.event_types, schemas_dir=contract.schemas_dir
    )
    return record_signer(settings, contract, catalogue, registry)


async def _replay_as(
    tools: BackfillTools, items: list[Shown], report: ReplayReport, dry_run: bool
) -> bool:
    """One identity's dead letters; False when the run must stop (broker, rerun)."""
    if dry_run:
        for item in items:
            _checked(tools, item, report)
        return True
    try:
        await tools.start()
    except (KafkaError, OSError, TimeoutError) as exc:
        report.lines.append(
            f"stopped: the broker ({tools.settings.kafka_bootstrap_servers}) did not answer"
            f" ({exc!r}); run the replay again once it answers (events count once)"
        )
        report.fail(3)
        return False
    try:
        for item in items:
            lines = [orjson.dumps(event) for event in item.events]
            done = await backfill(lines, tools.validator, tools.kafka, 500, tools.identity)
            _said(item, done, report, tools.identity.publisher)
            if done.stopped is not None:
                report.fail(done.stopped_code)
                return False
    finally:
        await tools.kafka.stop()
    return True


def _checked(tools: BackfillTools, item: Shown, report: ReplayReport) -> None:
    lines = list(parse_lines(orjson.dumps(e) for e in item.events))
    records, errors = check_chunk(tools.validator, lines, datetime.now(UTC), tools.identity)
    done = BackfillReport(published=len(records), refused=errors)
    _said(item, done, report, tools.identity.publisher, "would replay")


def _said(
    item: Shown, done: BackfillReport, report: ReplayReport, publisher: str, verb: str = "replayed"
) -> None:
    letter = item.letter
    whose = f"--publisher {publisher!r}" if publisher else "--unbound"
    ids = [str(e.get("id", "")) if isinstance(e, dict) else "" for e in item.events]
    for error in done.refused:
        event = ids[error.index - 1] if 0 < error.index <= len(ids) else "?"
        report.lines.append(
            f"refused {letter.place} ({letter.source}) event {event!r}: "
            f"{error.pointer or '/'}: {error.reason} [{error.code}]"
        )
    report.refused += len(done.refused)
    if done.refused:
        report.fail(1)
    if done.published:
        report.replayed += 1
        report.events += done.published
        report.again += done.again
        report.lines.append(
            f"{verb} {letter.place} ({letter.source}, {letter.reason}) as {whose}: "
            f"{done.published} events ({' '.join(i for i in ids if i)})"
        )
    if done.stopped is not None:
        report.lines.append(f"stopped at {letter.place}: {done.stopped}")
