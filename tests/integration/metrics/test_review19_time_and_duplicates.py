"""Review 19: event time against arrival time, late and duplicate events, Vietnam time.

Each test makes its records with ingest's own code (``EventValidator`` at the shared
grace, ``pack``, ``published_by``, ``signed`` with the acceptance stamp) or backfill's
(``check_chunk``), and counts them with the worker's own pieces (``Preparer`` with the
record signer, ``PartitionState``, ``store``) on a real, migrated PostgreSQL, with the
clock given by the test where days must pass. Its one defect, fixed since (a strict xfail
first): a live and a backfilled delivery of one event counted twice, as backfill could
only publish unbound; ``egov-pulse backfill --publisher NAME`` now binds them.

Units are real: thị trấn Nông Cống (16279) of huyện Nông Cống (404), Thanh Hóa (38).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest

from services.common.headers import accepted_header
from services.common.summaries import Summarizer
from services.common.tally import UNBOUND
from services.ingest.backfill import Identity, check_chunk
from services.ingest.publisher import pack, published_by, signed
from services.ingest.validation import EventValidator, Limits
from services.metrics import store
from services.metrics.figures import TopicPartition
from services.metrics.periods import VN_TZ, Periods
from services.metrics.pipeline import PartitionState, Prepared, Preparer, Record
from tests.integration.metrics.test_review13_exactly_once import state_of
from tests.unit.metrics.helpers import catalogue, contract, decoder, document, registry
from tests.unit.metrics.test_summaries import worker_signer

pytestmark = pytest.mark.integration

DOCS: TopicPartition = ("egov.documents", 0)
TOWN, DISTRICT, PROVINCE = "16279", "404", "38"  # Nông Cống town, district, Thanh Hóa
KPI = "document_signing"
GRACE = timedelta(days=14)
SKEW = timedelta(seconds=300)
PUBLISHER = "tdoffice-38"


class Topic:
    """One partition of egov.documents: records get the next offsets as they are made."""

    def __init__(self) -> None:
        self.next = 0

    def records(self, made: Sequence[Any]) -> list[Record]:
        out = []
        for r in made:
            out.append(Record(*DOCS, self.next, r.key, r.value, tuple(r.headers)))
            self.next += 1
        return out

    def ingest(
        self, events: list[dict[str, Any]], accepted: datetime, publisher: str = PUBLISHER
    ) -> list[Record]:
        """What ingest publishes for one request accepted (202) at ``accepted``."""
        limits = Limits(SKEW, horizon=GRACE)
        validator = EventValidator(contract(), registry(), limits, Summarizer(catalogue()))
        made, errors = validator.check(events, accepted, publisher)
        assert errors == [], errors
        return self.records(signed(published_by(pack(made)), worker_signer(), stamp(accepted)))

    def backfill(
        self, events: list[dict[str, Any]], now: datetime, publisher: str = UNBOUND
    ) -> list[Record]:
        """What ``egov-pulse backfill`` publishes for a file holding ``events`` (``--unbound``,
        or ``--publisher`` when ``publisher`` is given)."""
        validator = EventValidator(
            contract(), registry(), Limits(SKEW, horizon=None), Summarizer(catalogue())
        )
        numbered = list(enumerate(events, start=1))
        made, errors = check_chunk(validator, numbered, now, Identity(publisher))
        assert errors == [], errors
        return self.records(signed(published_by(pack(made)), worker_signer(), stamp(now)))


def stamp(at: datetime) -> tuple[str, bytes]:
    return accepted_header(at)


def prepare(records: Sequence[Record], now: datetime) -> Prepared:
    preparer = Preparer(decoder(), contract(), catalogue(), GRACE, SKEW, worker_signer())
    return preparer.prepare(list(records), now)


async def count(state: PartitionState, records: Sequence[Record], now: datetime) -> Prepared:
    """Read ``records`` at ``now`` and flush them; nothing may be dead-lettered."""
    prepared = prepare(records, now)
    assert prepared.dead_letters == [], [d.headers for d in prepared.dead_letters]
    assert prepared.too_late == []
    await state.flush(list(prepared.batches.values()), Periods.at(now))
    return prepared


async def stored(pool: asyncpg.Pool, unit: str = TOWN) -> dict[date, int]:
    """The stored denominators of the KPI of ``unit``, by Vietnam day."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT day, sum(denominator)::int AS d FROM kpi_daily"
            " WHERE unit = $1 AND kpi = $2 GROUP BY day ORDER BY day",
            unit,
            KPI,
        )
    return {r["day"]: r["d"] for r in rows}


def window(state: PartitionState, name: str, now: datetime, unit: str = TOWN) -> int:
    figure = state.figures.window(name, Periods.at(now)).get((unit, KPI))
    return 0 if figure is None else figure.denominator


