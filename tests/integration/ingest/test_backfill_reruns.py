"""A backfill refuses a file whose events were counted under the other dedup identity
(services/ingest/reruns.py): re-run ``--publisher`` after ``--unbound`` (or the other way
round), or ``--unbound`` over events the live stream counted as a publisher's, it stops
before publishing the chunk that holds them, naming the identity to re-run with; the
worker's figures stay as they were.

The first run is counted by a worker's own pieces (``Preparer``, ``PartitionState``) on a
real, migrated PostgreSQL, which stores its dedup keys where the second run looks; the
second run is the CLI's ``backfill`` with a publisher that records what it is handed.
Units: thị trấn Nông Cống (16279, Thanh Hóa 38)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest

from services.common.tally import UNBOUND
from services.ingest.backfill import Identity, backfill, backfill_validator
from services.ingest.publisher import PublishError
from services.ingest.reruns import CountedElsewhere
from services.ingest.validation import Record as IngestRecord
from services.metrics.periods import Periods
from tests.integration.metrics.test_review13_exactly_once import state_of
from tests.integration.test_review23_backfill_and_silence import (
    HAPPENED,
    PUBLISHER,
    Topic,
    count,
    event,
    stored,
)
from tests.unit.metrics.helpers import contract, registry

pytestmark = pytest.mark.integration


ANOTHER = "vnpt-ioffice-38"
"""Another integrating system's key name, never the one these events were counted as."""


class Captured:
    """A KafkaPublisher stand-in: what the run hands to Kafka."""

    def __init__(self) -> None:
        self.records: list[IngestRecord] = []

    async def publish(self, records: Sequence[IngestRecord], now: datetime) -> None:
        self.records += records


def lines(events: list[dict[str, Any]]) -> io.StringIO:
    return io.StringIO("".join(orjson.dumps(e).decode() + "\n" for e in events))


async def second_run(
    pool: asyncpg.Pool,
    events: list[dict[str, Any]],
    mine: str,
    cutover: datetime | None = None,
    batch_size: int = 500,
) -> tuple[Captured, Any]:
    """The CLI's backfill of ``events`` as ``mine`` (``UNBOUND``: ``--unbound``), with the
    rerun check the CLI gives it."""
    counted = CountedElsewhere(pool, mine, [PUBLISHER, ANOTHER], cutover)
    return await backfilled(events, Identity(mine, cutover, counted=counted), batch_size)


async def backfilled(
    events: list[dict[str, Any]], identity: Identity, batch_size: int = 500
) -> tuple[Captured, Any]:
    """``events`` through the CLI's backfill with ``identity``, captured unpublished."""
    validator = backfill_validator(contract(), registry(), 300.0, None)
    captured = Captured()
    report = await backfill(lines(events), validator, captured, batch_size, identity)  # type: ignore[arg-type]
    return captured, report


async def first_run(pool: asyncpg.Pool, events: list[dict[str, Any]], identity: Identity) -> None:
    now = datetime.now(UTC)
    worker = state_of(pool, "a")
    await worker.assign([("egov.documents", 0)], Periods.at(now))
    await count(worker, Topic("summary").backfill(events, now, identity), now, "summary")
    assert await stored(pool) == len(events)


@pytest.mark.parametrize(
    ("first", "then", "named"),
    [
        (UNBOUND, PUBLISHER, "--unbound"),
        (PUBLISHER, UNBOUND, f"--publisher {PUBLISHER!r}"),
    ],
)
async def test_a_rerun_under_the_other_identity_is_refused_before_it_publishes(
    pool: asyncpg.Pool, first: str, then: str, named: str
) -> None:
    events = [event(f"r{i}", HAPPENED + timedelta(minutes=i)) for i in range(3)]
    await first_run(pool, events, Identity(first))
    captured, report = await second_run(pool, events, then)
    assert captured.records == []  # nothing of the chunk went to Kafka
    assert report.stopped is not None and named in report.stopped
    assert f"({named}: lines 1, 2, 3)" in report.stopped
    assert "Nothing from line 1 on was published" in report.stopped
    assert report.stopped_code == 2
    assert await stored(pool) == 3  # counted once, as before


