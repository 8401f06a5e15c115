"""Kafka is locked (issue 15): on an Apache Kafka with SASL/SCRAM and the services' ACLs
(services/common/kafka_acls.py), only ingest's, backfill's and the workers' principals
write an event topic (the workers: events keyed by something else than their province,
published again keyed by it), and a metrics worker, under its own principal, still
counts every event ingest wrote. ``egov-pulse dead-letters list`` reads the dead letters
as the backfill principal (not as alerts), which cannot join the workers' group."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    TopicAuthorizationFailedError,
)
from pydantic import SecretStr

from services.common.apache_kafka import KafkaAuth, KafkaCluster
from services.common.kafka import make_producer
from services.common.kafka_acls import Principals, setup
from services.common.settings import CommonSettings
from tests.integration.metrics.harness import document, publish, workers
from tests.integration.metrics.test_workers import stored
from tests.integration.processes import service_env

pytestmark = [
    pytest.mark.integration,
    pytest.mark.broker("kafka", "SASL/SCRAM and ACLs are Apache Kafka's (tansu has neither)"),
]
UNIT, PROVINCE = "01843", "19"
GROUP = "auth-metrics"
PASSWORDS = {name: secrets.token_hex(16) for name in ("ingest", "backfill", "metrics", "alerts")}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """One authenticated node of its own, with the services' topics and ACLs."""
    auth = KafkaAuth(secrets.token_hex(16), secrets.token_hex(16), PASSWORDS)
    kafka = KafkaCluster(tmp_path_factory.mktemp("kafka-auth"), nodes=1, auth=auth)
    kafka.start()
    try:
        admin = as_user(kafka, "admin", auth.admin_password)
        asyncio.run(setup(admin, Principals(), GROUP, "egov.alerts"))
        yield kafka
    finally:
        kafka.stop()


def as_user(cluster: KafkaCluster, user: str | None, password: str | None = None) -> CommonSettings:
    return CommonSettings(
        kafka_bootstrap_servers=cluster.bootstrap_servers,
        kafka_sasl_username=user,
        kafka_sasl_password=None if password is None else SecretStr(password),
        kafka_request_timeout_s=5,
        topic_partitions=3,
    )


async def try_produce(settings: CommonSettings) -> BaseException | None:
    """Write one event into the documents topic; the error the client met, if any."""
    producer = make_producer(settings, request_timeout_ms=5000)
    try:
        await asyncio.wait_for(producer.start(), 10)
        value = orjson.dumps(document("forged-1", UNIT))
        await asyncio.wait_for(
            producer.send_and_wait(settings.topic_documents, value, key=PROVINCE.encode()), 10
        )
    except (KafkaError, TimeoutError) as exc:
        return exc
    finally:
        await producer.stop()
    return None


def test_a_client_without_credentials_cannot_produce(cluster: KafkaCluster) -> None:
    error = asyncio.run(try_produce(as_user(cluster, None)))
    # The listener speaks SASL only: a client that does not is disconnected at once.
    assert isinstance(error, KafkaConnectionError), error


def test_a_wrong_password_cannot_produce(cluster: KafkaCluster) -> None:
    error = asyncio.run(try_produce(as_user(cluster, "ingest", "not-the-password")))
    assert isinstance(error, KafkaConnectionError), error


def test_the_alerts_credentials_cannot_produce_to_an_event_topic(cluster: KafkaCluster) -> None:
    error = asyncio.run(try_produce(as_user(cluster, "alerts", PASSWORDS["alerts"])))
    assert isinstance(error, TopicAuthorizationFailedError), error


@pytest.mark.parametrize("user", ["ingest", "backfill", "metrics"])
def test_ingest_backfill_and_the_workers_produce(cluster: KafkaCluster, user: str) -> None:
    # The workers publish again, keyed by their province, events an integrator keyed
    # otherwise (services/metrics/rekeying.py).
    assert asyncio.run(try_produce(as_user(cluster, user, PASSWORDS[user]))) is None