def written(at: datetime, offset: str, extra_digits: str = "") -> str:
    """``at`` in RFC 3339 with the UTC offset ``offset`` ("Z", "z", "+07:00", ...) and
    microseconds, ``extra_digits`` added beyond them (the contract takes nine)."""
    hours, minutes = (0, 0) if offset in "Zz" else map(int, offset[1:].split(":"))
    sign = -1 if offset.startswith("-") else 1
    tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    text = at.astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S.%f") + extra_digits
    return text + offset


def event(event_id: str, time: str, unit: str = TOWN) -> dict[str, Any]:
    e = document(unit, datetime.now(UTC), event_id)
    e["time"] = time
    return e


# --- the edge of the grace ------------------------------------------------------------

ACCEPTED = datetime(2026, 11, 20, 9, 41, 27, 654_321, tzinfo=UTC)
EDGE = ACCEPTED - GRACE  # exactly at ingest's horizon, to the microsecond


@pytest.mark.parametrize(
    ("offset", "extra"),
    [("Z", ""), ("z", "999"), ("+00:00", ""), ("+07:00", "987"), ("-12:00", ""), ("+14:00", "")],
)
async def test_an_event_at_the_horizon_counts_in_its_vietnam_day_however_late_it_is_read(
    pool: asyncpg.Pool, offset: str, extra: str
) -> None:
    """Accepted (202) at exactly the 14-day horizon, whatever offset and fraction its time
    is written with: read 30 days later (a worker down, a backlog), it is neither too late
    nor dead-lettered, and counts once in the Vietnam day it happened, for the town, its
    2025 province, and again as a duplicate after a restart it adds nothing."""
    topic = Topic()
    records = topic.ingest([event("edge", written(EDGE, offset, extra))], ACCEPTED)
    read = ACCEPTED + timedelta(days=30)
    worker = state_of(pool, "a")
    await worker.assign([DOCS], Periods.at(read))
    prepared = await count(worker, records, read)
    assert prepared.paths.get("summary", 0) + prepared.paths.get("signed", 0) == 1
    day = EDGE.astimezone(VN_TZ).date()
    assert await stored(pool) == {day: 1}
    assert await stored(pool, PROVINCE) == {day: 1}
    # The same event again from the same publisher, after a restart, counts nothing.
    again = topic.ingest([event("edge", written(EDGE, "+07:00"))], ACCEPTED)
    restarted = state_of(pool, "b")
    await restarted.assign([DOCS], Periods.at(read))
    await count(restarted, again, read + timedelta(minutes=1))
    assert await stored(pool) == {day: 1}


async def test_a_millisecond_past_the_horizon_is_refused_and_goes_through_backfill(
    pool: asyncpg.Pool,
) -> None:
    late = EDGE - timedelta(milliseconds=1)
    validator = EventValidator(contract(), registry(), Limits(SKEW, GRACE))
    made, errors = validator.check([event("past", written(late, "+07:00"))], ACCEPTED, PUBLISHER)
    assert made == []
    ((index, pointer, code, reason),) = [(e.index, e.pointer, e.code, e.reason) for e in errors]
    assert (index, pointer, code) == (0, "/time", "time-beyond-horizon")
    assert "egov-pulse backfill" in reason and (ACCEPTED - GRACE).isoformat() in reason
    # The operator backfills it: counted in its day, however long after.
    read = ACCEPTED + timedelta(days=40)
    topic = Topic()
    worker = state_of(pool, "a")
    await worker.assign([DOCS], Periods.at(read))
    await count(worker, topic.backfill([event("past", written(late, "Z"))], ACCEPTED), read)
    assert await stored(pool) == {late.astimezone(VN_TZ).date(): 1}


# --- Vietnam's midnight, month and year -----------------------------------------------

NEW_YEAR = datetime(2025, 1, 1, 0, 10, tzinfo=VN_TZ)  # 2024-12-31T17:10:00Z


