"""A seeded wall scenario: every source the wall reads, answered from one fixed seed.

Thái Nguyên (19) and Thanh Hóa (38) with all their communes of today (data/units), every
KPI of the catalogue (data/kpis.json, its names, minimum volumes and default targets) in
the day and month windows, the on-time rate's dossier counts, daily history for
/v1/kpis/history (restated before the 2025 reform) and open alerts. Written as the
workers write them (:meth:`Figure.to_json`). Units and figures that a test checks:

- Thanh Hóa this month: 11,703 of 11,710 documents signed (99,94 %, Nông Cống's published
  figure), 885 of 1,000 dossiers on time (17,70 of the 20 points of indicator 2.1),
  1,234 dossiers received online; the other measured 766 indicators: 4.1 at 1,140 of
  1,200 (5,70 of 6), 4.2 at 720 of 1,000 (3,60 of 4, full from 80 %), 4.5b at 450 of 500
  (1,80 of 2), 5.4 at 810 of 1,000 (5,40 of 6, full from 90 %): 34,20 of 38 points;
- :data:`ONE_OF_ONE` signed 1 of 1 this month, :data:`NEARLY_ALL` 990 of 1,000;
- :data:`WORST` resolves 40 of 100 dossiers on time this month: the province's worst.
"""

from __future__ import annotations

import csv
import random
from datetime import date, datetime, timedelta
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.common.figures import DossierCounts, Figure
from services.common.kpis import KpiCatalogue
from services.common.paths import REPO_ROOT
from services.common.units import REFORM_DATE, VN_TZ
from tests.integration.alerts.harness import LocalServer

SEED = 766
PROVINCES = ("19", "38")
CATALOGUE = KpiCatalogue.load()
"""Every KPI of data/kpis.json, with its names, minimum volume and default targets: a
KPI added to the catalogue is on the seeded wall too (and so are the 766 indicators it
measures), so the screens are tested at the catalogue's size."""
ONE_OF_ONE = "14758"  # Phường Hàm Rồng
NEARLY_ALL = "14797"  # Phường Hạc Thành
WORST = "14812"  # Phường Bỉm Sơn


def units() -> dict[str, dict[str, str]]:
    """Today's provinces 19 and 38 and their communes, from data/units."""
    path = REPO_ROOT / "data" / "units" / "units-2025.csv"
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return {r["code"]: r for r in rows if r["code"] in PROVINCES or r["parent_code"] in PROVINCES}


