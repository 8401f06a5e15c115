"""Records/s through aiokafka's PartitionRecords, plain and with the unpacking adapter
(services/metrics/unpacking.py): what reading every fetched batch through it costs
(0.08-0.10 µs a record, 2026-12-06: best of 7, 1.03 M against 0.93-0.95 M single-event
records/s).

    python -m bench.unpacking plain
    python -m bench.unpacking adapter

Alternate the two a few times: the machine's noise is larger than the difference.
"""

from __future__ import annotations

import sys
import time

import orjson
from aiokafka.consumer import fetcher
from aiokafka.consumer.fetcher import READ_COMMITTED
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

from services.metrics.unpacking import TolerantPartitionRecords

BATCHES, PER_BATCH = 200, 500
VALUE = orjson.dumps(
    {
        "specversion": "1.0",
        "id": "x",
        "source": "urn:bench",
        "type": "vn.egov.document.issued",
        "time": "2026-12-06T01:00:00+07:00",
        "data": {"unit": "01843"},
    }
)


def fetched() -> bytes:
    """A fetch's bytes: ``BATCHES`` batches of ``PER_BATCH`` single-event records."""
    chunks = []
    for b in range(BATCHES):
        builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 2**22)
        for i in range(PER_BATCH):
            builder.append(i, timestamp=0, key=b"19", value=VALUE, headers=[])
        built = bytearray(builder.build())
        built[0:8] = (b * PER_BATCH).to_bytes(8, "big")  # the base offset
        chunks.append(bytes(built))
    return b"".join(chunks)


def main(mode: str) -> None:
    data, tp = fetched(), TopicPartition("t", 0)
    kind = TolerantPartitionRecords if mode == "adapter" else fetcher.PartitionRecords
    best, n = 0.0, 0
    for _ in range(7):
        start = time.perf_counter()
        n = sum(1 for _ in kind(tp, MemoryRecords(data), [], 0, None, None, False, READ_COMMITTED))
        best = max(best, n / (time.perf_counter() - start))
    print(f"{mode}: {n} records, best of 7: {best:,.0f} records/s")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "adapter")
