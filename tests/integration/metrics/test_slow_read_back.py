"""A read-back that does not answer in time is no verdict, on tansu as on Kafka.

At assignment a worker reads back the record before its stored position
(services/metrics/logcheck.py). On tansu, whose ListOffsets answers its last batch's
base offset, the end offset was not used at all: a read-back slower than ``READ_BACK_S``
was taken for a replaced log, and the partition counted again from offset 0, so records
whose dedup keys had been pruned counted twice. tansu's end is below the true end, still
a bound: a record before it is in the log, and not hearing it is retried.
"""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from services.common.kafka import ensure_topics
from services.common.settings import CommonSettings
from services.metrics import logcheck
from services.metrics.logcheck import Inconclusive, LogCheck, Stored

pytestmark = pytest.mark.integration


async def test_a_read_back_that_does_not_answer_below_the_end_is_retried(
    common_settings: CommonSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    await ensure_topics(common_settings)
    topic = common_settings.topic_for_family("documents")
    producer = AIOKafkaProducer(bootstrap_servers=common_settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for batch in range(5):  # several batches: tansu's end is the last one's base
            for i in range(20):
                await producer.send(topic, f"r{batch}-{i}".encode(), key=b"k", partition=0)
            await producer.flush()
    finally:
        await producer.stop()
    check = LogCheck(common_settings.kafka_bootstrap_servers, CollectorRegistry())
    stored = {(topic, 0): Stored(30, b"\0" * 16)}
    assert (await check.resume_at(stored))[(topic, 0)] == 0  # read back: another record
    monkeypatch.setattr(logcheck, "READ_BACK_S", 0.0)  # the broker answers too late
    with pytest.raises(Inconclusive):
        await check.resume_at(stored)
    assert check.resets.labels(topic, "replaced")._value.get() == 1  # the first only
