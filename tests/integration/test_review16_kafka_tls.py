"""Review 16 of "Kafka over TLS" (78fddb5): what the commit claims, checked adversarially.

Its two defects, fixed since (each was a strict xfail first): a refused TLS set-up printed
the raw settings, the key password among them (settings now hide input in errors), and
an encrypted client key without its password waited at OpenSSL's prompt (now refused,
naming EGOV_KAFKA_TLS_KEY_PASSWORD). The claims that hold and had no test of their own:
- the alerts service's Kafka sink delivers over TLS under its own principal;
- a metrics worker over TLS dead-letters a record it cannot count (Faust's producer).

The start-up refusals need no broker; the rest run on the TLS cluster of
tests/integration/test_kafka_tls.py (one of this module's own).
"""

from __future__ import annotations

import asyncio
import os
import pty
import secrets
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry

from services.alerts.delivery import Delivery
from services.alerts.settings import AlertsSettings
from services.alerts.telemetry import AlertsMetrics
from services.common.apache_kafka import KafkaCluster
from services.common.broker import free_port
from services.common.settings import CommonSettings
from tests.integration import test_kafka_tls as tls_suite
from tests.integration.metrics.harness import document
from tests.integration.processes import running_service, service_env
from tests.integration.test_kafka_tls import GROUP, PASSWORDS, PROVINCE, UNIT, admin_of, as_user
from tests.tls import Certificates, make_certificates

pytestmark = [pytest.mark.integration]
KAFKA_ONLY = pytest.mark.broker("kafka", "TLS listeners are Apache Kafka's (tansu has none)")
REPO = Path(__file__).resolve().parents[2]
# The TLS cluster fixtures of test_kafka_tls.py: module-scoped, so this module runs its own.
certificates = tls_suite.certificates
cluster = tls_suite.cluster


