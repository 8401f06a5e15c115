"""No poison record: whatever a record holds, it is counted or dead-lettered with its
reason, and the valid records around it are counted (issue 14).

Each failure case asserts both halves: the bad record's dead letter names why, and every
valid record of the step is still prepared.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest
from aiokafka.errors import MessageSizeTooLargeError

from services.common.events import CloudEvent
from services.common.kpis import KpiCatalogue, KpiCount
from services.common.signing import RecordSigner
from services.metrics.agents import Counting
from services.metrics.decoding import RecordDecoder, Rejected
from services.metrics.pipeline import (
    DEAD_LETTER_MAX_BYTES,
    DeadLetter,
    Preparer,
    Record,
    reference_of,
)
from tests.unit.metrics.helpers import (
    as_bytes,
    catalogue,
    contract,
    counted_digests,
    decoder,
    digest,
    document,
    registry,
)
from tests.unit.metrics.test_signed_records import KEY, NOW
from tests.unit.metrics.test_summaries import ingest_records, worker_signer

TOPIC = "egov.documents"
UNIT = "01843"


def record(value: bytes | None, offset: int, headers: Sequence[tuple[str, bytes]] = ()) -> Record:
    return Record(TOPIC, 0, offset, b"19", value, tuple(headers), NOW.timestamp())


def valid(offset: int) -> Record:
    return record(as_bytes(document(UNIT, NOW, f"ok-{offset}")), offset)


def preparer(
    decoder_: RecordDecoder | None = None,
    catalogue_: KpiCatalogue | None = None,
    signer: RecordSigner | None = None,
) -> Preparer:
    return Preparer(
        decoder_ or decoder(),
        contract(),
        catalogue_ or catalogue(),
        timedelta(days=14),
        signer=signer,
    )


def headers_of(dead: DeadLetter) -> dict[str, bytes]:
    return dict(dead.headers)


class RaisingDecoder(RecordDecoder):
    """Raises ``error`` while decoding the record whose value is ``poison``."""

    def __init__(self, poison: bytes, error: BaseException) -> None:
        super().__init__(contract(), registry())
        self._poison, self._error = poison, error

    def elements(self, value: bytes | None) -> tuple[Any, bool] | Rejected:
        if value == self._poison:
            raise self._error
        return super().elements(value)


class RaisingCatalogue:
    """The real catalogue, except that counting the event ``boom`` raises."""

    def __init__(self, real: KpiCatalogue) -> None:
        self._real = real

    def counts(self, event: CloudEvent) -> tuple[KpiCount, ...]:
        if event.id == "boom":
            raise ZeroDivisionError("a bug met an event it did not expect")
        return self._real.counts(event)

    def counts_of_envelope(
        self, envelope: Mapping[str, Any], time: datetime
    ) -> tuple[KpiCount, ...]:
        return self.counts(CloudEvent.from_dict(envelope))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_a_record_that_raises_while_decoded_is_dead_lettered_naming_the_exception() -> None:
    poison = b'{"what": "a record a bug chokes on"}'
    p = preparer(RaisingDecoder(poison, ValueError("ordinal must be >= 1")))
    prepared = p.prepare([valid(0), record(poison, 1), valid(2)], NOW)
    (dead,) = prepared.dead_letters
    headers = headers_of(dead)
    assert dead.reason == "unprocessable" and dead.value == poison
    assert headers["dlq_detail"] == b"ValueError while decoding: ordinal must be >= 1"
    assert headers["dlq_source"] == f"{TOPIC}[0]@1".encode()
    assert counted_digests(prepared) == {digest("ok-0"), digest("ok-2")}
    assert prepared.batches[(TOPIC, 0)].next_offset == 3  # the offset moves past it


def test_a_batch_record_raising_midway_is_taken_back_whole_and_dead_lettered() -> None:
    """Its first element was already prepared when the second raised: that one is taken
    back (the record is dead-lettered whole, so counting it too would count it twice)."""
    batch = as_bytes(document(UNIT, NOW, "first"), document(UNIT, NOW, "boom"))
    p = preparer(catalogue_=RaisingCatalogue(catalogue()))  # type: ignore[arg-type]
    prepared = p.prepare([valid(0), record(batch, 1), valid(2)], NOW)
    (dead,) = prepared.dead_letters
    assert dead.reason == "unprocessable" and dead.value == batch
    assert b"ZeroDivisionError" in headers_of(dead)["dlq_detail"]
    assert counted_digests(prepared) == {digest("ok-0"), digest("ok-2")}


@pytest.mark.parametrize("error", [OSError("disk"), TimeoutError(), MemoryError()])
def test_what_is_not_the_records_fault_is_raised_not_dead_lettered(error: BaseException) -> None:
    poison = b'{"what": "anything"}'
    with pytest.raises(type(error)):
        preparer(RaisingDecoder(poison, error)).prepare([valid(0), record(poison, 1)], NOW)


def test_year_one_is_refused_by_the_contract_in_a_worker_too() -> None:
    """The record that crash-looped a worker: a valid-by-schema event dated year 1."""
    event = document(UNIT, NOW, "year-1") | {"time": "0001-01-01T00:00:00+14:00"}
    prepared = preparer().prepare([valid(0), record(as_bytes(event), 1), valid(2)], NOW)
    (dead,) = prepared.dead_letters
    assert dead.reason == "schema-violation"
    assert b"out of range: years 2000 to 2100" in headers_of(dead)["dlq_detail"]
    assert counted_digests(prepared) == {digest("ok-0"), digest("ok-2")}


def test_year_one_signed_and_backfilled_is_dead_lettered_not_a_crash() -> None:
    """Signed under the contract (an ingest bug, or a key that leaked) and backfilled, so
    neither the schema nor the grace stops it before the day arithmetic, which raises."""
    signer = RecordSigner(KEY, contract().fingerprint)
    value = as_bytes(document(UNIT, NOW, "year-1") | {"time": "0001-01-01T00:00:00+14:00"})
    headers: list[tuple[str, bytes]] = [("egov_backfill", b"1")]
    headers.append(signer.header(value, topic=TOPIC, key=b"19", headers=headers))
    prepared = preparer(signer=signer).prepare([valid(0), record(value, 1, headers), valid(2)], NOW)
    (dead,) = prepared.dead_letters
    assert dead.reason == "unprocessable" and dead.value == value
    assert b"ValueError" in headers_of(dead)["dlq_detail"]
    assert counted_digests(prepared) == {digest("ok-0"), digest("ok-2")}


def test_an_oversize_record_is_dead_lettered_as_a_reference() -> None:
    huge = b'{"padding": "' + b"x" * 2_000_000 + b'"}'
    prepared = preparer().prepare([valid(0), record(huge, 1, [("trace", b"t")]), valid(2)], NOW)
    (dead,) = prepared.dead_letters
    headers = headers_of(dead)
    assert dead.size < 10_000 < DEAD_LETTER_MAX_BYTES < len(huge)
    assert headers["dlq_reason"] == b"schema-violation" and headers["dlq_reference"] == b"1"
    assert headers["dlq_source"] == f"{TOPIC}[0]@1".encode()
    assert int(headers["dlq_size"]) > len(huge)
    body = orjson.loads(dead.value or b"")
    assert (body["topic"], body["partition"], body["offset"]) == (TOPIC, 0, 1)
    assert body["reference"] is True and body["reason"] == "schema-violation"
    assert body["size"] > len(huge) and body["detail"]
    assert dead.key == b"19"
    assert counted_digests(prepared) == {digest("ok-0"), digest("ok-2")}


def test_an_oversize_batch_element_is_a_reference_with_its_index() -> None:
    big = document(UNIT, NOW, "big") | {"x": "y" * 1_100_000}
    value = as_bytes(document(UNIT, NOW, "small"), big)
    prepared = preparer().prepare([record(value, 0)], NOW)
    (dead,) = prepared.dead_letters
    headers = headers_of(dead)
    assert headers["dlq_reference"] == b"1" and headers["dlq_batch_index"] == b"1"
    assert orjson.loads(dead.value or b"")["batch_index"] == 1
    assert counted_digests(prepared) == {digest("small")}


def test_a_reference_keeps_no_huge_key() -> None:
    dead = DeadLetter(b"k" * 5000, b"v", [], "malformed-json", TOPIC, 0, 7, "why")
    assert reference_of(dead).key is None
    assert reference_of(DeadLetter(b"19", b"v", [], "r", TOPIC)).key == b"19"


def test_a_dead_letter_the_broker_refuses_for_its_size_goes_as_a_reference() -> None:
    """The dead-letter topic's own max.message.bytes may be below the producer's limit."""
    sent: list[DeadLetter] = []

    async def send(dead: DeadLetter) -> None:
        if dead.size > 1000:
            raise MessageSizeTooLargeError()
        sent.append(dead)

    dead = DeadLetter(b"19", b"x" * 5000, [("dlq_reason", b"too-late")], "too-late", TOPIC, 2, 9)
    counting = Counting(preparer(), None, lambda: NOW, retry_delay_s=0.01)  # type: ignore[arg-type]
    asyncio.run(counting._dead_letter(send, dead))
    (reference,) = sent
    assert dict(reference.headers)["dlq_reference"] == b"1"
    assert orjson.loads(reference.value or b"")["offset"] == 9


def summarised(events: list[dict[str, Any]], summary: Callable[[Any], Any]) -> Record:
    """One packed record of ``events`` as ingest makes it, its summary rewritten by
    ``summary`` and MAC'd again with the real key (what only an ingest bug could send)."""
    (packed,) = ingest_records(events)
    signer = worker_signer()
    headers = dict(packed.headers)
    rewritten = orjson.dumps(summary(orjson.loads(headers["egov_summary"])))
    value = packed.value or b""
    new = [(k, v) for k, v in packed.headers if k not in ("egov_summary", "egov_summary_mac")]
    where = {"topic": TOPIC, "key": packed.key}
    macs = signer.summary_headers(value, rewritten, headers=new, **where)
    return Record(TOPIC, 0, 1, packed.key, value, (*new, *macs))


