"""Records cross the network encrypted: on an Apache Kafka whose client listener speaks
SASL_SSL (deploy/kafka/tls.properties), ingest, under its own principal and trusting the
private CA of ``EGOV_KAFKA_TLS_CA_FILE``, accepts events that a metrics worker, over TLS
too, counts; a client that does not verify its way to that CA, or dials a host name the
brokers' certificate does not carry, or speaks plaintext, writes nothing."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError, KafkaError
from pydantic import SecretStr

from services.common.apache_kafka import KafkaAuth, KafkaCluster, KafkaTls
from services.common.broker import free_port
from services.common.kafka import make_producer
from services.common.kafka_acls import Principals, setup
from services.common.settings import CommonSettings
from services.ingest.keystore import create_key
from tests.integration.ingest.harness import event, ingest_settings, running_ingest
from tests.integration.ingest.test_producer_sender import break_the_sender
from tests.integration.metrics.harness import document
from tests.integration.processes import running_service, service_env
from tests.tls import Certificates, make_ca, make_certificates

pytestmark = [
    pytest.mark.integration,
    pytest.mark.broker("kafka", "TLS listeners are Apache Kafka's (tansu has none)"),
]
UNIT, PROVINCE = "01843", "19"
GROUP = "tls-metrics"
PASSWORDS = {name: secrets.token_hex(16) for name in ("ingest", "backfill", "metrics", "alerts")}


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"), ["127.0.0.1"])


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, certificates: Certificates
) -> Iterator[KafkaCluster]:
    """One node whose client listener speaks SASL_SSL, with the services' topics and ACLs."""
    auth = KafkaAuth(secrets.token_hex(16), secrets.token_hex(16), PASSWORDS)
    tls = KafkaTls(certificates.broker, certificates.ca)
    kafka = KafkaCluster(tmp_path_factory.mktemp("kafka-tls"), nodes=1, auth=auth, tls=tls)
    kafka.start()
    try:
        admin = as_user(kafka, "admin", auth.admin_password, certificates.ca)
        asyncio.run(setup(admin, Principals(), GROUP, "egov.alerts"))
        yield kafka
    finally:
        kafka.stop()


def as_user(
    cluster: KafkaCluster,
    user: str,
    password: str,
    ca: Path | None,
    bootstrap: str | None = None,
) -> CommonSettings:
    return CommonSettings(
        kafka_bootstrap_servers=bootstrap or cluster.bootstrap_servers,
        kafka_sasl_username=user,
        kafka_sasl_password=SecretStr(password),
        kafka_tls_ca_file=ca,
        kafka_request_timeout_s=5,
        topic_partitions=3,
    )


def admin_of(cluster: KafkaCluster, certificates: Certificates) -> CommonSettings:
    assert cluster.auth is not None
    return as_user(cluster, "admin", cluster.auth.admin_password, certificates.ca)


async def try_produce(settings: CommonSettings, event_id: str) -> BaseException | None:
    """Write one event into the documents topic; the error the client met, if any."""
    producer = make_producer(settings, request_timeout_ms=5000)
    try:
        await asyncio.wait_for(producer.start(), 15)
        value = orjson.dumps(document(event_id, UNIT))
        await asyncio.wait_for(
            producer.send_and_wait(settings.topic_documents, value, key=PROVINCE.encode()), 10
        )
    except (KafkaError, TimeoutError) as exc:
        return exc
    finally:
        await producer.stop()
    return None


async def ids_in_topic(settings: CommonSettings) -> list[str]:
    """The event ids in the documents topic, read from its start."""
    consumer = AIOKafkaConsumer(
        settings.topic_documents,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **settings.kafka_security,
    )
    await consumer.start()
    try:
        ids = []
        while batches := await consumer.getmany(timeout_ms=2000):
            for records in batches.values():
                for record in records:
                    parsed = orjson.loads(record.value)
                    for event in parsed if isinstance(parsed, list) else [parsed]:
                        ids.append(event["id"])
        return ids
    finally:
        await consumer.stop()


