"""INTEGRATION WITH THE REAL METRICS WORKER (docs/metrics-api.md must be served).

Real ingest and metrics processes on the real broker; a commune publishes unsigned
documents; the alerts service reads the worker's /v1/kpis and fires KpiBelowTarget
for it. Skipped, saying why, only while a worker without /v1/kpis is checked out.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import orjson
import pytest

from services.alerts.model import State
from services.alerts.service import AlertsService
from services.alerts.settings import AlertsSettings
from services.common.broker import free_port
from services.common.calendar import WorkingCalendar
from services.common.kafka import ensure_topics
from services.common.settings import CommonSettings
from tests.integration.processes import running_service, service_env
from tests.integration.test_end_to_end import _key, document_event

pytestmark = pytest.mark.integration

UNIT = "01843"  # Phường Bắc Kạn, Thái Nguyên (19)


async def _fire(settings: AlertsSettings) -> list[tuple[str, str, str, State]]:
    svc = AlertsService(settings, calendar=WorkingCalendar(always=True))
    await svc.connect()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            fired = [
                (t.alert.key.condition, t.alert.key.kpi, t.alert.key.unit, t.to_state)
                for t in await svc.evaluate_once()
                if t.alert.key.unit == UNIT and t.to_state is State.FIRING
            ]
            if fired:
                await svc.flush()
                return fired
            await asyncio.sleep(0.5)
        return []
    finally:
        await svc.close()


def test_alerts_fire_from_the_real_metrics_worker(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    asyncio.run(ensure_topics(common_settings))
    token = asyncio.run(_key(database_url, "19"))
    env = service_env(common_settings, database_url)
    ingest_port, metrics_port = free_port(), free_port()
    env |= {
        "EGOV_INGEST_PORT": str(ingest_port), "EGOV_METRICS_WEB_PORT": str(metrics_port),
        "EGOV_METRICS_APP_ID": f"alerts-{uuid.uuid4().hex[:8]}",
        "EGOV_METRICS_DATA_DIR": str(tmp_path / "metrics"),
    }  # fmt: skip
    with (
        running_service(["ingest"], env, ingest_port, tmp_path / "ingest.log") as ingest,
        running_service(["metrics"], env, metrics_port, tmp_path / "metrics.log") as metrics,
    ):
        events = []
        for _ in range(25):  # above min_volume 20; all electronic, none signed: 0%
            event = document_event(UNIT)
            event["data"] = {"document_id": uuid.uuid4().hex, "electronic": True, "signed": False}
            events.append(event)
        response = httpx.post(
            f"{ingest}/v1/events", content=orjson.dumps(events),
            headers={"content-type": "application/cloudevents-batch+json",
                     "authorization": f"Bearer {token}"},
        )  # fmt: skip
        assert response.status_code == 202, response.text
        settings = AlertsSettings(
            database_url=database_url, metrics_urls=[metrics], ingest_url="",
            alert_kafka_enabled=False, alert_for_s=0, alert_burn_enabled=False,
        )  # fmt: skip
        fired = asyncio.run(_fire(settings))
    assert ("KpiBelowTarget", "document_signing", UNIT, State.FIRING) in fired