async def try_read(settings: CommonSettings, group: str | None) -> BaseException | None:
    """Read the documents topic from its start; the error the client met, if any."""
    consumer = AIOKafkaConsumer(
        settings.topic_documents,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=group,
        auto_offset_reset="earliest",
        **settings.kafka_security,
    )
    try:
        await asyncio.wait_for(consumer.start(), 10)
        await asyncio.wait_for(consumer.getmany(timeout_ms=2000), 10)
    except (KafkaError, TimeoutError) as exc:
        return exc
    finally:
        await consumer.stop()
    return None


@pytest.mark.parametrize("user", ["ingest", "alerts", "backfill"])
def test_only_the_metrics_group_reads_the_event_topics(cluster: KafkaCluster, user: str) -> None:
    error = asyncio.run(try_read(as_user(cluster, user, PASSWORDS[user]), GROUP))
    assert isinstance(error, (TopicAuthorizationFailedError, GroupAuthorizationFailedError)), error


async def dead_letters(settings: CommonSettings) -> list[dict[str, bytes]]:
    consumer = AIOKafkaConsumer(
        settings.topic_dead_letter,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        **settings.kafka_security,
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=3000)
        return [dict(m.headers) for messages in batches.values() for m in messages]
    finally:
        await consumer.stop()


def test_a_metrics_worker_counts_what_ingest_produced(
    cluster: KafkaCluster, database_url: str, tmp_path: Path
) -> None:
    """And dead-letters, under its own principal, what it cannot count."""
    ingest = as_user(cluster, "ingest", PASSWORDS["ingest"])
    ids = [f"auth-{i}" for i in range(20)]
    messages = [(PROVINCE.encode(), orjson.dumps(document(i, UNIT))) for i in ids]
    messages.insert(10, (PROVINCE.encode(), b"{not json"))
    asyncio.run(publish(ingest, messages))
    metrics = as_user(cluster, "metrics", PASSWORDS["metrics"])
    env = {
        "EGOV_METRICS_APP_ID": GROUP,
        "EGOV_KAFKA_SASL_USERNAME": "metrics",
        "EGOV_KAFKA_SASL_PASSWORD": PASSWORDS["metrics"],
        "EGOV_RECORD_SIGNING_KEY": secrets.token_hex(32),
        "EGOV_EMBEDDED_BROKER": "false",
    }
    with workers(metrics, database_url, tmp_path, 1, **env) as (worker,):
        deadline = time.monotonic() + 90
        while asyncio.run(stored(database_url))[0] < len(ids) and time.monotonic() < deadline:
            assert worker.proc is not None and worker.proc.poll() is None, worker.tail()
            time.sleep(0.5)
        counted = asyncio.run(stored(database_url))
        # The ones the two produce tests wrote count too: every acknowledged event.
        assert counted[0] >= len(ids), worker.tail()
        assert counted[1][UNIT] == counted[0], worker.tail()
    admin = as_user(cluster, "admin", cluster.auth.admin_password if cluster.auth else None)
    reasons = [h["dlq_reason"] for h in asyncio.run(dead_letters(admin))]
    assert reasons == [b"malformed-json"]
    # The operator's command, as the backfill principal (no consumer group: it reads the
    # topics only), sees it; the alerts principal cannot.
    backfill = as_user(cluster, "backfill", PASSWORDS["backfill"])
    shown = list_dead_letters(backfill, "backfill")
    assert shown.returncode == 0, shown.stderr
    assert "malformed-json" in shown.stdout and "not JSON" in shown.stdout, shown.stdout
    refused = list_dead_letters(as_user(cluster, "alerts", PASSWORDS["alerts"]), "alerts")
    assert refused.returncode == 3 and "stopped" in refused.stderr, refused.stderr


def list_dead_letters(settings: CommonSettings, user: str) -> subprocess.CompletedProcess[str]:
    env = service_env(settings)
    env.update(
        {"EGOV_KAFKA_SASL_USERNAME": user, "EGOV_KAFKA_SASL_PASSWORD": PASSWORDS[user],
         "EGOV_KAFKA_REQUEST_TIMEOUT_S": "5"}
    )  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "dead-letters", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
