"""An event POSTed to ingest reaches the metrics worker through the broker."""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.common.broker import free_port
from services.common.contract import Contract
from services.common.kafka import ensure_topics
from services.common.settings import CommonSettings
from tests.integration.processes import running_service, service_env

pytestmark = pytest.mark.integration


def unit_events(metrics_text: str, unit: str, event_type: str) -> float:
    for family in text_string_to_metric_families(metrics_text):
        if family.name != "egov_unit_events":
            continue
        for sample in family.samples:
            if sample.labels == {"unit": unit, "type": event_type} and sample.name.endswith(
                "_total"
            ):
                return sample.value
    return 0.0


def document_event(unit: str) -> dict[str, object]:
    example = Contract.load().examples("vn.egov.document.issued", "valid")[0][1]
    event = copy.deepcopy(example)
    event["id"] = str(uuid.uuid4())
    event["unit"] = unit
    event["time"] = datetime.now(UTC).isoformat()
    return event


def test_posted_event_changes_exported_figure(
    common_settings: CommonSettings, tmp_path: Path
) -> None:
    asyncio.run(ensure_topics(common_settings))
    env = service_env(common_settings)
    ingest_port, metrics_port = free_port(), free_port()
    env["EGOV_INGEST_PORT"] = str(ingest_port)
    env["EGOV_METRICS_WEB_PORT"] = str(metrics_port)
    env["EGOV_METRICS_APP_ID"] = f"e2e-{uuid.uuid4().hex[:8]}"
    env["EGOV_METRICS_DATA_DIR"] = str(tmp_path / "metrics")
    with (
        running_service(["ingest"], env, ingest_port, tmp_path / "ingest.log") as ingest,
        running_service(["metrics"], env, metrics_port, tmp_path / "metrics.log") as metrics,
    ):
        # Phường Bắc Kạn (Thái Nguyên, 19) in today's two-level hierarchy.
        unit, province, event_type = "01843", "19", "vn.egov.document.issued"
        before = unit_events(httpx.get(metrics + "/metrics").text, unit, event_type)
        response = httpx.post(
            ingest + "/v1/events",
            content=orjson.dumps(document_event(unit)),
            headers={"content-type": "application/cloudevents+json"},
        )
        assert response.status_code == 202, response.text
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            text = httpx.get(metrics + "/metrics").text
            if unit_events(text, unit, event_type) == before + 1:
                break
            time.sleep(0.5)
        else:
            log = (tmp_path / "metrics.log").read_text()[-3000:]
            raise AssertionError(f"the figure did not change within 90 s\n{log}")
        # The same event also counts for its province: rolled up, not averaged.
        assert unit_events(text, province, event_type) >= 1
