"""Review of 2469b9f/9a8bc21: records published straight to Kafka (no headers, one event per
message or a batch) take the Preparer's one loop instead of ``decode_record`` and ``_add``.

The claim is "same checks in the same order, the same reasons and details". The reference
here is the path those commits replaced, kept verbatim in ``ReferencePreparer`` (the parent
of 2469b9f: ``decode_record``, the clock-skew check, then ``_add``), run on the same records
as the Preparer: every dead letter (reason, detail, bytes, headers), every counted event and
every too-late type must be equal, for valid events, events broken one attribute at a time,
arbitrary JSON and arbitrary bytes, alone or among valid records.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.dossierfacts import fact_of
from services.common.headers import publisher_header, publisher_of
from services.common.signing import RecordSigner
from services.common.tally import event_digest, group_key
from services.metrics.decoding import Counted, Rejected, element_bytes
from services.metrics.pipeline import (
    BACKFILL_HEADER,
    Prepared,
    Preparer,
    Record,
    dead_letter,
)
from services.metrics.tally import PartitionBatch
from tests.unit.common.test_contract import JSON, MUTATED
from tests.unit.metrics.helpers import (
    catalogue,
    contract,
    decoder,
    document,
    envelope,
    province_key,
)

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
KEY = b"k" * 32
TOPIC = "egov.documents"


class ReferencePreparer(Preparer):
    """The Preparer as it decided a record no ingest vouches for before 2469b9f: record by
    record (no run of such records in one loop, ``Preparer._prepare_plain``)."""

    def _prepare_plain(
        self,
        out: Prepared,
        batch: PartitionBatch,
        run: Sequence[Record],
        now_s: float,
        grace_s: float,
    ) -> None:
        for one in run:
            self._prepare_one(out, batch, one, now_s, grace_s)

    def _prepare_record(
        self,
        out: Prepared,
        batch: PartitionBatch,
        record: Record,
        now_s: float,
        too_late_before: float,
    ) -> None:
        backfill = BACKFILL_HEADER in record.headers
        publisher = publisher_of(record.headers)  # ValueError: unprocessable, as before
        out.paths["validated"] = out.paths.get("validated", 0) + 1
        future_after = now_s + self._clock_skew.total_seconds()
        for outcome in self._decoder.decode_record(record.value):
            if isinstance(outcome, Rejected):
                out.dead_letters.append(dead_letter(record, outcome))
                continue
            if outcome.event.time.timestamp() > future_after:
                skew = self._clock_skew.total_seconds()
                detail = (
                    f"event time {outcome.event.time.isoformat()} is more than {skew:.0f} s ahead"
                )
                rejected = Rejected("time-in-future", detail, *_element(outcome))
                out.dead_letters.append(dead_letter(record, rejected))
                continue
            self._old_add(out, batch, record, outcome, too_late_before, backfill, publisher)

    def _old_add(
        self,
        out: Prepared,
        batch: PartitionBatch,
        record: Record,
        counted: Counted,
        too_late_before: float,
        backfill: bool,
        publisher: str,
    ) -> None:
        event = counted.event
        epoch = event.time.timestamp()
        if epoch < too_late_before and not backfill:
            out.too_late.append(event.type)
            detail = self._too_late(event.time, too_late_before)
            out.dead_letters.append(
                dead_letter(record, Rejected("too-late", detail, *_element(counted)))
            )
            return
        resolution = counted.resolution
        units = counted.units
        if units is None:
            units = tuple(unit.code for unit in resolution.chain)
        key = group_key(
            event.type, units, resolution.via_crosswalk, self._catalogue.counts(event), epoch
        )
        digest = event_digest(event.source, event.type, event.id, event.data, publisher)
        builder = batch.builder(backfill, self._families)
        builder.add(key, epoch, digest, fact_of(event.type, event.data))


def _element(counted: Counted) -> tuple[int | None, bytes | None]:
    if counted.index is None:
        return None, None
    return counted.index, element_bytes(counted.element)


def preparers(signed: bool) -> tuple[Preparer, Preparer]:
    signer = RecordSigner(KEY, contract().fingerprint) if signed else None
    args = (contract(), catalogue(), timedelta(days=7))
    return (
        Preparer(decoder(), *args, signer=signer),
        ReferencePreparer(decoder(), *args, signer=signer),
    )


def record(
    value: bytes | None,
    offset: int,
    timestamp: float | None = None,
    headers: tuple[tuple[str, bytes], ...] = (),
) -> Record:
    return Record(TOPIC, 0, offset, province_key(value), value, headers, timestamp)


def outcome(prepared: Prepared) -> dict[str, Any]:
    return {
        "dead": [
            (d.key, d.value, tuple(d.headers), d.reason, d.detail, d.topic, d.offset)
            for d in prepared.dead_letters
        ],
        "counted": [(tp, e) for tp, batch in prepared.batches.items() for e in batch.event_views()],
        "too_late": prepared.too_late,
        "next": {tp: b.next_offset for tp, b in prepared.batches.items()},
        "paths": prepared.paths,
        "ingest_times": prepared.ingest_times,
    }


def decided(preparer: Any, records: list[Record]) -> dict[str, Any]:
    """``outcome`` of ``records``, the events counted in any order and partition: with
    the Preparer, those it publishes again keyed by their province (a batch of several
    provinces' events keyed by one, services/metrics/rekeying.py) counted where they
    arrive, as that partition's worker reads them."""
    prepared = preparer.prepare(records, NOW)
    forwards = getattr(prepared, "forwards", [])
    moved = [
        Record(f.topic, 1, i, f.key, f.value, f.headers, f.timestamp)
        for i, f in enumerate(forwards)
    ]
    again = preparer.prepare(moved, NOW)
    assert getattr(again, "forwards", []) == [] and again.dead_letters == []
    result = outcome(prepared)
    events = [e for _, e in result["counted"]] + [e for _, e in outcome(again)["counted"]]
    result["counted"] = sorted(events, key=repr)
    return result


def assert_same(values: list[bytes | None], timestamps: list[float | None] | None = None) -> None:
    """The Preparer decides ``values`` (one record each) exactly as the reference does."""
    stamps = timestamps or [None] * len(values)
    records = [record(v, i, t) for i, (v, t) in enumerate(zip(values, stamps, strict=True))]
    for signed in (False, True):
        fast, reference = preparers(signed)
        assert decided(fast, records) == decided(reference, records)


def valid(event_id: str = "ok", unit: str = "01843") -> dict[str, Any]:
    return document(unit, NOW - timedelta(hours=1), event_id)


def dumps(value: object) -> bytes:
    return orjson.dumps(value)


# Named poison records, each between two valid events.
POISON: dict[str, bytes | None] = {
    "tombstone": None,
    "empty": b"",
    "not json": b"{not json",
    "truncated": dumps(valid())[:-3],
    "non-utf-8": b'{"id": "\xff\xfe"}',
    "lone surrogate": b'{"id": "\\ud800"}',
    "json string": b'"hello"',
    "json number": b"17",
    "json null": b"null",
    "json true": b"true",
    "empty array": b"[]",
    "array of nulls": b"[null, null]",
    "array of arrays": b"[[1], []]",
    "nested empty array": b"[[]]",
    "huge integer": b"123456789012345678901234567890",
    "huge float": b"1e400",
    "event with huge int": dumps(valid() | {"id": 2**64 - 1}),
    "data with a huge number": dumps(valid()).replace(b'"electronic":true', b'"electronic":1e300'),
    "NUL in id": dumps(valid() | {"id": "a\x00b"}),
    "NUL in unit": dumps(valid() | {"unit": "01843\x00"}),
    "NUL in source": dumps(valid() | {"source": "urn:\x00"}),
    "NUL in time": dumps(valid() | {"time": "2026-11-23T02:00:00\x00Z"}),
    "unknown type": dumps(valid() | {"type": "vn.egov.document.received"}),
    "type of wrong type": dumps(valid() | {"type": 7}),
    "missing id": dumps({k: v for k, v in valid().items() if k != "id"}),
    "missing time": dumps({k: v for k, v in valid().items() if k != "time"}),
    "missing unit": dumps({k: v for k, v in valid().items() if k != "unit"}),
    "missing data": dumps({k: v for k, v in valid().items() if k != "data"}),
    "unit a number": dumps(valid() | {"unit": 1843}),
    "unit a list": dumps(valid() | {"unit": ["01843"]}),
    "unit a dict": dumps(valid() | {"unit": {"a": 1}}),
    "time a number": dumps(valid() | {"time": 1700000000}),
    "time without offset": dumps(valid() | {"time": "2026-11-23T02:00:00"}),
    "time February 30": dumps(valid() | {"time": "2026-02-30T02:00:00Z"}),
    "time leap second": dumps(valid() | {"time": "2026-06-30T23:59:60Z"}),
    "time 1999": dumps(valid() | {"time": "1999-12-31T23:59:59Z"}),
    "time 2101": dumps(valid() | {"time": "2101-01-01T00:00:00Z"}),
    "time earliest": dumps(valid() | {"time": "2000-01-01T00:00:00+14:00"}),
    "time latest": dumps(valid() | {"time": "2100-12-31T23:59:59.999999-12:00"}),
    "time far ahead": dumps(valid() | {"time": "2030-01-01T00:00:00Z"}),
    "time just ahead": dumps(document("01843", NOW + timedelta(seconds=301), "ahead")),
    "time within skew": dumps(document("01843", NOW + timedelta(seconds=299), "skew")),
    "time too late": dumps(document("01843", NOW - timedelta(days=9), "late")),
    "unknown unit": dumps(valid(unit="99999")),
    "old hierarchy unit": dumps(document("06", NOW - timedelta(hours=1), "old")),
    "old unit before reform": dumps(document("06", datetime(2024, 3, 1, tzinfo=UTC), "o")),
    "extra attribute": dumps(valid() | {"x_unknown": 1}),
    "data a list": dumps(valid() | {"data": [1]}),
    "data null": dumps(valid() | {"data": None}),
    "deep nesting": b'{"data":' + b"[" * 600 + b"]" * 600 + b"}",
    "batch deep nesting": b"[" + dumps(valid()) + b"," + b"[" * 600 + b"]" * 600 + b"]",
    "batch with one bad": dumps([valid("b1"), valid() | {"unit": 1}, valid("b3")]),
    "batch with one ahead": dumps([valid("b4"), document("01843", NOW + timedelta(days=1))]),
    "batch with one too late": dumps([valid("b5"), document("19", NOW - timedelta(days=30))]),
    "duplicate ids in one batch": dumps([valid("dup"), valid("dup")]),
}


@pytest.mark.parametrize("name", list(POISON))
def test_each_poison_record_is_decided_as_before_and_its_neighbours_count(name: str) -> None:
    values = [dumps(valid("before")), POISON[name], dumps(valid("after"))]
    assert_same(values)
    fast, _ = preparers(False)
    prepared = fast.prepare([record(v, i) for i, v in enumerate(values)], NOW)
    ids = {d.offset for d in prepared.dead_letters}
    assert ids <= {1}, "only the poison record is dead-lettered"
    counted = prepared.batches[(TOPIC, 0)].event_views()
    assert len(counted) >= 2  # the events before and after it


def test_a_duplicate_id_across_records_is_one_key_each_time() -> None:
    """Duplicates are the store's to judge: both lanes hand it the same two digests."""
    assert_same([dumps(valid("dup")), dumps(valid("dup"))])


@pytest.mark.parametrize("accepted_days_ago", [0.0, 6.9, 7.1, 30.0])
def test_the_grace_is_counted_from_the_kafka_timestamp_as_before(
    accepted_days_ago: float,
) -> None:
    old = document("01843", NOW - timedelta(days=8), "old")
    stamp = (NOW - timedelta(days=accepted_days_ago)).timestamp()
    assert_same([dumps(old), dumps([old, valid("x")])], [stamp, stamp])


UNITS = st.sampled_from(["01843", "01837", "19", "06", "99999", "38", "16342", "01", "1"])
TYPES = st.sampled_from(sorted(contract().event_types))
OFFSETS_S = st.sampled_from(
    [-40 * 86400, -9 * 86400, -86400, -60, 0, 299, 301, 3600, 5 * 365 * 86400]
)


@st.composite
def events(draw: st.DrawFn) -> object:
    kind = draw(st.sampled_from(["valid", "valid", "mutated", "json", "old era"]))
    if kind == "mutated":
        return draw(MUTATED)
    if kind == "json":
        return draw(JSON)
    when = NOW + timedelta(seconds=draw(OFFSETS_S))
    if kind == "old era":
        when = datetime(2024, draw(st.integers(1, 12)), 1, tzinfo=UTC)
    event = envelope(draw(TYPES), draw(UNITS), when, f"e{draw(st.integers(0, 5))}")
    data = event["data"]
    if "dossier_id" in data:
        data["dossier_id"] = draw(st.sampled_from(["H1", "H2"]))
    for name in ("electronic", "signed", "classified", "paperless"):
        if name in data:
            data[name] = draw(st.booleans())
    return event


@st.composite
def record_values(draw: st.DrawFn) -> bytes | None:
    shape = draw(st.sampled_from(["single", "single", "batch", "bytes", "none"]))
    if shape == "none":
        return None
    if shape == "bytes":
        return draw(st.binary(max_size=40))
    if shape == "single":
        return orjson.dumps(draw(events()))
    return orjson.dumps(draw(st.lists(events(), min_size=0, max_size=4)))


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.lists(record_values(), min_size=1, max_size=5),
    st.lists(st.sampled_from([None, 0.0, -8 * 86400.0, -30 * 86400.0]), min_size=5, max_size=5),
)
def test_the_one_loop_decides_every_record_as_decode_record_did(
    values: list[bytes | None], ages: list[float | None]
) -> None:
    stamps = [None if a is None else NOW.timestamp() + a for a in ages[: len(values)]]
    assert_same(values, stamps)


