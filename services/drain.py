"""A clean stop counts what was accepted: the workers catch up before the broker stops.

`make up` stops ingest (and the simulator) first, so nothing more is accepted; then it
waits until the metrics workers' positions, stored in PostgreSQL with the figures, reach
the end of every event partition, and only then stops the workers and the broker. With
the memory-only tansu this is the difference between a 202 counted and a 202 forgotten.

tansu answers ListOffsets with its last batch's base offset, which can be short of the
true end, so "caught up" also needs the positions to stand still for a moment while the
workers, whose fetches wait 100 ms, would otherwise still be moving them.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.common.settings import CommonSettings

log = logging.getLogger(__name__)

STILL_S = 2.0
"""Positions unchanged this long, at or past the reported ends: the workers are done."""


async def end_offsets(settings: CommonSettings) -> dict[tuple[str, int], int]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        **settings.kafka_security,
    )
    await asyncio.wait_for(consumer.start(), settings.kafka_request_timeout_s)
    try:
        tps = [
            TopicPartition(topic, partition)
            for topic in settings.event_topics
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends = await consumer.end_offsets(tps) if tps else {}
    finally:
        await consumer.stop()
    return {(tp.topic, tp.partition): end for tp, end in ends.items()}


async def positions(database_url: str, group: str) -> dict[tuple[str, int], int]:
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        rows = await conn.fetch(
            'SELECT topic, "partition", next_offset FROM consumer_offsets WHERE group_id = $1',
            group,
        )
    finally:
        await conn.close()
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


def behind(ends: dict[tuple[str, int], int], at: dict[tuple[str, int], int]) -> int:
    """Records between the workers' positions and the partitions' ends."""
    return sum(max(0, end - at.get(tp, 0)) for tp, end in ends.items())


async def drain(
    settings: CommonSettings, database_url: str, group: str, timeout_s: float = 60.0
) -> int:
    """Wait until the workers have counted what the broker holds; returns how many records
    they were still behind when giving up (0: everything counted)."""
    ends = await end_offsets(settings)
    deadline = time.monotonic() + timeout_s
    last: dict[tuple[str, int], int] = {}
    still_since = time.monotonic()
    while True:
        now = await positions(database_url, group)
        if now != last:
            last, still_since = now, time.monotonic()
        missing = behind(ends, now)
        if missing == 0 and time.monotonic() - still_since >= STILL_S:
            return 0
        if time.monotonic() > deadline:
            return missing
        await asyncio.sleep(0.2)
