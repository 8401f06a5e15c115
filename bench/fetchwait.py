"""How late a caught-up consumer gets a record, by fetch wait: tansu against Apache Kafka.

A record is produced every 0.2 s to a consumer that has caught up; the figure is the
time from the producer's acknowledgement to the consumer having the record. Apache
Kafka answers a waiting fetch as soon as a record arrives; tansu answered ~0.5 s late
with Faust's 1,500 ms wait, which is why the workers wait 100 ms
(``EGOV_METRICS_FETCH_MAX_WAIT_MS``, docs/metrics.md). Runs on the run's broker
(``BENCH_BROKER``), so the report has both.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.common import Row, broker_name, check_mode, embedded_broker, row

WAITS_MS = (1500, 100)
PROBES = {"quick": 15, "full": 60}
GAP_S = 0.2


async def _latencies(bootstrap: str, wait_ms: int, probes: int) -> list[float]:
    topic = f"bench.fetchwait.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, fetch_max_wait_ms=wait_ms,
        auto_offset_reset="earliest", enable_auto_commit=False,
    )  # fmt: skip
    await producer.start()
    await consumer.start()
    # Assigned, not subscribed: a subscription may look the new topic up before it exists
    # and wait minutes for the next metadata refresh.
    consumer.assign([TopicPartition(topic, 0)])
    acked: dict[bytes, float] = {}
    arrived: dict[bytes, float] = {}

    async def read() -> None:
        # Arrivals are kept by value and matched with the acks at the end: on Apache Kafka
        # a probe is often read before its producer has seen the ack (the fetch returns
        # as the record lands), and matching on arrival dropped those probes: the reader
        # then waited for probes that had come already and timed out.
        while len(arrived) < probes:
            batch = await consumer.getmany(timeout_ms=5000)
            now = time.monotonic()
            for records in batch.values():
                arrived.update(
                    (r.value, now) for r in records if r.value and r.value[:6] == b"probe-"
                )

    try:
        await producer.send_and_wait(topic, b"warm-up")
        await consumer.getone()  # caught up: the next fetch waits for a record
        reader = asyncio.create_task(read())
        await asyncio.sleep(0.5)
        for i in range(probes):
            value = f"probe-{i}".encode()
            await producer.send_and_wait(topic, value)
            acked[value] = time.monotonic()
            await asyncio.sleep(GAP_S)
        await asyncio.wait_for(reader, 30)
    finally:
        await consumer.stop()
        await producer.stop()
    # A probe read before its ack came back to the producer counts as 0.
    return [max(0.0, arrived[value] - at) for value, at in acked.items()]


def run(mode: str) -> list[Row]:
    check_mode(mode)
    rows = []
    with embedded_broker() as broker:
        for wait_ms in WAITS_MS:
            lags = asyncio.run(_latencies(broker.bootstrap_servers, wait_ms, PROBES[mode]))
            rows.append(
                row(
                    "fetch wait",
                    f"ack -> caught-up consumer, fetch wait {wait_ms} ms (p50)",
                    round(statistics.median(lags) * 1000, 1),
                    "ms",
                    notes=f"{broker_name()}; {len(lags)} probes, one every {GAP_S} s; "
                    f"max {max(lags) * 1000:.1f} ms; read before its ack: "
                    f"{sum(lag == 0 for lag in lags)}",
                )
            )
    return rows
