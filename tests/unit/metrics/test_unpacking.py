"""A fetched batch aiokafka cannot unpack is dead-lettered by reference, the records
before it in the batch handed out, and the position moved past it (review 62); a worker
refuses to start without a codec a publisher may use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiokafka import codec
from aiokafka.consumer.fetcher import READ_COMMITTED
from aiokafka.record import default_records
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

from services.metrics import unpacking
from services.metrics.app import create_app
from services.metrics.pipeline import UNDECODABLE_BATCH, Preparer, Record
from services.metrics.settings import MetricsSettings
from tests.unit.metrics.helpers import (
    as_bytes,
    catalogue,
    contract,
    counted_digests,
    decoder,
    digest,
    document,
)

TP = TopicPartition("egov.documents", 2)


class _RawName(str):
    """A header name whose bytes are ``raw``, not UTF-8 (librdkafka and Go may send it)."""

    raw = b"trace\xff\xfe"

    def encode(self, *args: Any, **kwargs: Any) -> bytes:  # type: ignore[override]
        return self.raw


def _batch(base: int, values: list[bytes], bad_at: int | None = None) -> bytes:
    builder = default_records._DefaultRecordBatchBuilderPy(
        magic=2, compression_type=0, is_transactional=0, producer_id=-1,
        producer_epoch=-1, base_sequence=-1, batch_size=2**20,
    )  # fmt: skip
    for i, value in enumerate(values):
        headers = [(_RawName("x"), b"v")] if i == bad_at else []
        builder.append(i, timestamp=0, key=b"19", value=value, headers=headers)
    built = bytearray(builder.build())
    built[0:8] = base.to_bytes(8, "big")  # the batch's base offset, as the broker writes it
    return bytes(built)


def _read(*batches: bytes, fetch_offset: int = 0) -> list[Any]:
    records = MemoryRecords(b"".join(batches))
    unpacked = unpacking.TolerantPartitionRecords(
        TP, records, [], fetch_offset, None, None, False, READ_COMMITTED
    )
    return list(unpacked)


def test_a_record_whose_header_name_is_not_utf8_ends_its_batch_in_a_stand_in() -> None:
    good = _batch(0, [b"a", b"b"])
    bad = _batch(2, [b"c", b"d", b"e"], bad_at=1)
    after = _batch(5, [b"f"])
    read = _read(good, bad, after)
    # c (offset 2) is handed out; d and e become one stand-in at e's offset; f follows.
    assert [r.offset for r in read] == [0, 1, 2, 4, 5]
    assert [r.value for r in read] == [b"a", b"b", b"c", None, b"f"]
    ((name, detail),) = read[3].headers
    assert name == unpacking.UNDECODABLE
    assert detail.startswith(b"egov.documents[2] offsets 3..4: the record batch could not")
    assert b"UnicodeDecodeError" in detail


def test_a_batch_in_a_missing_codec_is_one_stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = bytearray(_batch(7, [b"x", b"y"]))
    # Attributes (int16 after the CRC): codec 4, zstd; its "compressed" bytes are not.
    attributes_at = 8 + 4 + 4 + 1 + 4
    batch[attributes_at : attributes_at + 2] = (4).to_bytes(2, "big")
    read = _read(bytes(batch), _batch(9, [b"z"]))
    assert [(r.offset, r.value) for r in read] == [(8, None), (9, b"z")]
    assert read[0].headers[0][1].startswith(b"egov.documents[2] offsets 7..8:")


def test_the_stand_in_is_dead_lettered_as_a_reference_and_moves_the_position() -> None:
    preparer = Preparer(decoder(), contract(), catalogue(), timedelta(days=7))
    now = datetime.now(UTC)
    detail = b"egov.documents[2] offsets 3..4: the record batch could not be unpacked (X)"
    records = [
        Record("egov.documents", 2, 2, b"19", as_bytes(document("01843", now, "ok")), ()),
        Record("egov.documents", 2, 4, None, None, ((unpacking.UNDECODABLE, detail),)),
    ]
    prepared = preparer.prepare(records, now)
    ((dead,),) = [prepared.dead_letters]
    assert dead.reason == UNDECODABLE_BATCH
    body = orjson.loads(dead.value or b"")
    assert (body["reference"], body["offset"], body["reason"]) == (True, 4, UNDECODABLE_BATCH)
    assert dict(dead.headers)["dlq_reference"] == b"1"
    (batch,) = prepared.batches.values()
    assert batch.next_offset == 5  # the next flush stores the position past the batch
    assert counted_digests(prepared) == {digest("ok")}  # the record before it counts


def test_a_worker_refuses_to_start_without_a_codec(monkeypatch: pytest.MonkeyPatch) -> None:
    assert unpacking.require_codecs() is None  # the dependencies give all four
    monkeypatch.setattr(codec, "has_lz4", lambda: False)
    with pytest.raises(unpacking.MissingCodec, match="decompress lz4 here"):
        create_app(MetricsSettings(metrics_app_id="unit-app-codecs"))
