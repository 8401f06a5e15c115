"""``egov-pulse backfill FILE``: history older than the counting grace, straight to Kafka.

An operator tool, run with the service's own settings: it validates each line exactly
as ingest does (contract, units at the event's time, no future beyond the clock skew)
but with no grace (``EGOV_COUNTING_GRACE_DAYS``), and publishes through the same
publisher (same topics, keys and headers) without an API key or rate limit. Refused
lines are reported, one message each, not published; valid ones are. Every record also
carries the header ``egov_backfill: 1`` (schemas/CONTRACT.md §5): the metrics workers
count such events in the day they happened however old they are, where a live event
beyond the grace is dead-lettered as too late, and keep their dedup keys for good.
Whose events they are is said on the command line, and decides their dedup identity
(services/common/summaries.py ``dedup_digest``): with ``--publisher NAME`` (an API key's
name) the records carry ``egov_publisher`` as ingest's do, so an event the publisher also
sent live counts once, whichever came first; with ``--unbound`` they carry none, and
meet only other unbound deliveries. Re-running a file with the identity it was run with is
harmless (its events count once), and recounts nothing: the report says how many events
were counted already, and that their figures keep the definitions they were counted under;
a run under the other identity stops at the first chunk holding events counted already
under the first (services/ingest/reruns.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from services.common.contract import Contract
from services.common.summaries import Summarizer
from services.common.tally import UNBOUND
from services.common.units import UnitRegistry
from services.ingest.problems import InvalidEvent
from services.ingest.publisher import BACKFILL_HEADER, KafkaPublisher, PublishError
from services.ingest.reruns import Counted, LookupFailed, recount_notice
from services.ingest.validation import EventValidator, Limits, Record


@dataclass(slots=True)
class BackfillReport:
    """What a backfill did: events published, and every refused line with its reason."""

    published: int = 0
    refused: list[InvalidEvent] = field(default_factory=list)
    stopped: str | None = None
    """Why the run stopped before the end of its file (services/ingest/reruns.py)."""
    stopped_code: int = 0
    """The exit code it stopped with: 2 refused (a rerun under the other identity), 3
    stopped (PostgreSQL did not answer the lookup: run it again from the line named)."""
    again: int = 0
    """Of ``published``, the events counted already under their own identity: the workers
    skip them (review 63: a re-run reported them as published and nothing else)."""

    def lines(self) -> Iterator[str]:
        for error in self.refused:
            yield f"line {error.index}: {error.pointer or '/'}: {error.reason} [{error.code}]"
        yield f"published {self.published} events; refused {len(self.refused_lines)} lines"
        if self.again:
            yield recount_notice(self.again)

    @property
    def refused_lines(self) -> set[int]:
        return {error.index for error in self.refused}


def _without_bom(line: str | bytes) -> str | bytes:
    if isinstance(line, bytes):
        return line.removeprefix(b"\xef\xbb\xbf")
    return line.removeprefix("\ufeff")


def backfill_validator(
    contract: Contract,
    registry: UnitRegistry,
    skew_s: float,
    summarizer: Summarizer | None = None,
) -> EventValidator:
    limits = Limits(timedelta(seconds=skew_s), horizon=None)
    return EventValidator(contract, registry, limits, summarizer)


def parse_lines(lines: Iterable[str | bytes]) -> Iterator[tuple[int, Any | InvalidEvent]]:
    """(line number from 1, event or the reason it is not JSON); blank lines skipped.

    The CLI hands the file's bytes: a line that is not UTF-8 is refused as such and the
    others go on (review 50: decoding the whole file as text stopped the run at it, with
    a traceback and no line named). A byte-order mark that Windows tools write before
    the first line is not part of it."""
    for number, raw in enumerate(lines, start=1):
        line = _without_bom(raw) if number == 1 else raw
        if not line.strip():
            continue
        try:
            yield number, orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield number, InvalidEvent(number, "", f"not valid JSON: {exc}", "malformed-json")


@dataclass(frozen=True, slots=True)
class Identity:
    """Whose events a backfill publishes: ``publisher`` as ingest binds it (``UNBOUND``:
    none), and the dedup cut-over before which events keep the unbound identity (services/
    ingest/validation.py ``identity_of``), as for live events."""

    publisher: str = UNBOUND
    unbound_before: datetime | None = None
    scope: Callable[[list[Record]], list[InvalidEvent]] | None = None
    """The publisher's key's scope (its sources, units and types, as ingest checks them):
    what it refuses of a line is refused, so that no event is bound to a publisher that
    could never have sent it live."""
    counted: Callable[[list[Record]], Awaitable[Counted | None]] | None = None
    """Looks a chunk's events up among those counted (services/ingest/reruns.py): one
    counted under another identity stops the run before the chunk is published; those
    counted under their own are published, and reported as not counted again."""


class RerunRefused(Exception):
    """A chunk holds events counted already under another identity: the run stops, the
    chunk unpublished (the message says which identity to re-run with)."""


def check_chunk(
    validator: EventValidator,
    chunk: list[tuple[int, Any | InvalidEvent]],
    now: datetime,
    identity: Identity = Identity(),
) -> tuple[list[Record], list[InvalidEvent]]:
    """Validate one chunk of lines; record and error indexes are line numbers."""
    records: list[Record] = []
    errors = [item for _, item in chunk if isinstance(item, InvalidEvent)]
    for number, item in chunk:
        if isinstance(item, InvalidEvent):
            continue
        found, problems = validator.check([item], now, identity.publisher, identity.unbound_before)
        mine = [_as_backfill(record, number) for record in found]
        # Only events that take the publisher's identity: those dated before the cut-over
        # stay unbound, as anyone's were then, and the key need not cover them.
        bound = [r for r in mine if r.publisher]
        outside = identity.scope(bound) if identity.scope is not None and bound else []
        records += [] if outside else mine
        errors += [InvalidEvent(number, e.pointer, e.reason, e.code) for e in problems]
        errors += outside
    return records, errors


def _as_backfill(record: Record, number: int) -> Record:
    """The record numbered by its line and marked as backfill (a new header list: the
    validator's lists are shared between records)."""
    return dataclasses.replace(record, index=number, headers=[*record.headers, BACKFILL_HEADER])


async def backfill(
    source: Iterable[str | bytes],
    validator: EventValidator,
    publisher: KafkaPublisher,
    batch_size: int,
    identity: Identity = Identity(),
) -> BackfillReport:
    """Publish every valid line of ``source`` in batches. The broker failing (PublishError),
    PostgreSQL not answering the rerun lookup, or a chunk holding events counted under
    another identity stops the run (``report.stopped``), with the report of what it did
    until then (review 50: a broker failure lost the refused lines already found)."""
    report = BackfillReport()
    chunk: list[tuple[int, Any | InvalidEvent]] = []
    try:
        for item in parse_lines(source):
            chunk.append(item)
            if len(chunk) >= batch_size:
                await _flush(chunk, validator, publisher, report, identity)
                chunk = []
        if chunk:
            await _flush(chunk, validator, publisher, report, identity)
    except RerunRefused as exc:
        report.stopped, report.stopped_code = str(exc), 2
    except PublishError as exc:
        report.stopped = f"{exc}; re-run the file (events already sent are counted once)"
        report.stopped_code = 3
    except LookupFailed as exc:
        first = min(n for n, _ in chunk)
        report.stopped = (
            f"{exc}: nothing from line {first} on was published; run the file again from "
            f"line {first} (tail -n +{first} FILE | egov-pulse backfill - ...) once it answers"
        )
        report.stopped_code = 3
    return report


async def _flush(
    chunk: list[tuple[int, Any | InvalidEvent]],
    validator: EventValidator,
    publisher: KafkaPublisher,
    report: BackfillReport,
    identity: Identity,
) -> None:
    now = datetime.now(UTC)
    records, errors = check_chunk(validator, chunk, now, identity)
    found = await identity.counted(records) if records and identity.counted else None
    if found is not None and found.elsewhere:
        raise RerunRefused(found.message(identity.publisher, min(n for n, _ in chunk)))
    report.refused += errors
    if records:
        await publisher.publish(records, now)
        report.published += len(records)
        report.again += len(found.again) if found is not None else 0