async def test_new_year_in_vietnam_time_splits_days_months_years_and_buckets(
    pool: asyncpg.Pool,
) -> None:
    """At 00:10 on 1 January 2025 in Vietnam (17:10 UTC the day before): events up to
    16:59:59.999Z / 23:59:59.999999999+07:00 are 31 December 2024 (December, 2024), from
    17:00:00Z / 00:00+07:00 on 1 January 2025; the current day, month and year hold only
    the latter, before and after a restart; no 5-minute bucket spans the two days."""
    times = {
        "a": "2024-12-31T16:59:59.999Z",
        "b": "2024-12-31T17:00:00Z",
        "c": "2024-12-31T23:59:59+07:00",
        "d": "2025-01-01T00:00:00+07:00",
        "e": "2024-12-31T23:59:59.999999999+07:00",
        "f": "2025-01-01T06:59:59+14:00",  # 16:59:59Z: still the 31st in Vietnam
        "g": "2024-12-31t17:00:00.000000001z",
    }
    topic = Topic()
    records = topic.ingest([event(i, t) for i, t in times.items()], NEW_YEAR)
    worker = state_of(pool, "a")
    await worker.assign([DOCS], Periods.at(NEW_YEAR))
    await count(worker, records, NEW_YEAR)
    counted = {date(2024, 12, 31): 4, date(2025, 1, 1): 3}
    for unit in (TOWN, DISTRICT, PROVINCE):  # three levels in 2024's hierarchy
        assert await stored(pool, unit) == counted
    for state in (worker, None):
        if state is None:  # a restart loads the same from the stored rows
            state = state_of(pool, "b")
            await state.assign([DOCS], Periods.at(NEW_YEAR))
        assert [window(state, w, NEW_YEAR) for w in ("day", "month", "year")] == [3, 3, 3]
        assert state.figures.totals()[(TOWN, KPI)].denominator == 7
    async with pool.acquire() as conn:
        buckets = await conn.fetch(
            "SELECT bucket_start, denominator FROM kpi_buckets"
            " WHERE unit = $1 AND kpi = $2 ORDER BY 1",
            TOWN,
            KPI,
        )
    midnight = int(datetime(2025, 1, 1, tzinfo=VN_TZ).timestamp())
    assert [(r["bucket_start"] - midnight, r["denominator"]) for r in buckets] == [
        (-300, 4),
        (0, 3),
    ]
    # At 23:59:59 on 31 January the month still holds them; at 00:00 on 1 February not.
    end_of_month = datetime(2025, 1, 31, 23, 59, 59, tzinfo=VN_TZ)
    assert window(worker, "month", end_of_month) == 3
    assert window(worker, "month", end_of_month + timedelta(seconds=1)) == 0
    assert window(worker, "year", end_of_month + timedelta(seconds=1)) == 3


# --- duplicates -----------------------------------------------------------------------


async def test_one_event_counts_once_per_publisher_through_retries_restarts_and_pruning(
    pool: asyncpg.Pool,
) -> None:
    """The same (source, id): twice in one batch, again in a second request, again after
    a restart, and again at the very edge of the horizon, read after pruning 22 days on
    (the longest a record waits: the grace plus the broker's retention): once. A second
    publisher's event of the same (source, id) is its own (docs/ingest.md), once too."""
    happened = datetime(2026, 10, 1, 8, 0, tzinfo=VN_TZ)
    same = event("dup", happened.isoformat())
    topic = Topic()
    a = state_of(pool, "a")
    now = happened + timedelta(hours=1)
    await a.assign([DOCS], Periods.at(now))
    await count(a, topic.ingest([same, same], now), now)
    await count(a, topic.ingest([same], now + timedelta(minutes=1)), now + timedelta(minutes=1))
    assert await stored(pool) == {happened.date(): 1}
    b = state_of(pool, "b")
    later = now + timedelta(days=2)
    await b.assign([DOCS], Periods.at(later))
    await count(b, topic.ingest([same], later), later)
    assert await stored(pool) == {happened.date(): 1}
    # A retry accepted at exactly the horizon that waited 8 days in the broker.
    edge = happened + GRACE
    read = edge + store.BACKLOG_BOUND
    async with pool.acquire() as conn:
        await store.prune(conn, Periods.at(read), GRACE)
    await b.assign([DOCS], Periods.at(read))
    await count(b, topic.ingest([same], edge), read)
    assert await stored(pool) == {happened.date(): 1}
    await count(b, topic.ingest([same], read - timedelta(days=8), "other-system"), read)
    assert await stored(pool) == {happened.date(): 2}


@pytest.mark.parametrize("first", ["live", "backfill"])
async def test_a_live_and_a_backfilled_delivery_of_one_event_count_once(
    pool: asyncpg.Pool, first: str
) -> None:
    happened = datetime(2026, 11, 30, 10, 0, tzinfo=VN_TZ)
    same = event("both-ways", happened.isoformat())
    now = happened + timedelta(days=2)
    topic = Topic()
    # Bound to the publisher that sent it live: `egov-pulse backfill --publisher NAME`
    # (until 2026-12-05 backfill could only publish unbound, and this counted twice).
    live, backfilled = topic.ingest([same], now), topic.backfill([same], now, PUBLISHER)
    worker = state_of(pool, "a")
    await worker.assign([DOCS], Periods.at(now))
    for records in (live, backfilled) if first == "live" else (backfilled, live):
        await count(worker, records, now + timedelta(minutes=5))
    assert await stored(pool) == {happened.date(): 1}


def test_the_backfill_identity_is_unbound_unless_a_publisher_is_named() -> None:
    """``--unbound`` records name no publisher, and so never meet a live delivery."""
    topic = Topic()
    (record,) = topic.backfill([event("x", ACCEPTED.isoformat())], ACCEPTED)
    assert "egov_publisher" not in dict(record.headers)
    (bound,) = topic.backfill([event("x", ACCEPTED.isoformat())], ACCEPTED, PUBLISHER)
    assert dict(bound.headers)["egov_publisher"] == PUBLISHER.encode()
    assert "egov_publisher" in dict(
        topic.ingest([event("x", ACCEPTED.isoformat())], ACCEPTED)[0].headers
    )