def _set(field: str, value: Any) -> Callable[[Any], Any]:
    def change(summary: Any) -> Any:
        summary[field] = value
        return summary

    return change


def _groups(position: int, value: Any) -> Callable[[Any], Any]:
    def change(summary: Any) -> Any:
        for group in summary["g"]:
            group[position] = value
        return summary

    return change


@pytest.mark.parametrize(
    "summary",
    [
        pytest.param(_set("y", 7), id="types-not-a-list"),
        pytest.param(_set("t", ["soon", "later"]), id="times-not-numbers"),
        pytest.param(_set("t", [-62135596800.0, -62135596800.0]), id="times-in-year-1"),
        pytest.param(_groups(3, -62135596800), id="bucket-in-year-1"),
        pytest.param(_groups(3, 253402300799), id="bucket-in-year-9999"),
        pytest.param(_set("c", ["no_such_kpi:1:1"]), id="unknown-kpi"),
        pytest.param(_set("c", ["document_signing:-5:1"]), id="negative-count"),
        pytest.param(_set("c", ["document_signing:9:1"]), id="numerator-above-denominator"),
        pytest.param(_set("c", ["document_signing:1"]), id="count-without-denominator"),
        pytest.param(_groups(5, 10**9), id="groups-claim-a-billion-events"),
        pytest.param(lambda s: "not an object", id="not-an-object"),
    ],
)
def test_a_summary_that_makes_no_sense_is_never_counted(summary: Callable[[Any], Any]) -> None:
    """Its MAC verifies (only a stolen key or an ingest bug could send it): the record is
    dead-lettered whole (issue 15, services/metrics/sanity.py), the records around it count."""
    events = [document(UNIT, NOW, "s1"), document(UNIT, NOW - timedelta(minutes=9), "s2")]
    bad = summarised(events, summary)
    prepared = preparer(signer=worker_signer()).prepare([valid(0), bad, valid(2)], NOW)
    (dead,) = prepared.dead_letters
    assert dead.reason == "summary-nonsense" and dead.value == bad.value
    assert headers_of(dead)["dlq_source"] == f"{TOPIC}[0]@1".encode()
    assert counted_digests(prepared) == {digest(i) for i in ("ok-0", "ok-2")}


