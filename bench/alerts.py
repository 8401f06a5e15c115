"""Alerts benchmark: threshold crossing to Alertmanager receipt, with 10,000 units evaluated.

Everything runs as its own process, as in production: a fake metrics worker serving
10,000 units x 7 KPIs in every window the alerts read (docs/metrics-api.md shape), the
real ``egov-pulse alerts`` with its production defaults (interval, burn-rate rules and
their interval) except the duration, a real prometheus-alertmanager and a fresh
PostgreSQL database. The fake answers each /v1/kpis call after the time a real worker
needs to build it (measured here with ``services.metrics.api.kpi_items`` on 10,000
units), so the latency includes the worker's side. Each trial pushes one healthy unit
below target at t0 and polls Alertmanager's API until the alert is there: latency =
that moment - t0. Reference: p99 under 5 s + the configured duration (issue 5).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.common import fresh_database
from services.common.broker import free_port
from tests.integration.alerts.harness import Alertmanager, Receiver
from tests.integration.processes import running_service

UNITS = 10_000
KPIS = ("document_signing", "document_electronic", "dossier_online", "dossier_online_payment",
        "dossier_on_time", "meeting_online", "meeting_paperless")  # fmt: skip
WINDOWS = ("day", "month", "year", "5m", "30m", "1h", "6h")  # every window the alerts read
FOR_S = 2.0


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def worker_seconds_per_window() -> float:
    """What one /v1/kpis call for one window costs a metrics worker at 10,000 units x 7 KPIs.

    Real registry codes first, then codes the registry does not know (the worker looks
    those up in both eras): the same per-item work as a worker with 10,000 known units.
    """
    from services.common.kpis import KpiCatalogue
    from services.common.units import UnitRegistry
    from services.metrics import api
    from services.metrics.figures import Figures, PartitionFigures, Tally
    from services.metrics.periods import Periods
    from services.metrics.targets import Targets

    registry, catalogue = UnitRegistry.from_dir(), KpiCatalogue.load()
    periods = Periods.at(datetime.now(UTC))
    known = [u.code for u in registry.units("2025")]
    codes = [known[i] if i < len(known) else f"x{i:05d}" for i in range(UNITS)]
    part = PartitionFigures()
    for code in codes:
        for kpi in catalogue.ids:
            tally = Tally(periods.day)
            tally.add(periods.day, 99, 100)
            part.tallies[(code, kpi)] = tally
    figures = Figures()
    figures.assign(("egov.documents", 0), part)
    query = api.KpiQuery.parse({"window": ["day"]}, catalogue)
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        orjson.dumps({"items": api.kpi_items(query, figures, registry, Targets(catalogue),
                                             periods)})  # fmt: skip
        best = min(best, time.perf_counter() - started)
    return best


def _item(unit: int, kpi: str, window: str, numerator: int) -> dict[str, Any]:
    code = f"u{unit:05d}"
    return {
        "kpi": kpi, "kpi_name_vi": "Tỷ lệ văn bản điện tử được ký số",
        "kpi_name_en": "Digital-signing rate", "unit": code, "unit_name": f"Xã {unit}",
        "unit_name_en": f"Commune {unit}", "level": "commune", "parent": f"{unit % 34:02d}",
        "province": f"{unit % 34:02d}", "window": window, "period_start": None,
        "numerator": numerator, "denominator": 100, "ratio": numerator / 100, "target": 0.95,
        "min_volume": 20, "meets_target": numerator >= 95, "last_event_time": None,
    }  # fmt: skip


def _serve_fake_metrics(port: int, delay_s: float) -> None:
    """The fake worker, in its own process: one cached body per window, rebuilt on a change."""
    items = {w: {(u, k): _item(u, k, w, 99) for u in range(UNITS) for k in KPIS} for w in WINDOWS}
    bodies: dict[str, bytes] = {}
    busy = asyncio.Lock()  # a worker builds one answer at a time in its event loop

    def body(window: str) -> bytes:
        if window not in bodies:
            bodies[window] = orjson.dumps({"worker": "fake", "items": list(items[window].values())})
        return bodies[window]

    async def kpis(request: Request) -> Response:
        windows = request.query_params.getlist("window") or ["day"]
        async with busy:
            await asyncio.sleep(delay_s * len(windows))  # what a real worker spends on it
        if len(windows) == 1:
            return Response(body(windows[0]), media_type="application/json")
        merged = [i for w in windows for i in items[w].values()]
        return Response(orjson.dumps({"items": merged}), media_type="application/json")

    async def activity(_: Request) -> Response:
        return Response(b'{"items": []}', media_type="application/json")

    async def set_unit(request: Request) -> Response:
        change = orjson.loads(await request.body())
        items["day"][(change["unit"], change["kpi"])] = _item(
            change["unit"], change["kpi"], "day", change["numerator"]
        )
        bodies.pop("day", None)
        body("day")
        return Response(b"{}")

    for w in WINDOWS:
        body(w)
    app = Starlette(routes=[Route("/v1/kpis", kpis), Route("/v1/activity", activity),
                            Route("/_set", set_unit, methods=["POST"])])  # fmt: skip
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")


async def _wait_http(url: str, within: float) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            try:
                if (await client.get(url)).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(url)
            await asyncio.sleep(0.2)


async def _on_alertmanager(client: httpx.AsyncClient, am: str, unit: str) -> bool:
    alerts = (await client.get(f"{am}/api/v2/alerts", params={"filter": f'unit="{unit}"'})).json()
    return any(a["status"]["state"] == "active" for a in alerts)


def _evaluation(text: str) -> tuple[float, float]:
    total = count = 0.0
    for family in text_string_to_metric_families(text):
        if family.name == "egov_alerts_evaluation_duration_seconds":
            for s in family.samples:
                if s.name.endswith("_sum"):
                    total = s.value
                elif s.name.endswith("_count"):
                    count = s.value
    return total, count


async def _run(trials: int) -> list[dict[str, Any]]:
    async with fresh_database("egov_bench") as dsn:
        return await _measure(dsn, trials)


async def _measure(dsn: str, trials: int) -> list[dict[str, Any]]:
    worker_s = worker_seconds_per_window()
    metrics_port, alerts_port = free_port(), free_port()
    fake = multiprocessing.get_context("spawn").Process(
        target=_serve_fake_metrics, args=(metrics_port, worker_s), daemon=True
    )
    fake.start()
    metrics_url = f"http://127.0.0.1:{metrics_port}"
    latencies: list[float] = []
    try:
        await _wait_http(f"{metrics_url}/v1/activity", 120)
        with tempfile.TemporaryDirectory() as tmp:
            async with Receiver() as receiver:
                am = Alertmanager(Path(tmp), receiver.url)
                await am.start()
                env = {**os.environ, "DATABASE_URL": dsn, "PYTHONUNBUFFERED": "1",
                       "EGOV_ALERTS_PORT": str(alerts_port), "EGOV_METRICS_URLS": metrics_url,
                       "EGOV_INGEST_URL": "", "EGOV_ALERTMANAGER_URL": am.url,
                       "EGOV_ALERT_KAFKA_ENABLED": "false", "EGOV_ALERT_FOR_S": str(FOR_S),
                       "EGOV_ALERT_SILENT_CALENDAR": "always"}  # fmt: skip
                env = {k: v for k, v in env.items() if not k.startswith("EGOV_ALERT_INTERVAL")}
                try:
                    with running_service(["alerts"], env, alerts_port, Path(tmp) / "alerts.log",
                                         "/readyz") as base:  # fmt: skip
                        async with httpx.AsyncClient(timeout=10) as client:
                            await asyncio.sleep(5)  # past the first cycles (burn windows too)
                            for trial in range(trials):
                                unit = trial * 97 % UNITS
                                await asyncio.sleep(0.7 * (trial % 3))  # vary the phase
                                t0 = time.monotonic()
                                change = {"unit": unit, "kpi": "document_signing",
                                          "numerator": 50}  # fmt: skip
                                await client.post(f"{metrics_url}/_set", json=change)
                                code = f"u{unit:05d}"
                                while not await _on_alertmanager(client, am.url, code):  # noqa: ASYNC110
                                    await asyncio.sleep(0.05)
                                latencies.append(time.monotonic() - t0)
                            total, cycles = _evaluation((await client.get(f"{base}/metrics")).text)
                finally:
                    am.stop()
    finally:
        fake.terminate()
        fake.join(10)
    reference = 5.0 + FOR_S
    return [
        {"benchmark": "alerts", "metric": "threshold_to_alertmanager_p99_seconds",
         "value": p99(latencies), "unit": "s", "reference": "issue 5: 5 s + duration",
         "reference_value": reference, "ratio": p99(latencies) / reference,
         "notes": f"{trials} trials, {UNITS} units x {len(KPIS)} KPIs, duration {FOR_S:g} s, "
                  f"production defaults otherwise (egov-pulse alerts process), "
                  f"median {statistics.median(latencies):.2f} s, max {max(latencies):.2f} s"},
        {"benchmark": "alerts", "metric": "evaluation_seconds_per_cycle",
         "value": total / max(cycles, 1.0), "unit": "s", "reference": None,
         "reference_value": None, "ratio": None,
         "notes": f"mean of {int(cycles)} cycles over {UNITS * len(KPIS)} figures per window "
                  "(worker wait + HTTP + JSON + conditions + lifecycle; burn windows every "
                  "EGOV_ALERT_BURN_INTERVAL_S)"},
        {"benchmark": "alerts", "metric": "metrics_worker_seconds_per_kpis_window",
         "value": worker_s, "unit": "s", "reference": None, "reference_value": None,
         "ratio": None,
         "notes": "services.metrics.api.kpi_items + JSON for one window, 10,000 units x "
                  f"{len(KPIS)} KPIs (the worker's event loop is busy that long per call)"},
    ]  # fmt: skip


def run(mode: str) -> list[dict[str, Any]]:
    return asyncio.run(_run(2 if mode == "quick" else 30))


if __name__ == "__main__":
    import sys

    for row in run(sys.argv[1] if len(sys.argv) > 1 else "quick"):
        print(row)
