"""An event POSTed to ingest changes the KPI figures the metrics worker exports."""

from __future__ import annotations

import asyncio
import copy
import secrets
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.common.broker import free_port
from services.common.contract import Contract
from services.common.kafka import ensure_topics, make_producer
from services.common.kpis import KpiCatalogue
from services.common.settings import CommonSettings
from services.common.signing import VALIDATED_HEADER, RecordSigner
from services.common.summaries import SummaryReader, record_signer
from services.common.units import UnitRegistry
from services.ingest.keystore import create_key
from tests.integration.processes import read_topic, running_service, service_env

pytestmark = pytest.mark.integration
KPI = "document_signing"


def denominator(metrics_text: str, unit: str, window: str = "day") -> float:
    for family in text_string_to_metric_families(metrics_text):
        if family.name != "egov_kpi_denominator":
            continue
        for sample in family.samples:
            if sample.labels == {"kpi": KPI, "unit": unit, "window": window}:
                return sample.value
    return 0.0


def document_event(unit: str) -> dict[str, object]:
    example = Contract.load().examples("vn.egov.document.issued", "valid")[0][1]
    event = copy.deepcopy(example)
    event["id"] = str(uuid.uuid4())
    event["unit"] = unit
    event["time"] = datetime.now(UTC).isoformat()
    event["data"] = {"document_id": "e2e", "electronic": True, "signed": True}
    return event


async def _key(database_url: str, unit: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        key = await create_key(conn, "e2e", [unit], ["vn.egov.document.issued"], sources=["https:"])
    finally:
        await conn.close()
    return key.token


def pipeline_env(
    settings: CommonSettings, database_url: str, tmp_path: Path, **extra: str
) -> tuple[dict[str, str], int, int]:
    """Topics created, and the environment of an ingest and a metrics process: (env, ports)."""
    asyncio.run(ensure_topics(settings))
    env = service_env(settings, database_url)
    ingest_port, metrics_port = free_port(), free_port()
    env["EGOV_INGEST_PORT"] = str(ingest_port)
    env["EGOV_METRICS_WEB_PORT"] = str(metrics_port)
    env["EGOV_METRICS_APP_ID"] = f"e2e-{uuid.uuid4().hex[:8]}"
    env["EGOV_METRICS_DATA_DIR"] = str(tmp_path / "metrics")
    env.update(extra)
    return env, ingest_port, metrics_port


def test_posted_event_changes_exported_figure(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    # Phường Bắc Kạn (Thái Nguyên, 19) in today's two-level hierarchy.
    unit, province = "01843", "19"
    token = asyncio.run(_key(database_url, province))
    env, ingest_port, metrics_port = pipeline_env(common_settings, database_url, tmp_path)
    with (
        running_service(["ingest"], env, ingest_port, tmp_path / "ingest.log") as ingest,
        running_service(["metrics"], env, metrics_port, tmp_path / "metrics.log") as metrics,
    ):
        before = denominator(httpx.get(metrics + "/metrics").text, unit)
        response = httpx.post(
            ingest + "/v1/events",
            content=orjson.dumps(document_event(unit)),
            headers={
                "content-type": "application/cloudevents+json",
                "authorization": f"Bearer {token}",
            },
        )
        assert response.status_code == 202, response.text
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = httpx.get(metrics + "/metrics").text
            if denominator(text, unit) == before + 1:
                break
            time.sleep(0.3)
        else:
            log = (tmp_path / "metrics.log").read_text()[-3000:]
            raise AssertionError(f"the figure did not change within 60 s\n{log}")
        # The same event also counts for its province: rolled up, not averaged.
        assert denominator(text, province) == before + 1
        # /v1/kpis answers from the snapshot the worker publishes (about every second).
        deadline = time.monotonic() + 10
        while True:
            answer = httpx.get(metrics + "/v1/kpis", params={"unit": unit, "kpi": KPI}).json()
            if answer["items"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        items = answer["items"]
        assert [(i["numerator"], i["denominator"], i["ratio"]) for i in items] == [(1, 1, 1.0)]


def counter_total(metrics_text: str, name: str, **labels: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics_text)
        if family.name == name
        for sample in family.samples
        if sample.name.endswith("_total") and labels.items() <= sample.labels.items()
    )


async def _publish(
    settings: CommonSettings, value: bytes, headers: list[tuple[str, bytes]]
) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic_documents, value, key=b"19", headers=headers)
    finally:
        await producer.stop()


def test_signed_records_are_trusted_and_forged_ones_validated(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    """With a signing key, ingest's records carry its signature and count without a second
    validation; a record published straight to Kafka with a forged signature is validated:
    its invalid event is dead-lettered with the reason, its valid one counted. Ingest's
    batch record also carries its summary (counted by groups, services/common/summaries.py)."""
    unit = "01843"
    token = asyncio.run(_key(database_url, "19"))
    key = secrets.token_hex(32)  # strong: refused otherwise outside the embedded broker
    env, ingest_port, metrics_port = pipeline_env(
        common_settings, database_url, tmp_path, EGOV_RECORD_SIGNING_KEY=key
    )
    with (
        running_service(["ingest"], env, ingest_port, tmp_path / "ingest.log") as ingest,
        running_service(["metrics"], env, metrics_port, tmp_path / "metrics.log") as metrics,
    ):
        events = [document_event(unit) for _ in range(3)]
        response = httpx.post(
            ingest + "/v1/events",
            content=orjson.dumps(events),
            headers={
                "content-type": "application/cloudevents-batch+json",
                "authorization": f"Bearer {token}",
            },
        )
        assert response.status_code == 202, response.text
        signer = RecordSigner(key.encode(), Contract.load().fingerprint)
        [packed] = asyncio.run(read_topic(common_settings, common_settings.topic_documents))
        record_headers = [(k, bytes(v)) for k, v in packed.headers]
        where = {"topic": common_settings.topic_documents, "key": packed.key}
        assert signer.verifies(packed.value, record_headers, **where)
        # And its summary, which a worker with the same contract, KPIs and units trusts.
        contract = Contract.load()
        worker_signer = record_signer(
            CommonSettings(record_signing_key=key),
            contract,
            KpiCatalogue.load(event_types=contract.event_types),
            UnitRegistry.from_dir(),
        )
        assert worker_signer is not None
        summary = worker_signer.verified_summary(packed.value, record_headers, **where)
        assert summary is not None and len(SummaryReader().read(summary).index) == 3

        valid, invalid = document_event(unit), document_event(unit)
        invalid["x_unknown"] = "not in the contract"
        forged = orjson.dumps([valid, invalid])
        asyncio.run(_publish(common_settings, forged, [(VALIDATED_HEADER, b"0" * 64)]))

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = httpx.get(metrics + "/metrics").text
            rejected = counter_total(text, "egov_events_dead_lettered", reason="schema-violation")
            if denominator(text, unit) == 4 and rejected == 1:
                break
            time.sleep(0.3)
        else:
            log = (tmp_path / "metrics.log").read_text()[-3000:]
            raise AssertionError(f"expected 4 counted and 1 dead-lettered\n{text[-2000:]}\n{log}")
        # Ingest's batch was counted by its summary, the forged record validated in full.
        assert counter_total(text, "egov_metrics_records", path="summary") == 1
        assert counter_total(text, "egov_metrics_records", path="validated") == 1
        [dead] = asyncio.run(read_topic(common_settings, common_settings.topic_dead_letter))
        headers = dict(dead.headers)
        assert headers["dlq_reason"] == b"schema-violation"
        assert b"x_unknown" in headers["dlq_detail"]
        assert orjson.loads(dead.value)["id"] == invalid["id"]
