"""Review 91: what today's commits (reviews 85 to 87) got wrong, through the real path
(a real metrics worker, real PostgreSQL, a real broker, the operator's CLI).

1. A worker that cannot claim its partitions (PostgreSQL unreachable from it, an
   operator's lock on ``consumer_offsets``) never says its counting is stalled: the
   stall watch starts only when records are handed to ``Counting.step``
   (services/metrics/agents.py:271, ``self.stall.waiting()``), and the claim's retries
   (services/metrics/pipeline.py:786, ``retrying("claiming partitions", ...)``) hold the
   consumer before any record is handed over. So the successor of a stalled worker, or a
   worker given partitions by a rebalance during the outage, answers /v1/kpis 200 with
   no figures of them, ``egov_metrics_counting_stalled_seconds`` stays 0 and
   EgovCountingStalled never fires, while docs/runbooks.md ("EgovCountingStalled":
   "Restarting the worker does not help (its successor waits the same)") and
   docs/metrics.md ("A stalled counting says so") promise on-call the stall is stated.

2. ``egov-pulse dead-letters replay --reason publisher-unsigned`` (what docs/metrics.md:462
   tells the operator to run "once the keys agree") re-publishes a *forged* record's
   events signed as the publisher its header names: services/deadletters/replay.py takes
   the dead letter's ``egov_publisher`` as ``--publisher NAME`` (replay.py:7-8, 105-113)
   and never checks that any ingest MAC of the letter verifies. The very record review 86
   dead-letters (a producer with topic access naming another system to spend its ids
   first) is laundered into that system's identity by the advised replay, and the
   system's genuine events are then duplicates.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from pathlib import Path

import httpx
import orjson
import pytest

from services.common.broker import free_port
from services.common.kafka import ensure_topics, make_producer
from services.common.settings import CommonSettings
from tests.faults.conftest import samples, serving, tail
from tests.faults.postgres import metrics_env
from tests.integration.alerts.test_review85_worker_restarts import Publisher, operator_lock
from tests.integration.ingest.harness import BAC_KAN_WARD, create_keys, event
from tests.integration.metrics.harness import communes_by_province, workers
from tests.integration.metrics.test_dead_letters import dead_letters
from tests.integration.metrics.test_review81_dead_letters import PROVINCE, egov
from tests.integration.processes import service_env

pytestmark = pytest.mark.integration


async def test_a_worker_that_cannot_claim_its_partitions_says_its_counting_is_stalled(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    ((unit, province),) = communes_by_province(1)
    await ensure_topics(common_settings)
    port = free_port()
    log = tmp_path / "metrics.log"
    env = metrics_env(common_settings, database_url, "r91-claim", port, tmp_path / "w")
    async with Publisher(common_settings, unit, province) as publisher:
        await asyncio.sleep(1.0)  # records wait on the topic before the worker starts
        # The runbook's "successor": started while PostgreSQL holds what the claim needs.
        async with (
            operator_lock(database_url, "consumer_offsets"),
            serving(["metrics"], env, port, log) as url,
            httpx.AsyncClient() as client,
        ):
            statuses: list[int] = []
            stalled: list[float] = []
            for _ in range(30):  # 15 s: the threshold is 2 s (metrics_env)
                statuses.append((await client.get(f"{url}/v1/kpis", timeout=5)).status_code)
                found = await samples(client, url, "egov_metrics_counting_stalled_seconds")
                stalled.append(found[0][1] if found else -1.0)
                if statuses[-1] == 503:
                    break
                await asyncio.sleep(0.5)
            assert publisher.sent > 0  # its events were there to count all along
            assert "claiming partitions failed" in tail(log) or statuses[-1] == 503, tail(log)
            assert statuses[-1] == 503, (statuses[-5:], stalled[-5:], tail(log))
            assert max(stalled) >= 2, stalled


def test_a_forged_publisher_unsigned_letter_is_not_replayed_as_that_publisher(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    signing_key = secrets.token_hex(32)
    victim = "thai-nguyen"  # an API key of the ingest harness, Thái Nguyên's system
    forged = {
        **event(BAC_KAN_WARD, source="urn:egov:19:tdoffice"),
        "id": f"VB-19-{uuid.uuid4().hex[:8]}",
    }

    async def send() -> None:
        await ensure_topics(common_settings)
        await create_keys(database_url)
        producer = make_producer(common_settings)
        await producer.start()
        try:  # a producer with topic access, naming the victim: no MAC of ingest
            await producer.send_and_wait(
                common_settings.topic_documents,
                orjson.dumps(forged),
                key=PROVINCE.encode(),
                headers=[("egov_publisher", victim.encode())],
            )
        finally:
            await producer.stop()

    asyncio.run(send())
    with workers(
        common_settings, database_url, tmp_path, 1, EGOV_RECORD_SIGNING_KEY=signing_key
    ) as procs:
        found = asyncio.run(dead_letters(common_settings, 1))
        assert [h["dlq_reason"] for _, h in found] == [b"publisher-unsigned"], procs[0].tail()
    # The keys agree everywhere (one key): docs/metrics.md's "replay them once the keys agree".
    env = service_env(common_settings, database_url) | {"EGOV_RECORD_SIGNING_KEY": signing_key}
    shown = egov(env, "dead-letters", "replay", "--reason", "publisher-unsigned", "--dry-run")
    out = shown.stdout + shown.stderr
    assert "publisher-unsigned" in out, out[-3000:]  # the letter was found and judged
    laundered = [
        line
        for line in out.splitlines()
        if line.startswith("would replay") and f"--publisher {victim!r}" in line
    ]
    assert not laundered, out[-3000:]