async def test_a_rerun_under_the_same_identity_goes_on(pool: asyncpg.Pool) -> None:
    """The same identity is the dedup's to handle: published again, counted once."""
    events = [event(f"s{i}", HAPPENED + timedelta(minutes=i)) for i in range(3)]
    await first_run(pool, events, Identity(PUBLISHER))
    captured, report = await second_run(pool, events, PUBLISHER)
    assert report.stopped is None and len(captured.records) == 3


async def test_an_unbound_run_over_events_counted_live_as_a_publishers_is_refused(
    pool: asyncpg.Pool,
) -> None:
    """The live stream counted them as tdoffice-38's: an ``--unbound`` run would count
    them again; it is told to run ``--publisher tdoffice-38``. The chunk before them,
    events nobody counted, was published."""
    now = datetime.now(UTC)
    live = [event(f"l{i}", HAPPENED + timedelta(minutes=i)) for i in range(2)]
    worker = state_of(pool, "a")
    await worker.assign([("egov.documents", 0)], Periods.at(now))
    await count(worker, Topic("summary").ingest(live, now), now, "summary")
    fresh = [event(f"n{i}", HAPPENED - timedelta(hours=1, minutes=i)) for i in range(2)]
    captured, report = await second_run(pool, [*fresh, *live], UNBOUND, batch_size=2)
    assert [r.index for r in captured.records] == [1, 2]  # the first chunk only
    assert report.stopped is not None and f"--publisher {PUBLISHER!r}" in report.stopped
    assert f"(--publisher {PUBLISHER!r}: lines 3, 4)" in report.stopped
    assert "lines 1 to 2 were published by this run as --unbound" in report.stopped
    assert "tail -n +3 FILE" in report.stopped


async def test_events_before_the_cutover_keep_one_identity_and_are_not_refused(
    pool: asyncpg.Pool,
) -> None:
    """Dated before the dedup cut-over, an event is unbound in either run: the same
    identity, so a ``--publisher`` rerun of an ``--unbound`` file goes on for them."""
    events = [event(f"c{i}", HAPPENED + timedelta(minutes=i)) for i in range(2)]
    await first_run(pool, events, Identity(UNBOUND))
    cutover = HAPPENED + timedelta(days=1)  # the cut-over came after these events
    captured, report = await second_run(pool, events, PUBLISHER, cutover)
    assert report.stopped is None and len(captured.records) == 2
    assert all(not r.publisher for r in captured.records)


class FailsOnSecondChunk(Captured):
    """The broker stops answering after the first chunk."""

    async def publish(self, records: Sequence[IngestRecord], now: datetime) -> None:
        if self.records:
            raise PublishError("the broker did not acknowledge (test)")
        await super().publish(records, now)


async def test_a_broker_failing_mid_run_keeps_the_report_of_what_was_done() -> None:
    """Review 50: a PublishError escaped ``backfill``; the CLI printed only "stopped", not
    the lines already refused nor how many events went out."""
    good = [event(f"pub-{i}", HAPPENED) for i in range(4)]
    source = io.StringIO(
        orjson.dumps(good[0]).decode() + "\nnot json\n"
        + "".join(orjson.dumps(e).decode() + "\n" for e in good[1:])
    )  # fmt: skip
    validator = backfill_validator(contract(), registry(), 300.0, None)
    failing = FailsOnSecondChunk()
    report = await backfill(source, validator, failing, 2, Identity())  # type: ignore[arg-type]
    assert report.stopped_code == 3
    assert report.stopped is not None and "re-run the file" in report.stopped
    assert report.published == 1 == len(failing.records)  # the first chunk went out
    assert [e.index for e in report.refused] == [2]  # and its refused line is reported
    assert "line 2:" in "\n".join(report.lines())