def _encrypted_client_key(folder: Path, password: str) -> tuple[Path, Path]:
    """A client certificate and its private key encrypted with ``password`` (PKCS#8)."""
    made = make_certificates(folder, ["127.0.0.1"])
    encrypted = folder / "client-encrypted.key"
    done = subprocess.run(
        ["openssl", "pkcs8", "-topk8", "-in", str(made.client_key), "-out", str(encrypted),
         "-passout", f"pass:{password}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "ENCRYPTED" in encrypted.read_text()
    return made.client_cert, encrypted


def _clean_env(home: Path, **extra: str) -> dict[str, str]:
    """What an operator's shell gives a command: no test-session variables."""
    return {"PATH": os.environ["PATH"], "HOME": str(home), **extra}


# --- start-up refusals (no broker) ------------------------------------------------------


def test_a_refused_tls_setup_does_not_print_the_key_password(tmp_path: Path) -> None:
    """``egov-pulse backfill`` as an operator runs it (no DATABASE_URL: it needs none),
    with a client certificate whose key is encrypted and a CA path with a typo."""
    password = secrets.token_hex(16)
    cert, key = _encrypted_client_key(tmp_path / "tls", password)
    (tmp_path / "history.jsonl").write_text("")
    env = _clean_env(
        tmp_path,
        KAFKA_BOOTSTRAP_SERVERS="kafka.example:9092",
        EGOV_RECORD_SIGNING_KEY=secrets.token_hex(32),
        EGOV_KAFKA_SASL_USERNAME="backfill",
        EGOV_KAFKA_SASL_PASSWORD=secrets.token_hex(16),
        EGOV_KAFKA_TLS_CA_FILE=str(tmp_path / "tls" / "no-such-ca.pem"),
        EGOV_KAFKA_TLS_CERT_FILE=str(cert),
        EGOV_KAFKA_TLS_KEY_FILE=str(key),
        EGOV_KAFKA_TLS_KEY_PASSWORD=password,
        PYTHONPATH=str(REPO),
    )
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "backfill", str(tmp_path / "history.jsonl"),
         "--unbound"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "EGOV_KAFKA_TLS_CA_FILE" in done.stderr, done.stderr[-3000:]
    # Not the password, nor any good part of it.
    assert password[-12:] not in done.stderr + done.stdout, done.stderr[-1500:]


_LOAD_SETTINGS = """
import sys
from services.common.settings import CommonSettings
try:
    CommonSettings()
except Exception as exc:
    print("REFUSED", exc, flush=True)
    sys.exit(2)
print("LOADED", flush=True)
"""


def test_an_encrypted_key_without_its_password_is_refused_not_prompted_for(
    tmp_path: Path,
) -> None:
    cert, key = _encrypted_client_key(tmp_path / "tls", secrets.token_hex(16))
    env = _clean_env(
        tmp_path,
        EGOV_KAFKA_TLS_CA_FILE=str(tmp_path / "tls" / "ca.pem"),
        EGOV_KAFKA_TLS_CERT_FILE=str(cert),
        EGOV_KAFKA_TLS_KEY_FILE=str(key),
        PYTHONPATH=str(REPO),
    )
    # The service on a terminal, as `docker-compose run` or an operator's shell gives it.
    pid, fd = pty.fork()
    if pid == 0:  # the child: never returns
        os.chdir(tmp_path)
        os.execve(sys.executable, [sys.executable, "-c", _LOAD_SETTINGS], env)  # noqa: S606
    output = b""
    exited = False
    try:
        guard = time.monotonic() + 120  # against a hang only, not a speed requirement
        while time.monotonic() < guard and b"pass phrase" not in output.lower():
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # the child closed the terminal: it exited
                    chunk = b""
                output += chunk
                if not chunk:
                    break
            if b"REFUSED" in output or b"LOADED" in output:
                break
    finally:
        done, _ = os.waitpid(pid, os.WNOHANG)
        exited = done == pid
        if not exited:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    text = output.decode(errors="replace")
    assert "pass phrase" not in text.lower(), text[-2000:]
    assert "REFUSED" in text and "EGOV_KAFKA_TLS_KEY_PASSWORD" in text, text[-2000:]


def test_an_encrypted_key_with_its_password_loads(tmp_path: Path) -> None:
    """The client-certificate path of the settings, with an encrypted key (the commit's
    tests only load unencrypted ones)."""
    password = secrets.token_hex(16)
    cert, key = _encrypted_client_key(tmp_path / "tls", password)
    from pydantic import SecretStr

    settings = CommonSettings(
        kafka_tls_ca_file=tmp_path / "tls" / "ca.pem",
        kafka_tls_cert_file=cert,
        kafka_tls_key_file=key,
        kafka_tls_key_password=SecretStr(password),
    )
    assert settings.kafka_security["security_protocol"] == "SSL"


# --- on the TLS cluster -----------------------------------------------------------------


async def _values(settings: CommonSettings, topic: str, want: bytes, wait_s: float) -> list[bytes]:
    """The values of ``topic`` from its start, read until one contains ``want``."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **settings.kafka_security,
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and not any(want in v for v in values):
            batches = await consumer.getmany(timeout_ms=1000)
            values += [r.value for records in batches.values() for r in records if r.value]
        return values
    finally:
        await consumer.stop()


@KAFKA_ONLY
def test_the_alerts_service_delivers_to_kafka_over_tls(
    cluster: KafkaCluster, certificates: Certificates
) -> None:
    """The alerts outbox's Kafka sink, under the alerts principal and with the CA by
    file: SASL_SSL, and the transition is in egov.alerts."""
    assert cluster.auth is not None
    settings = AlertsSettings(
        kafka_bootstrap_servers=cluster.bootstrap_servers,
        kafka_sasl_username="alerts",
        kafka_sasl_password=PASSWORDS["alerts"],
        kafka_tls_ca_file=certificates.ca,
        kafka_request_timeout_s=10,
        topic_partitions=3,
    )
    assert settings.kafka_security["security_protocol"] == "SASL_SSL"
    transition = f"tls-transition-{secrets.token_hex(4)}"
    event: dict[str, Any] = {"transition_id": transition, "identity": "tls|01843", "to": "firing"}

    async def deliver() -> None:
        async with httpx.AsyncClient() as http:
            metrics = AlertsMetrics(CollectorRegistry(), lambda: [])
            delivery = Delivery(settings, http, metrics, lambda: None)  # type: ignore[arg-type,return-value]
            try:
                await delivery._send_kafka(transition, event)
            finally:
                await delivery.close()

    asyncio.run(deliver())
    values = asyncio.run(
        _values(admin_of(cluster, certificates), settings.topic_alerts, transition.encode(), 20)
    )
    assert any(orjson.loads(v)["transition_id"] == transition for v in values)


@KAFKA_ONLY
def test_a_metrics_worker_over_tls_dead_letters_what_it_cannot_count(
    cluster: KafkaCluster, certificates: Certificates, database_url: str, tmp_path: Path
) -> None:
    """A record without its time, written by the ingest principal over TLS: the worker,
    over TLS too, sends it to the dead-letter topic with Faust's producer."""
    ingest = as_user(cluster, "ingest", PASSWORDS["ingest"], certificates.ca)
    env = service_env(ingest, database_url)
    port = free_port()
    env.update(
        {
            "EGOV_EMBEDDED_BROKER": "false",
            "EGOV_RECORD_SIGNING_KEY": secrets.token_hex(32),
            "EGOV_KAFKA_TLS_CA_FILE": str(certificates.ca),
            "EGOV_METRICS_APP_ID": GROUP,
            "EGOV_METRICS_DATA_DIR": str(tmp_path / "metrics"),
            "EGOV_METRICS_WEB_PORT": str(port),
            "EGOV_KAFKA_SASL_USERNAME": "metrics",
            "EGOV_KAFKA_SASL_PASSWORD": PASSWORDS["metrics"],
        }
    )
    bad_id = f"tls-dead-{secrets.token_hex(4)}"
    bad = document(bad_id, UNIT)
    del bad["time"]
    log = tmp_path / "metrics.log"
    with running_service(["metrics"], env, port, log):

        async def write() -> None:
            from services.common.kafka import make_producer

            producer = make_producer(ingest)
            await producer.start()
            try:
                await producer.send_and_wait(
                    ingest.topic_documents, orjson.dumps(bad), key=PROVINCE.encode()
                )
            finally:
                await producer.stop()

        asyncio.run(write())
        values = asyncio.run(
            _values(admin_of(cluster, certificates), ingest.topic_dead_letter, bad_id.encode(), 90)
        )
    assert any(bad_id.encode() in v for v in values), log.read_text()[-4000:]
