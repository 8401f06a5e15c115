"""A refused record with no record of its type beside it in its partition: a canary says
whether the database takes its type there (services/metrics/refusals.py ``_canary``).

Until 2026-12-04 such a record was held, and its partition with it, until the next
record of its type came: for a type rare in its partition (a meeting a week, a
resolution among receipts) the partition's counting stopped for that long, and past
``MAX_HELD`` records the worker crashed on every restart. Now the record's canary, its
event with identities of its own (event id, source, dossier id, the dossier a copy of
the refused one's ledger row), is flushed alone and rolled back: if it counts, the
record is dead-lettered and its partition goes on; if the database refuses the canary
too, the partition is held as before (tests/integration/metrics/test_store_refusals.py,
and test_review7_canaries.py for updates, figures and units the canary must try).

Same set-up as test_store_refusals.py: real PostgreSQL, a trigger on the ledger raising
SQLSTATE class 22 for chosen dossiers."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
import pytest

from services.common.headers import BACKFILL_HEADER
from services.metrics import refusals
from services.metrics.pipeline import Record
from tests.integration.metrics.test_review3_nul_bytes import received
from tests.integration.metrics.test_review4_refusals import (
    UNIT,
    counting_on,
    offsets_of,
    where,
)
from tests.integration.metrics.test_review5_refusals import packed, resolution, summarising
from tests.integration.metrics.test_store_refusals import (
    REFUSE,
    TOPIC,
    Sent,
    counted_ids,
    execute,
    fetch,
    keys,
    record,
)
from tests.unit.metrics.helpers import contract, province_key
from tests.unit.metrics.test_future_and_failures import preparer

pytestmark = pytest.mark.integration


async def daily_rows(database_url: str) -> int:
    return (await fetch(database_url, "SELECT count(*) AS n FROM kpi_daily"))[0]["n"]


async def test_a_refused_record_alone_is_dead_lettered_at_once_and_leaves_no_trace(
    database_url: str, pool: asyncpg.Pool
) -> None:
    await execute(database_url, REFUSE.format(pattern="R-%"))
    work = await counting_on(pool, [(TOPIC, 0)])
    sent = Sent()
    await work.step([record(0, 0, "R-0")], sent)
    await work.drain()
    assert where(sent) == [(0, 0, "store-refused")]
    assert "value out of range for dossier R-0" in sent.letters[0].detail
    assert await offsets_of(database_url, TOPIC) == {0: 1}  # not held: it moved past it
    assert work.state.metrics.held._value.get() == 0
    # Nothing of the canary stays: no key, no ledger row, no figure.
    assert await keys(database_url) == 0
    assert await counted_ids(database_url) == []
    assert await daily_rows(database_url) == 0
    await work.step([record(0, 1, "H-1")], sent)
    await work.drain()
    assert await counted_ids(database_url) == ["H-1"]
    assert await keys(database_url) == 1
    assert await offsets_of(database_url, TOPIC) == {0: 2}
    assert len(sent.letters) == 1


async def test_a_refused_record_of_a_type_rare_in_its_partition_holds_nothing_after_it(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """A resolution among receipts: the receipts say nothing of resolutions, so before
    the canaries the partition was held from the resolution on, the receipts after it
    uncounted, until another resolution came."""
    await execute(database_url, REFUSE.format(pattern="R-%"))
    work = await counting_on(pool, [(TOPIC, 0)])
    sent = Sent()
    records = [
        record(0, 0, "H-0"),
        Record(TOPIC, 0, 1, b"19", resolution("R-9", "ev-res-R-9")),
        record(0, 2, "H-2"),
        record(0, 3, "H-3"),
    ]
    await work.step(records, sent)
    await work.drain()
    assert where(sent) == [(0, 1, "store-refused")]
    assert await counted_ids(database_url) == ["H-0", "H-2", "H-3"]
    assert await keys(database_url) == 3
    assert await offsets_of(database_url, TOPIC) == {0: 4}
    assert work.state.metrics.held._value.get() == 0


async def test_the_events_of_ingest_s_record_refused_whole_are_vouched_for_by_canaries(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """Every event of a summarised record refused, nothing else of its type in the
    flush: the canary carries the record's headers (acceptance time, publisher), and
    each event is dead-lettered alone, with its index."""
    await execute(database_url, REFUSE.format(pattern="R-%"))
    work = await counting_on(pool, [(TOPIC, 0)], prep=summarising())
    sent = Sent()
    both = packed(0, received("ev-R-0", "R-0"), received("ev-R-1", "R-1"))
    await work.step([both], sent)
    await work.drain()
    assert where(sent) == [(0, 0, "store-refused"), (0, 0, "store-refused")]
    indexes = [dict(d.headers)["dlq_batch_index"] for d in sent.letters]
    assert indexes == [b"0", b"1"]
    assert [orjson.loads(d.value or b"")["id"] for d in sent.letters] == ["ev-R-0", "ev-R-1"]
    assert await offsets_of(database_url, TOPIC) == {0: 1}
    assert await keys(database_url) == 0
    assert work.state.metrics.held._value.get() == 0


async def test_a_canary_of_a_backfilled_record_is_backfilled_too(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """A backfilled event is counted however old: its canary, at the same old time,
    must be counted too, or an old refused record would hold its partition."""
    await execute(database_url, REFUSE.format(pattern="R-%"))
    work = await counting_on(pool, [(TOPIC, 0)])
    sent = Sent()
    event = received("ev-R-0", "R-0")
    event["time"] = (datetime.now(UTC) - timedelta(days=400)).isoformat()
    old = Record(TOPIC, 0, 0, b"19", orjson.dumps(event), (BACKFILL_HEADER,))
    await work.step([old], sent)
    await work.drain()
    assert where(sent) == [(0, 0, "store-refused")]
    assert await offsets_of(database_url, TOPIC) == {0: 1}
    assert work.state.metrics.held._value.get() == 0


async def test_every_dossier_refused_still_holds_and_dead_letters_nothing(
    database_url: str, pool: asyncpg.Pool
) -> None:
    """The canary's dossier is refused too: the database refuses more than the record
    (a defect of ours), so nothing is dead-lettered, and once it takes dossiers again
    the held record counts."""
    await execute(database_url, REFUSE.format(pattern="%"))
    work = await counting_on(pool, [(TOPIC, 0)])
    sent = Sent()
    await work.step([record(0, 0, "H-0")], sent)
    await work.drain()
    assert sent.letters == []
    assert await offsets_of(database_url, TOPIC) == {0: 0}
    assert work.state.metrics.held._value.get() == 1
    await execute(database_url, "DROP TRIGGER refuse_dossier ON dossier_state")
    await work.step([record(0, 1, "H-1")], sent)
    await work.drain()
    assert sent.letters == []
    assert await counted_ids(database_url) == ["H-0", "H-1"]
    assert await offsets_of(database_url, TOPIC) == {0: 2}


@pytest.mark.parametrize("event_type", sorted(contract().event_types))
def test_a_canary_is_counted_for_every_example_of_every_type(event_type: str) -> None:
    """Whatever valid event is refused, its canary is that event with identities of its
    own and counts as its type: each valid example of the contract taken as the refused
    event (backfilled, so that the examples' old times count)."""
    prep = preparer()
    now = datetime.now(UTC)
    for path, example in contract().examples(event_type, "valid"):
        event = copy.deepcopy(example)
        value = orjson.dumps(event)
        refused = Record(TOPIC, 0, 7, province_key(value), value, (BACKFILL_HEADER,), 1.5)
        item = refusals._Item(refused, now)
        assert refusals._item_types(item, prep) == {((TOPIC, 0), event_type)}, path.name
        made = refusals._canary(item)
        assert made is not None, path.name
        canary, clones = made
        assert canary.record.headers == (BACKFILL_HEADER,)
        assert (canary.record.offset, canary.record.timestamp) == (7, 1.5)
        copied = orjson.loads(canary.record.value or b"")
        assert copied["source"] == refusals.CANARY_SOURCE
        assert copied["id"] != event["id"] and copied["id"].startswith("canary-")
        data = event["data"]
        if "dossier_id" in data:
            assert copied["data"]["dossier_id"] == copied["id"]
            assert clones == [refusals.DossierClone((TOPIC, 0), data["dossier_id"], copied["id"])]
            data = data | {"dossier_id": copied["id"]}
        else:
            assert clones == []
        assert copied == event | {"id": copied["id"], "source": copied["source"], "data": data}
        assert refusals._item_types(canary, prep) == {((TOPIC, 0), event_type)}, path.name


def test_a_canary_is_made_of_one_event_only() -> None:
    now = datetime.now(UTC)
    event = received("ev-R-0", "R-0")
    for value in (b"{not json", b"[]", orjson.dumps([event, event]), b"17", b'"text"'):
        item = refusals._Item(Record(TOPIC, 0, 0, b"19", value), now)
        assert refusals._canary(item) is None, value
    one = refusals._Item(Record(TOPIC, 0, 0, b"19", orjson.dumps([event])), now)
    made = refusals._canary(one)
    assert made is not None
    assert orjson.loads(made[0].record.value or b"")["data"]["procedure_code"] == "1.001612"
    assert UNIT  # the unit the receipts above are published for


def test_a_dossier_id_postgresql_cannot_hold_is_not_looked_up_for_a_clone() -> None:
    """The clone's lookup would send the refused id itself, which PostgreSQL refuses when
    it cannot hold it (a NUL, as until 2026-12-04; a lone surrogate): the canary would
    then be refused for the record's own value, and never vouch. Such an id has no row:
    no clone is made."""
    now = datetime.now(UTC)
    event = received("ev-R-0", "R-0")
    event["data"]["dossier_id"] = "R\x00-0"
    item = refusals._Item(Record(TOPIC, 0, 0, b"19", orjson.dumps(event)), now)
    made = refusals._canary(item)
    assert made is not None and made[1] == []
    assert not refusals._storable("R-\ud800") and refusals._storable("Hồ sơ R-1")
    plain = refusals._Item(Record(TOPIC, 0, 0, b"19", orjson.dumps(received("e", "R-1"))), now)
    made = refusals._canary(plain)
    assert made is not None and [c.dossier_id for c in made[1]] == ["R-1"]