def test_a_client_that_does_not_trust_the_brokers_ca_writes_nothing(
    cluster: KafkaCluster, certificates: Certificates, tmp_path: Path
) -> None:
    other_ca = make_ca(tmp_path, "other-ca")
    error = asyncio.run(
        try_produce(as_user(cluster, "ingest", PASSWORDS["ingest"], other_ca), "untrusted")
    )
    # The handshake fails before any byte of the client's (its password included) is sent.
    assert isinstance(error, KafkaConnectionError), error
    assert "untrusted" not in asyncio.run(ids_in_topic(admin_of(cluster, certificates)))


def test_a_host_name_the_certificate_does_not_carry_is_refused(
    cluster: KafkaCluster, certificates: Certificates
) -> None:
    # The same broker, dialled as "localhost": its certificate names 127.0.0.1 only, so a
    # client that checks host names (the services always do) stops at the handshake.
    port = cluster.nodes[0].port
    settings = as_user(cluster, "ingest", PASSWORDS["ingest"], certificates.ca, f"localhost:{port}")
    error = asyncio.run(try_produce(settings, "wrong-host"))
    assert isinstance(error, KafkaConnectionError), error
    assert "wrong-host" not in asyncio.run(ids_in_topic(admin_of(cluster, certificates)))


def test_a_plaintext_client_writes_nothing(
    cluster: KafkaCluster, certificates: Certificates
) -> None:
    settings = as_user(cluster, "ingest", PASSWORDS["ingest"], None)
    assert settings.kafka_security["security_protocol"] == "SASL_PLAINTEXT"
    error = asyncio.run(try_produce(settings, "in-clear"))
    assert isinstance(error, (KafkaConnectionError, TimeoutError)), error
    assert "in-clear" not in asyncio.run(ids_in_topic(admin_of(cluster, certificates)))