def test_a_forged_summary_and_signature_are_ignored_and_the_events_judged() -> None:
    events = [document(UNIT, NOW, "f1"), document("99999", NOW, "f2")]  # f2: no such unit
    value = as_bytes(*events)
    forged = [
        ("egov_validated", b"0" * 64),
        ("egov_summary", b'{"y": [], "g": []}'),
        ("egov_summary_mac", b"f" * 64),
    ]
    prepared = preparer(signer=worker_signer()).prepare([record(value, 0, forged)], NOW)
    (dead,) = prepared.dead_letters
    assert dead.reason == "unit-unknown" and headers_of(dead)["dlq_batch_index"] == b"1"
    assert counted_digests(prepared) == {digest("f1")}


def test_null_headers_do_not_stop_a_record() -> None:
    value = as_bytes(document(UNIT, NOW, "n1"))
    nulls: Any = [("egov_validated", None), ("egov_summary", None), ("egov_summary_mac", None)]
    prepared = preparer(signer=worker_signer()).prepare([record(value, 0, nulls)], NOW)
    assert prepared.dead_letters == [] and counted_digests(prepared) == {digest("n1")}


def mutations(rng: random.Random) -> list[bytes]:
    """Hostile values: random bytes, truncated and bit-flipped JSON, odd years and sizes."""
    base = as_bytes(document(UNIT, NOW, "m"), document("01837", NOW, "m2"))
    out = [
        b"",
        rng.randbytes(rng.randrange(1, 300)),
        base[: rng.randrange(1, len(base))],
        b"[" * 2000 + b"]" * 2000,
        b'{"a":' * 500,
        orjson.dumps([[[[[[]]]]]]),
        "\ud800".encode("utf-8", "surrogatepass"),
        b'{"specversion": "1.0", "time": 1e400}',
    ]
    flipped = bytearray(base)
    for _ in range(rng.randrange(1, 8)):
        flipped[rng.randrange(len(flipped))] = rng.randrange(256)
    out.append(bytes(flipped))
    for year in ("0001", "1999", "2101", "9999"):
        event = document(UNIT, NOW, f"y{year}")
        event["time"] = f"{year}" + event["time"][4:]
        out.append(as_bytes(event))
    out.append(as_bytes(document(UNIT, NOW, "z" * 5000)))  # id beyond 128 characters
    out.append(as_bytes(document("00000", NOW, "unknown-unit")))
    return out


