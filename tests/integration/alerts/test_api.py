"""The HTTP API: alerts with history, operator-authorized acks and comments, targets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.alerts import operators
from services.alerts.app import create_app
from tests.integration.alerts.conftest import ServiceFactory
from tests.integration.alerts.harness import FakeMetrics

pytestmark = pytest.mark.integration


async def test_ack_comment_and_targets_need_an_operator_token(
    make_service: ServiceFactory, fake_metrics: FakeMetrics
) -> None:
    svc = make_service()
    await svc.connect()
    try:
        async with svc.pool.acquire() as conn:  # type: ignore[union-attr]
            token = await operators.create(conn, "trực ban Sở TT&TT", ["19"])
        fake_metrics.set("c1", 80, 100)
        now = datetime.now(UTC)
        for i in range(2):
            await svc.evaluate_once(now + timedelta(seconds=2 * i))
        await svc.flush()
        transport = httpx.ASGITransport(app=create_app(svc, run_loops=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as client:
            listed = (await client.get("/v1/alerts", params={"unit": "c1"})).json()["items"]
            assert [a["state"] for a in listed] == ["firing"]
            alert_id = listed[0]["id"]
            assert (await client.post(f"/v1/alerts/{alert_id}/ack")).status_code == 401
            bad = {"authorization": "Bearer egovop_wrong"}
            assert (await client.post(f"/v1/alerts/{alert_id}/ack", headers=bad)).status_code == 401
            auth = {"authorization": f"Bearer {token}"}
            acked = await client.post(f"/v1/alerts/{alert_id}/ack", headers=auth,
                                      json={"comment": "đang xử lý"})  # fmt: skip
            assert acked.status_code == 200
            assert acked.json()["acked_by"] == "trực ban Sở TT&TT"
            await client.post(f"/v1/alerts/{alert_id}/comments", headers=auth,
                              json={"comment": "gọi xã"})  # fmt: skip
            detail = (await client.get(f"/v1/alerts/{alert_id}", headers=auth)).json()
            assert [h["to"] for h in detail["history"]] == ["pending", "firing"]
            assert detail["history"][1]["values"]["denominator"] == 100
            assert [n["kind"] for n in detail["notes"]] == ["ack", "comment"]
            assert (await client.get("/v1/alerts/not-a-uuid")).status_code == 404

            put = await client.put("/v1/targets/01843/document_signing", headers=auth,
                                   json={"target": 0.9, "reason": "xã miền núi"})  # fmt: skip
            assert put.status_code == 200
            too_high = {"target": 1.5, "reason": "x"}
            refused = await client.put("/v1/targets/01843/document_signing", headers=auth,
                                       json=too_high)  # fmt: skip
            assert refused.status_code == 422
            items = (await client.get("/v1/targets")).json()["items"]
            assert [(i["unit"], i["kpi"], i["target"]) for i in items] == [
                ("01843", "document_signing", 0.9)
            ]
            gone = await client.delete("/v1/targets/01843/document_signing", headers=auth,
                                       params={"reason": "hết hạn"})  # fmt: skip
            assert gone.status_code == 204
            assert (await client.get("/v1/targets")).json()["items"] == []
        async with svc.pool.acquire() as conn:  # type: ignore[union-attr]
            history = await conn.fetch(
                "SELECT action, changed_by FROM kpi_target_override_history ORDER BY id"
            )
        assert [(h["action"], h["changed_by"]) for h in history] == [
            ("set", "trực ban Sở TT&TT"), ("unset", "trực ban Sở TT&TT")
        ]  # fmt: skip
    finally:
        await svc.close()