async def _key(database_url: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        key = await create_key(
            conn, "tls", [PROVINCE], ["vn.egov.document.issued"], sources=["urn:"]
        )
    finally:
        await conn.close()
    return key.token


async def _counted(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        total = await conn.fetchval(
            "SELECT coalesce(sum(denominator), 0)::bigint FROM kpi_daily"
            " WHERE kpi = 'document_signing' AND unit = $1",
            UNIT,
        )
    finally:
        await conn.close()
    return int(total)


def test_ingest_accepts_over_tls_and_a_worker_counts_every_event(
    cluster: KafkaCluster, certificates: Certificates, database_url: str, tmp_path: Path
) -> None:
    """The services as compose runs them on TLS: each its own principal, the CA by file."""
    ingest_settings = as_user(cluster, "ingest", PASSWORDS["ingest"], certificates.ca)
    env = service_env(ingest_settings, database_url)
    env.update(
        {
            "EGOV_EMBEDDED_BROKER": "false",
            "EGOV_RECORD_SIGNING_KEY": secrets.token_hex(32),
            "EGOV_KAFKA_TLS_CA_FILE": str(certificates.ca),
            "EGOV_METRICS_APP_ID": GROUP,
            "EGOV_METRICS_DATA_DIR": str(tmp_path / "metrics"),
        }
    )
    ingest_port, metrics_port = free_port(), free_port()
    ingest_env = {
        **env,
        "EGOV_INGEST_PORT": str(ingest_port),
        "EGOV_KAFKA_SASL_USERNAME": "ingest",
        "EGOV_KAFKA_SASL_PASSWORD": PASSWORDS["ingest"],
    }
    metrics_env = {
        **env,
        "EGOV_METRICS_WEB_PORT": str(metrics_port),
        "EGOV_KAFKA_SASL_USERNAME": "metrics",
        "EGOV_KAFKA_SASL_PASSWORD": PASSWORDS["metrics"],
    }
    token = asyncio.run(_key(database_url))
    headers = {"content-type": "application/cloudevents-batch+json",
               "authorization": f"Bearer {token}"}  # fmt: skip
    events = [document(f"tls-{i}", UNIT) for i in range(20)]
    bad = document("tls-bad", UNIT)
    del bad["time"]
    with (
        running_service(
            ["ingest"], ingest_env, ingest_port, tmp_path / "ingest.log", "/readyz"
        ) as ingest,
        running_service(["metrics"], metrics_env, metrics_port, tmp_path / "metrics.log"),
    ):
        accepted = httpx.post(ingest + "/v1/events", content=orjson.dumps(events), headers=headers)
        assert accepted.status_code == 202, accepted.text
        # Bad input gets a clear error, and what was accepted still counts.
        refused = httpx.post(ingest + "/v1/events", content=orjson.dumps([bad]), headers=headers)
        assert refused.status_code == 422, refused.text
        assert "time" in refused.text
        deadline = time.monotonic() + 90
        while (counted := asyncio.run(_counted(database_url))) < len(events):
            assert time.monotonic() < deadline, (tmp_path / "metrics.log").read_text()[-4000:]
            time.sleep(0.5)
        assert counted == len(events)
    ids = asyncio.run(ids_in_topic(admin_of(cluster, certificates)))
    assert {e["id"] for e in events} <= set(ids)
    assert "tls-bad" not in ids


def test_a_service_with_an_unreadable_ca_file_refuses_to_start(
    cluster: KafkaCluster, database_url: str, tmp_path: Path
) -> None:
    import subprocess
    import sys

    settings = as_user(cluster, "ingest", PASSWORDS["ingest"], None)
    env = service_env(settings, database_url)
    missing = tmp_path / "no-such-ca.pem"
    env.update(
        {
            "EGOV_EMBEDDED_BROKER": "false",
            "EGOV_RECORD_SIGNING_KEY": secrets.token_hex(32),
            "EGOV_KAFKA_SASL_USERNAME": "ingest",
            "EGOV_KAFKA_SASL_PASSWORD": PASSWORDS["ingest"],
            "EGOV_KAFKA_TLS_CA_FILE": str(missing),
            "EGOV_INGEST_PORT": str(free_port()),
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "ingest"],
        env=env, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert f"EGOV_KAFKA_TLS_CA_FILE {missing}: cannot load it" in done.stderr, done.stderr[-3000:]
    assert PASSWORDS["ingest"] not in done.stderr


async def test_a_ca_file_gone_under_a_running_ingest_is_a_503_and_logged(
    cluster: KafkaCluster,
    certificates: Certificates,
    database_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A producer renewed while the CA file is missing (a rotation half done): a 503 the
    publisher retries, and the operator's log names the variable (publishers are not told
    the service's settings); once the file is back, the next request counts again."""
    ca = tmp_path / "ca.pem"
    ca.write_bytes(certificates.ca.read_bytes())
    settings = ingest_settings(
        as_user(cluster, "ingest", PASSWORDS["ingest"], ca), database_url, produce_timeout_s=10
    )
    async with running_ingest(settings) as ingest:
        before = [event()]
        assert (await ingest.post(before)).status_code == 202
        ca.unlink()
        break_the_sender(ingest.service.publisher)
        lost = await ingest.post([event()])  # what the stopped sender held: outcome unknown
        assert lost.status_code == 503, lost.text
        refused = await ingest.post([event()])
        assert refused.status_code == 503, refused.text
        assert refused.json()["type"].endswith("broker-unavailable"), refused.text
        logged = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert any("cannot renew" in m and "EGOV_KAFKA_TLS_CA_FILE" in m for m in logged)
        ca.write_bytes(certificates.ca.read_bytes())
        after = [event()]
        assert (await ingest.post(after)).status_code == 202
    ids = await ids_in_topic(admin_of(cluster, certificates))
    assert {e["id"] for e in before + after} <= set(ids)
