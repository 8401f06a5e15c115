"""Review 51 (adversarial security review; fixed 2026-12-05): the alerts API bounds its bodies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.alerts import operators
from services.alerts.app import AlertsService, create_app
from tests.integration.alerts.conftest import ServiceFactory, make_service  # noqa: F401
from tests.integration.alerts.harness import FakeMetrics, fake_metrics  # noqa: F401

pytestmark = pytest.mark.integration

HUGE = 16 * 1024 * 1024
"""A request body far above anything an acknowledgement, comment or target needs (ingest
itself refuses more than 4 MiB, EGOV_MAX_BODY_BYTES)."""


async def _firing_alert(svc: AlertsService, fake_metrics: FakeMetrics) -> None:  # noqa: F811
    fake_metrics.set("c1", 80, 100)
    now = datetime.now(UTC)
    for i in range(2):
        await svc.evaluate_once(now + timedelta(seconds=2 * i))
    await svc.flush()


async def test_alerts_api_refuses_an_oversized_comment_and_keeps_earlier_notes(
    make_service: ServiceFactory,  # noqa: F811
    fake_metrics: FakeMetrics,  # noqa: F811
) -> None:
    svc = make_service()
    await svc.connect()
    try:
        async with svc.pool.acquire() as conn:  # type: ignore[union-attr]
            token = await operators.create(conn, "trực ban 19", ["19"])
        await _firing_alert(svc, fake_metrics)
        transport = httpx.ASGITransport(app=create_app(svc, run_loops=False))
        auth = {"authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as client:
            alert_id = (await client.get("/v1/alerts", params={"unit": "c1"})).json()["items"][0][
                "id"
            ]
            ok = await client.post(
                f"/v1/alerts/{alert_id}/comments", headers=auth, json={"comment": "gọi xã"}
            )
            assert ok.status_code == 200
            big = await client.post(
                f"/v1/alerts/{alert_id}/comments", headers=auth, json={"comment": "x" * HUGE}
            )
            # The clear error: too large, said as a problem document.
            assert big.status_code == 413, big.status_code
            assert big.headers["content-type"].startswith("application/problem+json")
            detail = (await client.get(f"/v1/alerts/{alert_id}", headers=auth)).json()
        # Nothing accepted was lost; nothing oversized was stored.
        assert [n["body"] for n in detail["notes"]] == ["gọi xã"]
    finally:
        await svc.close()


async def test_alerts_api_refuses_an_oversized_target_body_before_anything_else(
    make_service: ServiceFactory,  # noqa: F811
) -> None:
    svc = make_service()
    await svc.connect()
    try:
        async with svc.pool.acquire() as conn:  # type: ignore[union-attr]
            token = await operators.create(conn, "trực ban 19", ["19"])
        transport = httpx.ASGITransport(app=create_app(svc, run_loops=False))
        auth = {"authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as client:
            kept = await client.put(
                "/v1/targets",
                headers=auth,
                json={"province": "19", "kpi": "document_signing", "target": 0.9, "reason": "KH"},
            )
            assert kept.status_code == 200
            big = await client.put(
                "/v1/targets",
                headers=auth,
                json={
                    "province": "19",
                    "level": "commune",
                    "kpi": "document_signing",
                    "target": 0.9,
                    "reason": "x" * HUGE,
                },
            )
            assert big.status_code == 413, big.status_code
            items = (await client.get("/v1/targets", headers=auth)).json()["items"]
        assert [(i["province"], i["level"], i["reason"]) for i in items] == [("19", None, "KH")]
    finally:
        await svc.close()