@pytest.mark.parametrize("seed", range(20))
def test_hostile_records_between_valid_ones_never_stop_the_step(seed: int) -> None:
    """Each hostile record is dead-lettered (or a valid element of it counted); every
    valid record around them is counted; nothing raises."""
    rng = random.Random(seed)
    hostile = mutations(rng)
    rng.shuffle(hostile)
    records: list[Record] = []
    for value in hostile:
        records.append(valid(len(records)))
        records.append(record(value, len(records)))
    records.append(valid(len(records)))
    for signer in (None, worker_signer()):
        prepared = preparer(signer=signer).prepare(records, NOW)
        valid_ids = {digest(f"ok-{r.offset}") for r in records if r.offset % 2 == 0}
        assert valid_ids <= counted_digests(prepared)
        sources = {headers_of(d)["dlq_source"] for d in prepared.dead_letters}
        bad = {f"{TOPIC}[0]@{r.offset}".encode() for r in records if r.offset % 2}
        # Every hostile record is dead-lettered, unless it was a valid event after all
        # (a bit flip that hit nothing the contract checks).
        assert bad - sources <= {f"{TOPIC}[0]@{r.offset}".encode() for r in records if _ok(r)}
        assert all(d.reason and headers_of(d)["dlq_detail"] for d in prepared.dead_letters)


def _ok(r: Record) -> bool:
    outcomes = decoder().decode_record(r.value)
    return any(not isinstance(o, Rejected) for o in outcomes)
