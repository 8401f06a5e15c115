"""Events keyed by something else than their province are published again keyed by it.

schemas/CONTRACT.md, section 5: a record's key is the province its events' units roll up
to at their time. Counted where they landed, a mis-keyed integrator's events split a
province's figures between workers (review 71); services/metrics/rekeying.py moves them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from services.common.headers import BACKFILL_HEADER
from services.common.signing import RecordSigner
from services.metrics.pipeline import Preparer, Record
from tests.unit.metrics.helpers import as_bytes, catalogue, contract, decoder, document

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
TOPIC = "egov.documents"
THAI_NGUYEN, THANH_HOA = "01843", "16342"  # communes of provinces 19 and 38 (since 2025)


def preparer(signer: RecordSigner | None = None) -> Preparer:
    return Preparer(decoder(), contract(), catalogue(), timedelta(days=7), signer=signer)


def counted_units(prepared: object) -> list[str]:
    return sorted(
        e.units[0]
        for b in prepared.batches.values()  # type: ignore[attr-defined]
        for e in b.event_views()
    )


def test_a_record_keyed_by_its_province_is_counted_where_it_is() -> None:
    value = as_bytes(document(THAI_NGUYEN, NOW, "e1"))
    prepared = preparer().prepare([Record(TOPIC, 2, 7, b"19", value)], NOW)
    assert prepared.forwards == []
    assert counted_units(prepared) == [THAI_NGUYEN]


def test_a_single_event_keyed_otherwise_is_sent_again_as_it_was_published() -> None:
    value = orjson.dumps(document(THAI_NGUYEN, NOW, "e1"))
    for key in (None, b"", b"01843", b"38", b"\xff"):
        headers = (BACKFILL_HEADER, ("egov_accepted_ms", b"1763866800000"))
        record = Record(TOPIC, 2, 7, key, value, headers, 1763866800.5)
        prepared = preparer().prepare([record], NOW)
        assert counted_units(prepared) == [] and prepared.dead_letters == []
        (moved,) = prepared.forwards
        assert (moved.topic, moved.key, moved.value, moved.timestamp) == (
            TOPIC, b"19", value, 1763866800.5,
        )  # fmt: skip
        assert moved.headers == headers and moved.events == 1
        assert (moved.source, moved.had_key) == (f"{TOPIC}[2]@7", key)
        # Where it arrives, keyed by its province, it counts.
        again = preparer().prepare([Record(TOPIC, 0, 0, moved.key, moved.value,
                                           moved.headers, moved.timestamp)], NOW)  # fmt: skip
        assert again.forwards == [] and counted_units(again) == [THAI_NGUYEN]


def test_a_batch_of_two_provinces_keeps_its_own_and_sends_the_others_in_order() -> None:
    events = [
        document(THAI_NGUYEN, NOW, "a"),
        document(THANH_HOA, NOW, "b"),
        document(THANH_HOA, NOW - timedelta(minutes=1), "c"),
        document(THAI_NGUYEN, NOW, "d"),
    ]
    prepared = preparer().prepare([Record(TOPIC, 0, 3, b"19", as_bytes(*events))], NOW)
    assert counted_units(prepared) == [THAI_NGUYEN, THAI_NGUYEN]
    (moved,) = prepared.forwards
    assert moved.key == b"38" and moved.events == 2
    assert [e["id"] for e in orjson.loads(moved.value)] == ["b", "c"]


def test_invalid_events_are_dead_lettered_where_they_are_not_moved() -> None:
    bad = document(THAI_NGUYEN, NOW, "bad")
    bad["unit"] = "99999"  # no such unit
    late = document(THAI_NGUYEN, NOW - timedelta(days=30), "late")
    prepared = preparer().prepare([Record(TOPIC, 0, 0, b"38", as_bytes(bad, late))], NOW)
    assert prepared.forwards == []
    assert sorted(d.reason for d in prepared.dead_letters) == ["too-late", "unit-unknown"]


def test_a_record_ingest_signed_is_trusted_with_its_key() -> None:
    # Its MAC covers the key ingest set; a key changed on the way fails the MAC and the
    # record is validated in full, and moved, like any other.
    signer = RecordSigner(b"k" * 32, contract().fingerprint)
    value = as_bytes(document(THAI_NGUYEN, NOW, "e1"))
    signed = (signer.header(value, headers=[], topic=TOPIC, key=b"19"),)
    kept = preparer(signer).prepare([Record(TOPIC, 0, 0, b"19", value, signed)], NOW)
    assert kept.forwards == [] and counted_units(kept) == [THAI_NGUYEN]
    changed = preparer(signer).prepare([Record(TOPIC, 0, 0, b"38", value, signed)], NOW)
    assert [f.key for f in changed.forwards] == [b"19"] and counted_units(changed) == []


def test_a_record_that_raises_takes_back_its_moves() -> None:
    good = as_bytes(document(THANH_HOA, NOW, "g"))
    # A run of plain records: the second is not JSON and goes alone to the dead letters;
    # the first's move is kept once, not twice.
    records = [Record(TOPIC, 0, 0, b"19", good), Record(TOPIC, 0, 1, b"19", b"{not json")]
    prepared = preparer().prepare(records, NOW)
    assert [f.source for f in prepared.forwards] == [f"{TOPIC}[0]@0"]
    assert [d.offset for d in prepared.dead_letters] == [1]


def test_a_large_batch_is_cut_into_records_the_producer_takes() -> None:
    from services.metrics.rekeying import FORWARD_MAX_BYTES

    events = [document(THAI_NGUYEN, NOW, f"n{i}") for i in range(3000)]
    value = as_bytes(*events)
    assert len(value) > FORWARD_MAX_BYTES
    prepared = preparer().prepare([Record(TOPIC, 0, 0, b"38", value)], NOW)
    assert len(prepared.forwards) >= 2
    assert all(len(f.value) <= FORWARD_MAX_BYTES for f in prepared.forwards)
    ids = [e["id"] for f in prepared.forwards for e in orjson.loads(f.value)]
    assert ids == [e["id"] for e in events]  # all of them, in order
    assert sum(f.events for f in prepared.forwards) == len(events)


def test_a_record_keyed_right_on_another_partition_is_moved_too() -> None:
    # librdkafka hashes keys with CRC32 by default, Kafka's default (ingest's, aiokafka's,
    # Java's) is murmur2: "19" keyed right can land where the worker owning 19 is not.
    from services.metrics.rekeying import partition_of

    value = as_bytes(document(THAI_NGUYEN, NOW, "e1"))
    home = partition_of(b"19", 6)
    elsewhere = (home + 1) % 6
    p = preparer()
    p.partition_counts = {TOPIC: 6}
    kept = p.prepare([Record(TOPIC, home, 0, b"19", value)], NOW)
    assert kept.forwards == [] and counted_units(kept) == [THAI_NGUYEN]
    moved = p.prepare([Record(TOPIC, elsewhere, 0, b"19", value)], NOW)
    assert [(f.key, f.value) for f in moved.forwards] == [(b"19", value)]
    assert counted_units(moved) == []
    # The count unknown (a consumer not started), the partition is not judged.
    p.partition_counts = {}
    assert p.prepare([Record(TOPIC, elsewhere, 0, b"19", value)], NOW).forwards == []
