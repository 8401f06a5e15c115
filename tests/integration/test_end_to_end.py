"""An event POSTed to ingest changes the KPI figures the metrics worker exports."""

from __future__ import annotations

import asyncio
import copy
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
from services.common.kafka import ensure_topics
from services.common.settings import CommonSettings
from services.ingest.keystore import create_key
from tests.integration.processes import running_service, service_env

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
        key = await create_key(conn, "e2e", [unit], ["vn.egov.document.issued"])
    finally:
        await conn.close()
    return key.token


def test_posted_event_changes_exported_figure(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    # Phường Bắc Kạn (Thái Nguyên, 19) in today's two-level hierarchy.
    unit, province = "01843", "19"
    asyncio.run(ensure_topics(common_settings))
    token = asyncio.run(_key(database_url, province))
    env = service_env(common_settings, database_url)
    ingest_port, metrics_port = free_port(), free_port()
    env["EGOV_INGEST_PORT"] = str(ingest_port)
    env["EGOV_METRICS_WEB_PORT"] = str(metrics_port)
    env["EGOV_METRICS_APP_ID"] = f"e2e-{uuid.uuid4().hex[:8]}"
    env["EGOV_METRICS_DATA_DIR"] = str(tmp_path / "metrics")
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
        items = httpx.get(metrics + "/v1/kpis", params={"unit": unit, "kpi": KPI}).json()["items"]
        assert [(i["numerator"], i["denominator"], i["ratio"]) for i in items] == [(1, 1, 1.0)]