HEADERS = [
    pytest.param((("traceparent", b"00-abc-01"),), id="a trace header"),
    pytest.param((BACKFILL_HEADER,), id="backfill"),
    pytest.param((publisher_header("motcua"),), id="a publisher"),
    pytest.param((publisher_header("motcua"), BACKFILL_HEADER), id="publisher and backfill"),
    pytest.param((("egov_publisher", b""),), id="a publisher naming nothing"),
    pytest.param((("egov_publisher", b"\xff"),), id="a publisher not UTF-8"),
    pytest.param((("egov_validated", b"f" * 64),), id="a forged signature"),
]


@pytest.mark.parametrize("headers", HEADERS)
@pytest.mark.parametrize("name", ["time too late", "batch with one bad", "not json", "tombstone"])
def test_a_record_with_headers_but_no_summary_is_decided_as_before(
    headers: tuple[tuple[str, bytes], ...], name: str
) -> None:
    """Without a signer (no summary can verify) every such record is validated."""
    values = [dumps(valid("before")), POISON[name], dumps(valid("after"))]
    records = [record(v, i, None, headers) for i, v in enumerate(values)]
    fast = Preparer(decoder(), contract(), catalogue(), timedelta(days=7))
    reference = ReferencePreparer(decoder(), contract(), catalogue(), timedelta(days=7))
    assert outcome(fast.prepare(records, NOW)) == outcome(reference.prepare(records, NOW))
