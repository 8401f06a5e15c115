"""Targets and operators through the real HTTP API on the real PostgreSQL (issues 15, 16).

Operators are scoped to provinces; an override always names its KPI; unit and KPI ids
are checked; a province+level override reaches the communes of that province only; a
dated override switches on its Vietnam day; the metrics workers read what the API wrote.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.alerts import operators
from services.alerts.app import create_app
from services.alerts.service import AlertsService
from services.common.kpis import KpiCatalogue
from services.common.units import UnitRegistry
from services.metrics import store as metrics_store
from services.metrics.targets import Targets
from tests.integration.alerts.conftest import ServiceFactory
from tests.integration.alerts.harness import FakeMetrics

pytestmark = pytest.mark.integration

THAI_NGUYEN, THANH_HOA = "19", "38"
BAC_KAN_WARD = "01843"  # a commune (phường) of Thái Nguyên since 2025-07-01
HAM_RONG_WARD = "14758"  # a commune (phường) of Thanh Hóa
SIGNING = "document_signing"
PROBLEM = "application/problem+json"


class Api:
    """The service, its HTTP client and three operators: Thái Nguyên, Thanh Hóa, national."""

    def __init__(self, svc: AlertsService, client: httpx.AsyncClient, tokens: dict[str, str]):
        self.svc = svc
        self.client = client
        self.tokens = tokens

    def auth(self, who: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.tokens[who]}"}

    async def overrides(self) -> list[tuple[Any, ...]]:
        items = (await self.client.get("/v1/targets")).json()["items"]
        return [(i["unit"], i["province"], i["level"], i["kpi"], i["target_bp"]) for i in items]

    async def effective(self, unit: str, day: str | None = None) -> dict[str, Any]:
        params = {"unit": unit, "kpi": SIGNING} | ({"day": day} if day else {})
        answer = await self.client.get("/v1/targets/effective", params=params)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


@pytest.fixture
async def api(make_service: ServiceFactory) -> AsyncIterator[Api]:
    svc = make_service()
    await svc.connect()
    try:
        async with svc.pool.acquire() as conn:  # type: ignore[union-attr]
            tokens = {
                "tn": await operators.create(conn, "trực ban Thái Nguyên", [THAI_NGUYEN]),
                "th": await operators.create(conn, "trực ban Thanh Hóa", [THANH_HOA]),
                "bo": await operators.create(conn, "Bộ TT&TT", national=True),
            }
        transport = httpx.ASGITransport(app=create_app(svc, run_loops=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as client:
            yield Api(svc, client, tokens)
    finally:
        await svc.close()


def problem_of(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM)
    body = answer.json()
    assert body["status"] == status
    detail: str = body["detail"]
    return detail


async def test_an_operator_of_one_province_cannot_change_anothers_targets(api: Api) -> None:
    mine = {"target": 0.9, "reason": "kế hoạch tỉnh 2026"}
    put = await api.client.put(f"/v1/targets/{HAM_RONG_WARD}/{SIGNING}", headers=api.auth("th"),
                               json=mine)  # fmt: skip
    assert put.status_code == 200, put.text
    before = await api.overrides()

    hostile = {"target": 0.0, "reason": "tắt cảnh báo"}
    for attempt in (
        api.client.put(f"/v1/targets/{HAM_RONG_WARD}/{SIGNING}", headers=api.auth("tn"),
                       json=hostile),
        api.client.put("/v1/targets", headers=api.auth("tn"),
                       json={**hostile, "province": THANH_HOA, "kpi": SIGNING}),
        api.client.put("/v1/targets", headers=api.auth("tn"),
                       json={**hostile, "province": THANH_HOA, "level": "commune", "kpi": SIGNING}),
        api.client.delete(f"/v1/targets/{HAM_RONG_WARD}/{SIGNING}", headers=api.auth("tn"),
                          params={"reason": "x"}),
    ):  # fmt: skip
        detail = problem_of(await attempt, 403)
        assert f"province {THANH_HOA}" in detail and "provinces 19" in detail
    detail = problem_of(
        await api.client.put(f"/v1/targets/{HAM_RONG_WARD}/{SIGNING}", headers=api.auth("tn"),
                             json=hostile), 403)  # fmt: skip
    assert HAM_RONG_WARD in detail and "trực ban Thái Nguyên" in detail

    # Nothing the hostile operator sent was kept; the Thanh Hóa target stands.
    assert await api.overrides() == before == [(HAM_RONG_WARD, None, None, SIGNING, 9000)]
    assert (await api.effective(HAM_RONG_WARD))["target_bp"] == 9000
    async with api.svc.pool.acquire() as conn:  # type: ignore[union-attr]
        changers = await conn.fetch("SELECT changed_by FROM kpi_target_override_history")
    assert [r["changed_by"] for r in changers] == ["trực ban Thanh Hóa"]

    # The ministry's national scope reaches every province.
    url = f"/v1/targets/{HAM_RONG_WARD}/{SIGNING}"
    national = await api.client.put(url, headers=api.auth("bo"), json=mine | {"target": 0.95})
    assert national.status_code == 200, national.text


async def test_an_override_without_a_kpi_is_refused_and_nothing_changes(api: Api) -> None:
    kept = {"target": 0.9, "reason": "xã miền núi"}
    assert (await api.client.put(f"/v1/targets/{BAC_KAN_WARD}/{SIGNING}", headers=api.auth("tn"),
                                 json=kept)).status_code == 200  # fmt: skip
    before = await api.overrides()
    every = {"target": 0.5, "reason": "mọi chỉ tiêu"}
    detail = problem_of(
        await api.client.put(f"/v1/targets/{BAC_KAN_WARD}", headers=api.auth("tn"), json=every),
        400,
    )
    assert "names its KPI" in detail and SIGNING in detail
    detail = problem_of(
        await api.client.put("/v1/targets", headers=api.auth("tn"),
                             json=every | {"unit": BAC_KAN_WARD}), 400)  # fmt: skip
    assert "names its KPI" in detail
    detail = problem_of(
        await api.client.delete(f"/v1/targets/{BAC_KAN_WARD}", headers=api.auth("tn"),
                                params={"reason": "x"}), 400)  # fmt: skip
    assert "names its KPI" in detail
    assert await api.overrides() == before == [(BAC_KAN_WARD, None, None, SIGNING, 9000)]


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        (f"/v1/targets/99999/{SIGNING}", {}, "unknown unit '99999'"),
        ("/v1/targets/c1/document_signing", {}, "unknown unit 'c1'"),  # the old test's fake code
        (f"/v1/targets/{BAC_KAN_WARD}/signing_rate", {}, "unknown KPI 'signing_rate'"),
        ("/v1/targets", {"province": "06", "kpi": SIGNING}, "unknown province '06'"),  # pre-2025
        ("/v1/targets", {"province": BAC_KAN_WARD, "kpi": SIGNING}, "unknown province '01843'"),
        ("/v1/targets", {"province": "19", "level": "xã", "kpi": SIGNING}, "unknown level 'xã'"),
    ],
)
async def test_an_unknown_unit_kpi_or_province_is_a_400_naming_it(
    api: Api, path: str, body: dict[str, str], named: str
) -> None:
    answer = await api.client.put(path, headers=api.auth("bo"),
                                  json={"target": 0.9, "reason": "thử"} | body)  # fmt: skip
    assert named in problem_of(answer, 400)
    assert await api.overrides() == []


async def test_a_province_and_level_override_reaches_its_communes_only(api: Api) -> None:
    communes_of_19 = {"province": THAI_NGUYEN, "level": "commune", "kpi": SIGNING,
                      "target_bp": 9500, "reason": "xã, phường của tỉnh"}  # fmt: skip
    put = await api.client.put("/v1/targets", headers=api.auth("tn"), json=communes_of_19)
    assert put.status_code == 200, put.text

    here = await api.effective(BAC_KAN_WARD)
    assert (here["target_bp"], here["origin"], here["province"]) == (9500, "province_level", "19")
    elsewhere = await api.effective(HAM_RONG_WARD)
    assert (elsewhere["target_bp"], elsewhere["origin"]) == (10000, "default")
    assert elsewhere["source"]["id"] == "ct-02-2019-vpcp-2020"
    department = await api.effective("19-SNV")  # same province, another level
    assert (department["target_bp"], department["origin"]) == (10000, "default")

    # The metrics workers read the same rows and resolve them with the same function.
    async with api.svc.pool.acquire() as conn:  # type: ignore[union-attr]
        rows = await metrics_store.target_overrides(conn)
    registry = UnitRegistry.from_dir()
    targets = Targets(KpiCatalogue.load(), registry)
    targets.overrides = rows or []
    on = datetime(2026, 12, 4).date()
    assert targets.target(registry.get(BAC_KAN_WARD, "2025"), SIGNING, on) == 0.95
    assert targets.target(registry.get(HAM_RONG_WARD, "2025"), SIGNING, on) == 1.0
    assert targets.target(registry.get("19-SNV", "2025"), SIGNING, on) == 1.0

    # A unit override beats it; a province-wide one does not.
    await api.client.put(f"/v1/targets/{BAC_KAN_WARD}/{SIGNING}", headers=api.auth("tn"),
                         json={"target": 0.8, "reason": "xã mới sáp nhập"})  # fmt: skip
    await api.client.put("/v1/targets", headers=api.auth("tn"),
                         json={"province": THAI_NGUYEN, "kpi": SIGNING, "target": 0.7,
                               "reason": "toàn tỉnh"})  # fmt: skip
    assert (await api.effective(BAC_KAN_WARD))["origin"] == "unit"
    assert (await api.effective("01840"))["origin"] == "province_level"
    assert (await api.effective("19-SNV"))["target_bp"] == 7000


async def test_a_dated_override_switches_on_its_vietnam_day(api: Api) -> None:
    dated = {"target": 0.9, "reason": "kế hoạch từ 10/12", "valid_from": "2026-12-10",
             "valid_until": "2026-12-31"}  # fmt: skip
    put = await api.client.put(f"/v1/targets/{BAC_KAN_WARD}/{SIGNING}", headers=api.auth("tn"),
                               json=dated)  # fmt: skip
    assert put.status_code == 200, put.text
    assert (await api.effective(BAC_KAN_WARD, "2026-12-09"))["target_bp"] == 10000
    assert (await api.effective(BAC_KAN_WARD, "2026-12-10"))["target_bp"] == 9000
    assert (await api.effective(BAC_KAN_WARD, "2026-12-31"))["target_bp"] == 9000
    assert (await api.effective(BAC_KAN_WARD, "2027-01-01"))["target_bp"] == 10000

    # "Today" is the Vietnam day: 17:30 UTC on the 9th is 00:30 on the 10th in Vietnam.
    api.svc.clock = lambda: datetime(2026, 12, 9, 16, 59, tzinfo=UTC)
    assert (await api.effective(BAC_KAN_WARD))["target_bp"] == 10000
    api.svc.clock = lambda: datetime(2026, 12, 9, 17, 30, tzinfo=UTC)
    assert (await api.effective(BAC_KAN_WARD))["target_bp"] == 9000

    backwards = dated | {"valid_from": "2027-01-10", "valid_until": "2027-01-01"}
    answer = await api.client.put(f"/v1/targets/{BAC_KAN_WARD}/{SIGNING}",
                                  headers=api.auth("tn"), json=backwards)  # fmt: skip
    assert "before" in problem_of(answer, 422)
    assert len(await api.overrides()) == 1


async def test_acks_and_comments_outside_the_scope_are_403_and_names_need_a_token(
    api: Api, fake_metrics: FakeMetrics
) -> None:
    fake_metrics.set("c1", 80, 100)  # conftest's directory: c1 is a commune of province 19
    now = datetime.now(UTC)
    for i in range(2):
        await api.svc.evaluate_once(now + timedelta(seconds=2 * i))
    await api.svc.flush()
    [alert] = (await api.client.get("/v1/alerts", params={"unit": "c1"})).json()["items"]
    url = f"/v1/alerts/{alert['id']}"

    for action, body in (("ack", {}), ("comments", {"comment": "đóng giúp"})):
        detail = problem_of(
            await api.client.post(f"{url}/{action}", headers=api.auth("th"), json=body), 403
        )
        assert "unit c1" in detail and "province 19" in detail and "provinces 38" in detail
    assert (await api.client.post(f"{url}/ack", headers=api.auth("tn"),
                                  json={"comment": "đang gọi xã"})).status_code == 200  # fmt: skip

    async with api.svc.pool.acquire() as conn:  # type: ignore[union-attr]
        notes = await conn.fetch("SELECT operator FROM alert_notes")
    assert [n["operator"] for n in notes] == ["trực ban Thái Nguyên"]

    anonymous = (await api.client.get(url)).json()
    assert anonymous["acked_at"] and anonymous["acked_by"] is None and anonymous["notes"] is None
    listed = (await api.client.get("/v1/alerts", params={"unit": "c1"})).json()["items"]
    assert listed[0]["acked_by"] is None
    other = (await api.client.get(url, headers=api.auth("th"))).json()
    assert other["acked_by"] is None and other["notes"] is None
    mine = (await api.client.get(url, headers=api.auth("tn"))).json()
    assert mine["acked_by"] == "trực ban Thái Nguyên"
    assert [(n["operator"], n["body"]) for n in mine["notes"]] == [
        ("trực ban Thái Nguyên", "đang gọi xã")
    ]
    bad = {"authorization": "Bearer egovop_not-a-token"}
    assert problem_of(await api.client.get(url, headers=bad), 401)


async def test_a_sent_token_unknown_or_revoked_is_a_401_on_every_route(api: Api) -> None:
    # docs/targets.md: "A token that is sent but unknown or revoked is a 401 on every
    # request, reads included." Every route of the API, read from the app itself, so a
    # route added later is checked too (GET /v1/targets/effective once answered 200).
    async with api.svc.pool.acquire() as conn:  # type: ignore[union-attr]
        await operators.revoke(conn, "trực ban Thanh Hóa")
    fill = {"{id}": "00000000-0000-4000-8000-000000000000", "{unit}": THANH_HOA, "{kpi}": SIGNING}
    app = create_app(api.svc, run_loops=False)
    asked = []
    for route in app.routes:
        path: str = getattr(route, "path", "")
        if not path.startswith("/v1/"):
            continue
        for key, value in fill.items():
            path = path.replace(key, value)
        for method in sorted(set(getattr(route, "methods", None) or ()) - {"HEAD"}):
            for token in ("egovop_never-issued", api.tokens["th"]):
                headers = {"authorization": f"Bearer {token}"}
                answer = await api.client.request(
                    method, path, params={"unit": THANH_HOA, "kpi": SIGNING}, headers=headers
                )
                detail = problem_of(answer, 401)
                assert "unknown or revoked" in detail, (method, path)
                assert answer.headers["www-authenticate"] == "Bearer"
            asked.append(f"{method} {path}")
    assert "GET /v1/targets/effective" in asked and len(asked) >= 10, asked
    # Without a token the reads still answer.
    assert (await api.client.get("/v1/alerts")).status_code == 200
    assert (await api.effective(THANH_HOA))["unit"] == THANH_HOA


async def test_a_district_override_from_before_the_reform_lists_and_unsets_but_is_not_set(
    api: Api,
) -> None:
    """No district exists since the 2025 reform (review 78): a new district override is a
    400 naming today's levels; one stored before still lists, and can be removed."""
    async with api.svc.pool.acquire() as conn:  # type: ignore[union-attr]
        await conn.execute(
            "INSERT INTO kpi_target_overrides (province, level, kpi, target_bp, changed_by, "
            "reason) VALUES ($1, 'district', $2, 9000, 'sở', 'kế hoạch 2024')",
            THAI_NGUYEN, SIGNING,
        )  # fmt: skip
    stored = [(None, THAI_NGUYEN, "district", SIGNING, 9000)]
    assert await api.overrides() == stored

    districts = {"province": THAI_NGUYEN, "level": "district", "kpi": SIGNING}
    put = await api.client.put("/v1/targets", headers=api.auth("tn"),
                               json={**districts, "target": 0.95, "reason": "x"})  # fmt: skip
    detail = problem_of(put, 400)
    assert "unknown level 'district'" in detail and "province, commune, department" in detail
    assert await api.overrides() == stored

    gone = await api.client.delete("/v1/targets", headers=api.auth("tn"),
                                   params={**districts, "reason": "không còn huyện"})  # fmt: skip
    assert gone.status_code == 204, gone.text
    assert await api.overrides() == []
