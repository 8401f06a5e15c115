"""Dossiers POSTed to ingest, counted by a metrics worker process the way one-stop
statistics count them: an open dossier counted late once its appointment passes (the
worker's sweep), not again when resolved later, nor after the worker restarts; a dossier
resolved twice counted once; a withdrawn one left out; a date-only appointment judged by
the local date. The in-process test with a moved clock is
tests/integration/metrics/test_dossier_ledger.py."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.common.settings import CommonSettings
from services.ingest.keystore import create_key
from services.metrics.dossiers import SWEEP_EVERY_S
from services.metrics.periods import VN_TZ
from tests.integration.processes import running_service
from tests.integration.test_end_to_end import pipeline_env

pytestmark = pytest.mark.integration
UNIT, PROVINCE = "01843", "19"  # Phường Bắc Kạn, Thái Nguyên
TYPES = ["vn.egov.dossier.received", "vn.egov.dossier.resolved"]
OUTCOMES = ("early", "on_time", "late", "open_overdue")


def dossier_event(kind: str, dossier: str, at: datetime, **data: Any) -> dict[str, Any]:
    data = {"dossier_id": dossier, **data}
    if kind == "received":
        data.update(procedure_code="1.001612", service_level="full", channel="online")
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "urn:test:motcua",
        "type": f"vn.egov.dossier.{kind}",
        "time": at.astimezone(VN_TZ).isoformat(),
        "unit": UNIT,
        "data": data,
    }


def counts(metrics_text: str, unit: str = UNIT) -> dict[str, float]:
    """``egov_dossiers`` of ``unit`` in the year window, by outcome."""
    found = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name == "egov_dossiers":
            for s in family.samples:
                if s.labels["unit"] == unit and s.labels["window"] == "year":
                    found[s.labels["outcome"]] = s.value
    return found


def wait_for(url: str, want: Callable[[dict[str, float]], bool], log: Path) -> dict[str, float]:
    """Scrape until ``want`` holds of the counts (the sweep runs every SWEEP_EVERY_S)."""
    deadline = time.monotonic() + SWEEP_EVERY_S + 60
    while time.monotonic() < deadline:
        found = counts(httpx.get(url + "/metrics").text)
        if want(found):
            return found
        time.sleep(0.5)
    raise AssertionError(
        f"counts {found} after {SWEEP_EVERY_S + 60:.0f} s\n{log.read_text()[-3000:]}"
    )


async def _key(database_url: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        key = await create_key(conn, "dossiers-e2e", [PROVINCE], TYPES, sources=["urn:test:"])
        return key.token
    finally:
        await conn.close()


def post(ingest: str, token: str, events: list[dict[str, Any]]) -> None:
    response = httpx.post(
        ingest + "/v1/events",
        content=orjson.dumps(events),
        headers={
            "content-type": "application/cloudevents-batch+json",
            "authorization": f"Bearer {token}",
        },
    )
    assert response.status_code == 202, response.text


def test_dossiers_count_once_through_ingest_and_a_restarted_worker(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    token = asyncio.run(_key(database_url))
    env, ingest_port, metrics_port = pipeline_env(common_settings, database_url, tmp_path)
    now = datetime.now(UTC)
    received = now - timedelta(days=2)
    today = now.astimezone(VN_TZ).date()
    tomorrow = (today + timedelta(days=1)).isoformat()
    # A is left open past its appointment: a minute ago, but never before today's start in
    # Vietnam time, so that its open overdue count lands in today's periods (yesterday's
    # would fall out of the year window on 1 January).
    start_of_today = datetime.combine(today, datetime.min.time(), VN_TZ)
    a_due = max(start_of_today, now - timedelta(minutes=1))
    first = [
        dossier_event("received", "A", received, due_at=a_due.isoformat()),
        # B: appointment today (a date alone), handed over now: on time whatever the hour.
        dossier_event("received", "B", received, due_at=today.isoformat()),
        dossier_event("resolved", "B", now, outcome="approved"),
        # C: resolved early, then resolved again by another event.
        dossier_event("received", "C", received, due_at=tomorrow),
        dossier_event("resolved", "C", now - timedelta(minutes=30), outcome="approved"),
        # D: withdrawn before its appointment.
        dossier_event("received", "D", received, due_at=tomorrow),
        dossier_event("resolved", "D", now - timedelta(minutes=20), outcome="withdrawn"),
    ]
    expected = {"early": 1, "on_time": 1, "late": 0, "open_overdue": 1}
    log = tmp_path / "metrics.log"
    with running_service(["ingest"], env, ingest_port, tmp_path / "ingest.log") as ingest:
        with running_service(["metrics"], env, metrics_port, log) as metrics:
            post(ingest, token, first)
            # The sweep finds A past its appointment: open overdue, in today's period.
            assert wait_for(metrics, lambda c: c.get("open_overdue") == 1, log) == expected
        # A new worker process: the dossiers' state comes back from PostgreSQL.
        with running_service(["metrics"], env, metrics_port, tmp_path / "metrics2.log") as metrics:
            assert wait_for(metrics, lambda c: bool(c), log) == expected
            post(
                ingest,
                token,
                [
                    # counted already: moves from open overdue to late
                    dossier_event("resolved", "A", now, outcome="approved"),
                    dossier_event("resolved", "C", now, outcome="rejected"),  # resolved twice
                    dossier_event("received", "E", received, due_at=tomorrow),
                    dossier_event("resolved", "E", now, outcome="approved"),  # a marker
                ],
            )
            final = wait_for(metrics, lambda c: c.get("early") == 2, tmp_path / "metrics2.log")
            assert final == {"early": 2, "on_time": 1, "late": 1, "open_overdue": 0}
            item = on_time_item(metrics, lambda i: i["dossiers"]["early"] == 2)
    assert (item["numerator"], item["denominator"]) == (3, 4)  # D withdrawn: not in it
    assert item["dossiers"] == {"early": 2, "on_time": 1, "late": 1, "open_overdue": 0}


def on_time_item(url: str, want: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The commune's on-time item of the year, once ``want`` holds of it: /v1/kpis answers
    from a snapshot the worker publishes every few seconds (services/metrics/snapshot.py)."""
    deadline = time.monotonic() + 30
    while True:
        params = {"unit": UNIT, "kpi": "dossier_on_time", "window": "year"}
        items = httpx.get(url + "/v1/kpis", params=params).json()["items"]
        if (items and want(items[0])) or time.monotonic() > deadline:
            [item] = items
            return item
        time.sleep(0.3)