class Scenario:
    """The figures, history and alerts of the seeded wall, at ``now``."""

    def __init__(self, now: datetime) -> None:
        self.now = now.astimezone(VN_TZ)
        self.units = units()
        self.figures: list[Figure] = []
        rng = random.Random(SEED)
        for code in sorted(self.units):
            for kpi in CATALOGUE.ids:
                for window in ("day", "month"):
                    self.figures.append(self._figure(rng, code, kpi, window))

    def _figure(self, rng: random.Random, code: str, kpi: str, window: str) -> Figure:
        n, d = self._counts(rng, code, kpi, window)
        row = self.units[code]
        entry = CATALOGUE.get(kpi)
        target = entry.target_bp(row["level"], self.now.date())
        province = code if row["level"] == "province" else row["parent_code"]
        start = self.now.replace(hour=0, minute=0, second=0, microsecond=0)
        if window == "month":
            start = start.replace(day=1)
        dossiers = None
        if kpi == "dossier_on_time":
            late = (d - n) * 3 // 4
            dossiers = DossierCounts(n * 2 // 3, n - n * 2 // 3, late, d - n - late)
            if code == "38" and window == "month":
                dossiers = DossierCounts(600, 285, 90, 25)
        return Figure(
            kpi, code, window, n, d, target, entry.min_volume,
            unit_name=row["full_name"], unit_name_en=row["full_name_en"],
            kpi_name_vi=entry.name_vi, kpi_name_en=entry.name_en, level=row["level"],
            province=province, parent=row["parent_code"] or None,
            last_event_time=self.now - timedelta(minutes=2), period_start=start,
            dossiers=dossiers,
        )  # fmt: skip

    def _counts(self, rng: random.Random, code: str, kpi: str, window: str) -> tuple[int, int]:
        fixed = {
            ("38", "document_signing", "month"): (11_703, 11_710),
            ("38", "dossier_on_time", "month"): (885, 1000),
            ("38", "dossier_online", "month"): (1_100, 1_234),
            ("38", "dossier_electronic_result", "month"): (1_140, 1_200),
            ("38", "dossier_digitised", "month"): (720, 1_000),
            ("38", "dossier_population_data", "month"): (450, 500),
            ("38", "dossier_satisfaction", "month"): (810, 1_000),
            (ONE_OF_ONE, "document_signing", "month"): (1, 1),
            (NEARLY_ALL, "document_signing", "month"): (990, 1000),
            (WORST, "dossier_on_time", "month"): (40, 100),
        }
        if (code, kpi, window) in fixed:
            return fixed[(code, kpi, window)]
        scale = 40 if window == "month" else 3
        if self.units[code]["level"] == "province":
            scale *= 150
        d = rng.randint(0, scale * 4)
        target = CATALOGUE.get(kpi).target_bp(self.units[code]["level"]) or 0
        # Most units at or above their target (or from 95 % up, under a target of 100 %:
        # not every unit at 100,00 %), about one in sixteen clearly below it.
        share = min(target, 9500) / 10_000 + rng.uniform(0.0, 0.05)
        if rng.random() < 0.06:
            share -= rng.uniform(0.08, 0.3)
        return min(d, max(0, round(d * min(share, 1.0)))), d

    # ------------------------------------------------------------ answers

    def history(self, unit: str, kpi: str, days: int) -> list[dict[str, Any]]:
        """Daily items of /v1/kpis/history: one seeded day after another, gaps included."""
        items = []
        today = self.now.date()
        for back in range(days):
            day = today - timedelta(days=back)
            n, d = day_counts(unit, kpi, day)
            if d == 0:
                continue  # days without events are absent
            items.append({"day": day.isoformat(), "numerator": n, "denominator": d,
                          "ratio": n / d, "restated": day < REFORM_DATE})  # fmt: skip
        return list(reversed(items))

    def alerts(self) -> list[dict[str, Any]]:
        """Seven open alerts in Thanh Hóa (two acknowledged), one in Thái Nguyên."""
        below = [f for f in self.figures if f.window == "month" and f.province == "38"
                 and f.unit != "38" and f.status.value == "below"][:7]  # fmt: skip
        out = []
        for i, f in enumerate(below):
            out.append({
                "id": f"a{i}", "alertname": "KpiBelowTarget", "kpi": f.kpi, "unit": f.unit,
                "window": "month", "severity": "critical" if i % 3 == 0 else "warning",
                "state": "firing", "province": "38",
                "summary_vi": f"{f.unit_name}: {f.kpi_name_vi} dưới mục tiêu",
                "summary_en": f"{f.unit_name_en}: {f.kpi_name_en} below target",
                "acknowledged_by": "Nguyễn Văn An" if i in (1, 4) else None,
                "acknowledged_at": self.now.isoformat() if i in (1, 4) else None,
            })  # fmt: skip
        return out


def day_counts(unit: str, kpi: str, day: date) -> tuple[int, int]:
    """The seeded counts of one unit, KPI and day (none on Sundays)."""
    if day.weekday() == 6:
        return 0, 0
    rng = random.Random(f"{SEED}:{unit}:{kpi}:{day.isoformat()}")
    d = rng.randint(5, 60)
    target = CATALOGUE.get(kpi).target_bp("commune") or 0
    share = target / 10_000 + rng.uniform(-0.1, 0.06)
    return min(d, max(0, round(d * share))), d


class SeededSources(LocalServer):
    """The metrics workers and the alerts service of a :class:`Scenario`, on one port."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        super().__init__(
            Starlette(
                routes=[
                    Route("/v1/kpis", self._kpis),
                    Route("/v1/kpis/history", self._history),
                    Route("/v1/activity", self._activity),
                    Route("/v1/alerts", self._alerts),
                ]
            )
        )

    async def _kpis(self, request: Request) -> Response:
        windows = set(request.query_params.getlist("window")) or {"day"}
        items = [f.to_json() for f in self.scenario.figures if f.window in windows]
        return _json({"worker": "seeded", "items": items})

    async def _history(self, request: Request) -> Response:
        q = request.query_params
        items = self.scenario.history(q["unit"], q["kpi"], int(q.get("days", "30")))
        return _json({"unit": q["unit"], "kpi": q["kpi"], "items": items})

    async def _activity(self, _: Request) -> Response:
        return _json({"items": []})

    async def _alerts(self, _: Request) -> Response:
        return _json({"items": self.scenario.alerts()})


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")
