"""PostgreSQL cut off through a proxy, and the webhook/Kafka outbox, against real services."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from services.alerts import webhook
from services.alerts.journal import UNAVAILABLE
from services.alerts.model import State
from tests.integration.alerts.conftest import ServiceFactory
from tests.integration.alerts.harness import FakeMetrics, Receiver, TcpProxy, wait_until

pytestmark = pytest.mark.integration


async def transitions_in(svc) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    async with svc.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT a.unit, t.to_state FROM alert_transitions t JOIN alerts a ON a.id = "
            "t.alert_id ORDER BY t.seq"
        )
    return [(r["unit"], r["to_state"]) for r in rows]


async def test_postgres_down_then_up_loses_nothing_and_duplicates_nothing(
    make_service: ServiceFactory, fake_metrics: FakeMetrics, database_url: str
) -> None:
    proxy = TcpProxy()
    await proxy.up()
    via_proxy = proxy.dsn(database_url)
    assert via_proxy != database_url
    svc = make_service(database_url=via_proxy)
    await svc.connect()
    try:
        fake_metrics.set("c1", 80, 100)
        now = datetime.now(UTC)
        await proxy.down()
        evaluated = []
        for i in range(3):  # pending, firing, then steady: the evaluation goes on
            evaluated += await svc.evaluate_once(now + timedelta(seconds=2 * i))
        fake_metrics.set("c1", 99, 100)
        evaluated += await svc.evaluate_once(now + timedelta(seconds=8))
        assert [t.to_state for t in evaluated] == [State.PENDING, State.FIRING, State.RESOLVED]
        with pytest.raises(UNAVAILABLE):
            await svc.flush()
        assert len(svc.state.journal) == 3  # kept, in order
        await proxy.up()
        await wait_until(_flushed(svc), 30, "journal flushed after PostgreSQL returned")
        assert await transitions_in(svc) == [
            ("c1", "pending"),
            ("c1", "firing"),
            ("c1", "resolved"),
        ]
        await svc.flush()  # a second flush writes nothing twice
        assert len(await transitions_in(svc)) == 3
    finally:
        await svc.close()
        await proxy.down()


def _flushed(svc):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        try:
            await svc.flush()
        except UNAVAILABLE:
            await asyncio.sleep(0.2)
            return False
        return len(svc.state.journal) == 0

    return check


async def test_webhook_and_kafka_get_every_transition_after_they_return(
    make_service: ServiceFactory, fake_metrics: FakeMetrics, receiver: Receiver,
    kafka_bootstrap: str, topic_prefix: str,
) -> None:  # fmt: skip
    secret = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LTEyMzQ1Njc4"
    topic = f"{topic_prefix}.alerts"
    down_url = "http://127.0.0.1:9/hook"  # discard port: nothing listens
    svc = make_service(alert_webhook_url=down_url, alert_webhook_secret=secret,
                       alert_kafka_enabled=True, kafka_bootstrap_servers=kafka_bootstrap,
                       topic_alerts=topic)  # fmt: skip
    await svc.connect()
    try:
        fake_metrics.set("c1", 80, 100)
        now = datetime.now(UTC)
        for i in range(2):
            await svc.evaluate_once(now + timedelta(seconds=2 * i))
        fake_metrics.set("c1", 99, 100)
        await svc.evaluate_once(now + timedelta(seconds=6))
        await svc.flush()
        await svc.deliver_outbox()  # kafka delivers; the webhook is down
        async with svc.pool.acquire() as conn:  # type: ignore[union-attr]
            pending = await conn.fetch(
                "SELECT attempts, last_error FROM alert_outbox WHERE sink = 'webhook' "
                "AND delivered_at IS NULL ORDER BY id"
            )
            # Receiver comes back: point the sink at it and make the retry due now.
            await conn.execute("UPDATE alert_outbox SET next_attempt_at = now()")
        assert len(pending) == 2 and pending[0]["attempts"] == 1 and pending[0]["last_error"]
        svc.settings.alert_webhook_url = f"{receiver.url}/hook"
        await svc.deliver_outbox()
        kinds = [p["type"] for _, p, _ in receiver.posts]
        assert kinds == ["alert.firing", "alert.resolved"]
        for (_, _, headers), raw in zip(receiver.posts, receiver.raw_bodies, strict=True):
            assert webhook.verify(secret, headers, raw)
        events = await _consume(kafka_bootstrap, topic, 3)
        assert [e["to"] for e in events] == ["pending", "firing", "resolved"]
        assert len({e["transition_id"] for e in events}) == 3
    finally:
        await svc.close()


async def _consume(bootstrap: str, topic: str, n: int) -> list[dict[str, object]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        out: list[dict[str, object]] = []
        async with asyncio.timeout(20):
            while len(out) < n:
                batch = await consumer.getmany(timeout_ms=500)
                out += [orjson.loads(m.value) for msgs in batch.values() for m in msgs]
        return out
    finally:
        await consumer.stop()
