"""Three Apache Kafka brokers under faults: every 202 is counted exactly once.

A cluster of its own (replication factor 3, ``min.insync.replicas=2``), ingest with the
idempotent producer and ``acks=all``, and two metrics workers. While uniquely numbered
events are published through ingest (the plan and the retry-until-202 publisher of
test_acknowledged_exactly_once.py):
- the broker that leads most partitions of the event topics is killed with SIGKILL and
  restarted, and a metrics worker is killed with SIGKILL and restarted;
- then two brokers are down at once: no write can reach ``min.insync.replicas``, and
  every request sent then must be answered 503 (an unknown outcome the publisher
  retries), never 202; the brokers come back and the retries are acknowledged.
At the end the dedup keys in PostgreSQL are exactly the acknowledged events and every
commune's and province's stored and exported count equals its acknowledged events.
"""

from __future__ import annotations

import asyncio
import random
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from services.common.apache_kafka import KafkaCluster
from services.common.kafka import ensure_topics
from services.common.settings import CommonSettings
from services.common.tally import dedup_digest
from tests.faults.conftest import PUBLISHER, api_token, fault_seed, until
from tests.faults.test_acknowledged_exactly_once import (
    SOURCE,
    Figures,
    Publisher,
    Request,
    Stack,
    converged,
    expected_counts,
    figures,
    plan,
)
from tests.integration.metrics.harness import communes_by_province
from tests.integration.processes import service_env

pytestmark = [
    pytest.mark.integration,
    pytest.mark.faults,
    pytest.mark.broker("kafka", "replicas, min.insync.replicas and leader failover"),
]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[KafkaCluster]:
    with KafkaCluster(tmp_path / "kafka", nodes=3) as running:
        yield running


@pytest.fixture
def cluster_settings(cluster: KafkaCluster, topic_prefix: str) -> CommonSettings:
    return CommonSettings(
        kafka_bootstrap_servers=cluster.bootstrap_servers,
        kafka_idempotence=True,
        topic_documents=f"{topic_prefix}.documents",
        topic_dossiers=f"{topic_prefix}.dossiers",
        topic_meetings=f"{topic_prefix}.meetings",
        topic_dead_letter=f"{topic_prefix}.dead-letter",
        topic_partitions=6,
        topic_replication=3,
    )


async def busiest_leader(settings: CommonSettings) -> int:
    """The node that leads most partitions of the event topics."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics(settings.event_topics)
    finally:
        await admin.close()
    leaders = Counter(p["leader"] for topic in described for p in topic["partitions"])
    return leaders.most_common(1)[0][0]


PROBES = range(1_000_000, 1_000_005)  # numbers outside the plan's


async def probe(base: str, token: str, publisher: Publisher) -> Counter[int]:
    """Statuses of fresh single events, each sent once while the ISR is short."""
    statuses: Counter[int] = Counter()
    headers = {"content-type": "application/cloudevents+json", "authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for n in PROBES:
            body = orjson.dumps(publisher.event(n))
            try:
                answer = await client.post("/v1/events", content=body, headers=headers)
                status = answer.status_code
            except httpx.TransportError:
                status = 0
            statuses[status] += 1
    return statuses


async def test_three_brokers_leader_killed_and_min_isr_lost(
    cluster: KafkaCluster, cluster_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    seed = fault_seed()
    rng = random.Random(seed)
    units = communes_by_province(6)
    await ensure_topics(cluster_settings)
    token = await api_token(database_url, sorted({p for _, p in units}))
    env = service_env(cluster_settings, database_url) | {
        "EGOV_KAFKA_IDEMPOTENCE": "true",
        "EGOV_TOPIC_REPLICATION": "3",
    }
    stack = Stack.start(env, seed, tmp_path, "cluster")
    chaos, workers = stack.chaos, stack.workers
    history: list[str] = []

    def context() -> str:
        return f"seed {seed}; brokers: {history}; {stack.describe()}"

    async def faults(publisher: Publisher, base: str) -> Counter[int]:
        await asyncio.sleep(rng.uniform(2.0, 4.0))
        leader = await busiest_leader(cluster_settings)
        history.append(f"SIGKILL leader {leader}")
        await asyncio.to_thread(cluster.kill, leader)
        await asyncio.sleep(rng.uniform(1.0, 3.0))
        await asyncio.to_thread(chaos.kill, rng.choice(sorted(workers)), signal.SIGKILL)
        await asyncio.sleep(rng.uniform(0.5, 2.0))
        chaos.restart(next(n for n, m in chaos.processes.items() if not m.alive()))
        await asyncio.to_thread(cluster.restart, leader)
        history.append(f"restarted {leader}")
        await asyncio.sleep(3)
        # Two of three down: no partition can have two in-sync replicas.
        down = rng.sample([n.node_id for n in cluster.nodes], 2)
        for node in down:
            await asyncio.to_thread(cluster.kill, node)
        history.append(f"SIGKILL {down}")
        statuses = await probe(base, token, publisher)
        for node in down:
            await asyncio.to_thread(cluster.restart, node)
        history.append(f"restarted {down}")
        # A 503 is an unknown outcome: the probes are re-sent until acknowledged, as a
        # publisher must (one may have been written before its acknowledgement failed).
        for n in PROBES:
            await publisher.deliver(Request([n], batch=False))
        return statuses

    try:
        async with stack.ingest() as base:
            publisher = Publisher(base, token, units)
            publisher.retry_within_s = 180.0  # two JVMs restart while requests wait
            fault_task = asyncio.create_task(faults(publisher, base))
            await publisher.run(plan(random.Random(seed)))
            short_isr = await fault_task
        ledger = publisher.ledger
        assert not ledger.unexpected, (ledger.unexpected[:5], context())
        assert short_isr[202] == 0, (f"202 while min.insync.replicas was out of reach: "
                                     f"{dict(short_isr)}; {context()}")  # fmt: skip
        assert set(short_isr) <= {503}, (dict(short_isr), context())
        want = expected_counts(ledger.acked, units)
        last: list[Figures] = []

        async def settled() -> bool:
            last[:] = [await figures(database_url, workers)]
            return converged(last[0], want)

        await until(settled, 120, lambda: f"want {want}, got {last and last[0].stored}\n"
                    f"{context()}")  # fmt: skip
        got = last[0]
    finally:
        await asyncio.to_thread(chaos.stop_all)

    acked_keys = {dedup_digest(SOURCE, f"ev-{n}", PUBLISHER) for n in ledger.acked}
    missing, extra = acked_keys - got.digests, got.digests - acked_keys
    assert not missing, f"{len(missing)} acknowledged events not counted; {context()}"
    assert not extra, f"{len(extra)} counted events never acknowledged; {context()}"
