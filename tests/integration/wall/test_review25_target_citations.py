"""Review 25: whether every KPI target is cited where it is shown (commit bcb7d04).

Reviewed: the ``target_basis`` of the /v1/kpis items (services/common/figures.py
``TargetBasis``, ``_basis``; services/common/targets.py ``Effective.basis``;
services/metrics/api.py ``kpi_items``), its words (services/common/citations.py
``cite``), the wall's marks and notes (services/wall/bases.py, render.py ``_kpi_table`` /
``_below``, screens.py ``_kpis``), the other screens and the wall's JSON, the CSV/XLSX
column "Căn cứ mục tiêu", the alerts' notification texts (services/alerts/text.py), and
where a worker reads the overrides it cites (services/metrics/store.py).

The wall runs as its own process (``egov-pulse wall``) against a fake metrics worker
(:class:`tests.integration.alerts.harness.FakeMetrics`, given /v1/kpis/history here)
answering the items a worker writes (:meth:`Figure.to_json`). Real units: Tỉnh Thái
Nguyên (19), Phường Bắc Kạn (01843, the catalogue's default: Directive 02/CT-TTg, 100 %),
Xã Bằng Thành (01864, a unit override of 50 % whose reason is hostile: HTML and a
spreadsheet formula), Xã Cao Minh (01879, the province's 95 %).

Seven defects, each a strict xfail naming its cause first, all fixed the same day
(2026-12-05): the worker reads the reason, the board's worst units, the unit screen and
the trend chart cite their targets, the wall's JSON gives the basis, the alerts' texts
cite it, and bases are made once per target:

1. A worker never reads an override's reason: services/metrics/store.py
   ``target_overrides`` selects no ``reason`` column, so every override served by a real
   worker is cited "Mục tiêu của tỉnh" with no reason (the unit test set the reason on
   an in-memory Override; docs/metrics-api.md shows one).
2. The board's worst-units table shows bare targets (services/wall/screens.py
   ``_worst_row``): one of them an override, read as the directive's figure.
3. The unit screen shows bare targets (screens.py ``_unit_row``).
4. The trend chart labels its dashed line "Mục tiêu 50 %" bare (services/wall/trend.py
   ``trend_svg``; views.py ``trend_html`` passes only ``target_bp``).
5. /wall/api/overview gives ``target_bp`` with no basis (services/wall/api.py
   ``figure_json``).
6. Alert notifications say "thấp hơn mục tiêu 50 %" citing nothing
   (services/alerts/conditions.py ``kpi_below_target`` -> services/alerts/text.py
   ``below_target`` take no basis).
7. ``kpi_items`` makes one basis per item under an override, not one per target as its
   comment says: its cache is keyed by ``id(Effective)`` but ``effective_target`` makes
   a new Effective for every override lookup (services/metrics/api.py, targets.py), and
   the cache keeps each one alive for the whole answer.

Claims checked and holding: each target of the below-target table is marked with the
number of its own basis (override vs default, in both languages); an operator's reason
is escaped in the mark's title and the notes; the files' basis column cites the
override with its reason and never starts like a formula, the XLSX cell is text; an
item of an older worker (no ``target_basis``) keeps its target and is marked with
nothing, a basis with a field a newer worker adds still reads; merging two workers'
answers keeps each target with its own basis.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from html import unescape

import asyncpg
import httpx
import openpyxl  # type: ignore[import-untyped]  # no stubs installed
import orjson
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.alerts.conditions import kpi_below_target
from services.common import targets as common_targets
from services.common.broker import free_port
from services.common.citations import cite
from services.common.figures import Figure, TargetBasis, merge_figures, parse_figures
from services.common.kpis import KpiCatalogue
from services.common.targets import OverrideIndex
from services.common.units import VN_TZ
from services.metrics import api, store
from services.metrics.periods import Periods
from services.metrics.targets import Targets
from tests.integration.alerts.harness import FakeMetrics
from tests.integration.wall.test_wall_browser import wall
from tests.unit.metrics.helpers import catalogue, registry
from tests.unit.metrics.test_figures import c, figures_with

pytestmark = pytest.mark.integration

KPI = "document_signing"
KPI_VI, KPI_EN = "Tỷ lệ văn bản điện tử được ký số", "Digital-signing rate"
NOW = datetime.now(VN_TZ)
TODAY = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
MONTH = TODAY.replace(day=1)
RECENT = NOW - timedelta(minutes=2)

PROVINCE = ("19", "Tỉnh Thái Nguyên", "Thai Nguyen Province")
BAC_KAN = ("01843", "Phường Bắc Kạn", "Bac Kan Ward")
"""199,999 of 200,000 under the catalogue's 100 % (Directive 02/CT-TTg)."""
BANG_THANH = ("01864", "Xã Bằng Thành", "Bang Thanh Commune")
"""10 of 30 under a unit override of 50 %, whose reason an operator wrote."""
CAO_MINH = ("01879", "Xã Cao Minh", "Cao Minh Commune")
"""20 of 30 under the province's 95 %."""

HOSTILE = '=HYPERLINK("http://x.example","KH 12")<script>alert(1)</script>"><b>'
"""An operator's reason: a formula, a script and an attribute breaker."""
UNIT_OVERRIDE = TargetBasis("unit", None, date(2026, 1, 1), None, HOSTILE)
PROVINCE_OVERRIDE = TargetBasis("province", None, date(2026, 1, 1), None, "Kế hoạch 12/KH-UBND")


def default_basis(level: str) -> TargetBasis | None:
    kpi = KpiCatalogue.load().get(KPI)
    found = OverrideIndex().default(kpi, level, TODAY.date())
    return None if found is None else found.basis


def figure(
    unit: tuple[str, str, str],
    window: str,
    numerator: int,
    denominator: int,
    *,
    level: str = "commune",
    target_bp: int = 10_000,
    basis: TargetBasis | None = None,
) -> Figure:
    code, name, name_en = unit
    return Figure(
        KPI,
        code,
        window,
        numerator,
        denominator,
        target_bp,
        20,
        unit_name=name,
        unit_name_en=name_en,
        kpi_name_vi=KPI_VI,
        kpi_name_en=KPI_EN,
        level=level,
        province="19",
        parent=None if level == "province" else "19",
        last_event_time=RECENT,
        period_start=TODAY if window == "day" else MONTH,
        target_basis=basis if basis is not None else default_basis(level),
    )


SEEDED: dict[tuple[str, str, str], tuple[int, int, int, TargetBasis | None, str]] = {
    PROVINCE: (11_703, 11_710, 10_000, None, "province"),
    BAC_KAN: (199_999, 200_000, 10_000, None, "commune"),
    BANG_THANH: (10, 30, 5_000, UNIT_OVERRIDE, "commune"),
    CAO_MINH: (20, 30, 9_500, PROVINCE_OVERRIDE, "commune"),
}


class HistoryMetrics(FakeMetrics):
    """FakeMetrics that also answers /v1/kpis/history (the last days at 10 of 30)."""

    def __init__(self) -> None:
        super().__init__()
        app = self._server.config.app
        app.router.routes.append(Route("/v1/kpis/history", self._history))

    async def _history(self, _: Request) -> Response:
        days = [
            {"day": (TODAY.date() - timedelta(days=k)).isoformat(), "numerator": 10,
             "denominator": 30}
            for k in range(13, -1, -1)
        ]  # fmt: skip
        return Response(orjson.dumps({"items": days}), media_type="application/json")


def seed(fake: FakeMetrics) -> None:
    for unit, (n, d, target, basis, level) in SEEDED.items():
        for window in ("day", "month"):
            fig = figure(unit, window, n, d, level=level, target_bp=target, basis=basis)
            fake.items[(KPI, unit[0], window)] = fig.to_json()
        fake.activity[(unit[0], "documents")] = RECENT


def wall_env(*metrics: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EGOV_WALL", "EGOV_ALERT"))}
    env.update(
        EGOV_WALL_PORT=str(free_port()),
        EGOV_METRICS_URLS=",".join(metrics),
        EGOV_ALERTS_URL="",
        EGOV_WALL_LANG="vi",
        EGOV_WALL_SILENCE_MINUTES="30",
        EGOV_WALL_SILENT_CALENDAR="always",
        EGOV_WALL_POLL_INTERVAL_S="0.2",
        EGOV_WALL_SOURCE_TIMEOUT_S="1",
        PYTHONUNBUFFERED="1",
    )
    return env


@dataclass
class Thai:
    base: str
    fake: FakeMetrics


@pytest.fixture(scope="module")
async def thai(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Thai]:
    log = tmp_path_factory.mktemp("review25") / "wall.log"
    async with HistoryMetrics() as fake:
        seed(fake)
        async with wall(wall_env(fake.url), log) as (base, _):
            yield Thai(base, fake)


async def get(base: str, path: str, **params: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=20) as client:
        return await client.get(base + path, params=params)


def section(page: str, pattern: str) -> str:
    found = re.search(pattern, page, re.S)
    assert found is not None, f"no {pattern!r} on the page"
    return found.group(0)


def notes(html: str) -> list[str]:
    """The citations under a table, in their numbered order (as read)."""
    block = section(html, r'<div class="bases">.*?</ol></div>')
    return [unescape(li) for li in re.findall(r"<li>(.*?)</li>", block, re.S)]


def mark_of(row: str) -> int | None:
    found = re.search(r'<sup class="basis" title="[^"]*">(\d+)</sup>', row)
    return None if found is None else int(found.group(1))


WORDS = {
    "vi": ("Mục tiêu riêng đặt cho đơn vị", "Mục tiêu của tỉnh: Kế hoạch 12/KH-UBND", "02/CT-TTg"),
    "en": ("A target set for this unit", "The province's target: Kế hoạch 12/KH-UBND", "02/CT-TTg"),
}


# ------------------------------------------------------------------ claims that hold


@pytest.mark.parametrize("lang", ["vi", "en"])
async def test_each_target_below_is_marked_with_its_own_basis(thai: Thai, lang: str) -> None:
    page = (await get(thai.base, "/wall", province="19", lang=lang)).text
    below = section(page, r'<section class="panel below".*?</section>')
    cited = notes(below)
    unit_words, province_words, directive = WORDS[lang]
    for unit, expected in ((BANG_THANH, unit_words), (CAO_MINH, province_words),
                           (BAC_KAN, directive)):  # fmt: skip
        row = section(below, rf'<tr><th scope="row"><a href="[^"]*unit={unit[0]}[^"]*".*?</tr>')
        number = mark_of(row)
        assert number is not None, f"{unit[0]}: target not marked"
        assert expected in cited[number - 1], (unit[0], cited)
    # Three different bases, three notes; the override never cited as the directive.
    assert len(cited) == 3, cited


async def test_an_operators_reason_is_escaped_in_marks_and_notes(thai: Thai) -> None:
    page = (await get(thai.base, "/wall", province="19")).text
    assert "<script>alert(1)</script>" not in page
    assert '"><b>' not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # The title attribute holds the whole citation, quote included, escaped.
    titles = re.findall(r'<sup class="basis" title="([^"]*)">', page)
    assert any("&quot;&gt;&lt;b&gt;" in t for t in titles), titles


async def test_the_files_cite_the_override_and_never_start_a_formula(thai: Thai) -> None:
    got = await get(thai.base, "/wall/export", unit="19", window="day", format="csv")
    assert got.status_code == 200, got.text
    _title, header, *rows = csv.reader(io.StringIO(got.content.decode("utf-8-sig"), newline=""))
    col = header.index("Căn cứ mục tiêu")
    by_unit = {r[0]: r for r in rows if r[3] == KPI}
    cell = by_unit[BANG_THANH[0]][col]
    assert cell.startswith("Mục tiêu riêng đặt cho đơn vị: =HYPERLINK"), cell
    assert by_unit[CAO_MINH[0]][col].startswith("Mục tiêu của tỉnh: Kế hoạch 12/KH-UBND")
    assert "02/CT-TTg" in by_unit[BAC_KAN[0]][col]
    for r in rows:
        assert not r[col].startswith(("=", "+", "-", "@")), r
    book = await get(thai.base, "/wall/export", unit="19", window="day", format="xlsx",
                     lang="en")  # fmt: skip
    assert book.status_code == 200, book.text
    sheet = openpyxl.load_workbook(io.BytesIO(book.content))["KPIs"]
    head = [c.value for c in sheet[2]]
    at = head.index("Target basis")
    found = [r for r in sheet.iter_rows(min_row=3) if r[0].value == BANG_THANH[0]]
    assert found, "no row of Xã Bằng Thành"
    basis = found[0][at]
    assert basis.data_type == "s" and basis.value.startswith("A target set for this unit: =")


def test_an_older_items_target_stays_and_a_newer_basis_still_reads() -> None:
    item = figure(BANG_THANH, "day", 10, 30, target_bp=5_000, basis=UNIT_OVERRIDE).to_json()
    older = {k: v for k, v in item.items() if k != "target_basis"}
    (fig,) = parse_figures(orjson.dumps({"items": [older]}))
    assert fig.target_bp == 5_000 and fig.target_basis is None and cite(None, "vi") == ""
    newer = {**item, "target_basis": {**item["target_basis"], "document_url": "https://x"}}
    (fig,) = parse_figures(orjson.dumps({"items": [newer]}))
    assert fig.target_basis == UNIT_OVERRIDE
    assert cite(fig.target_basis, "vi").startswith("Mục tiêu riêng đặt cho đơn vị: =HYPERLINK")
    assert "(áp dụng từ 01/01/2026)" in cite(fig.target_basis, "vi")


def test_merging_two_workers_keeps_each_target_with_its_basis() -> None:
    """During a rebalance the fresher figure wins whole: never one worker's target with
    the other's basis."""
    old = figure(BANG_THANH, "day", 10, 30, target_bp=5_000, basis=UNIT_OVERRIDE)
    old = old._replace(period_start=TODAY - timedelta(days=1))
    new = figure(BANG_THANH, "day", 1, 2)  # the override has ended: the default
    for answers in ([[old], [new]], [[new], [old]]):
        (merged,) = merge_figures(answers)
        assert (merged.target_bp, merged.target_basis) == (10_000, default_basis("commune"))


# ------------------------------------------------------------------ defects


async def test_a_worker_cites_the_reason_it_reads_from_the_database(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO kpi_target_overrides (unit, province, level, kpi, valid_from, "
            "target_bp, valid_until, changed_by, reason) VALUES (NULL, '19', NULL, $1, "
            "NULL, 9500, NULL, 'operator-19', 'Kế hoạch 12/KH-UBND')",
            KPI,
        )
        overrides = await store.target_overrides(conn)
    finally:
        await conn.close()
    assert overrides is not None
    at = datetime(2026, 11, 23, 3, 0, tzinfo=VN_TZ)
    targets = Targets(catalogue())
    targets.overrides = overrides
    figures = figures_with(c(at), now=at)
    query = api.KpiQuery.parse({"unit": ["01843"], "window": ["day"]}, catalogue())
    (item,) = api.kpi_items(query, figures, registry(), targets, Periods.at(at))
    assert item["target_bp"] == 9_500 and item["target_basis"]["origin"] == "province"
    (fig,) = parse_figures(orjson.dumps({"items": [item]}))
    assert cite(fig.target_basis, "vi") == "Mục tiêu của tỉnh: Kế hoạch 12/KH-UBND"


async def test_the_boards_worst_units_cite_their_targets(thai: Thai) -> None:
    page = (await get(thai.base, "/wall/province", province="19")).text
    worst = section(page, r'<section class="panel worst">.*?</section>')
    row = section(worst, rf'<tr data-unit="{BANG_THANH[0]}".*?</tr>')
    assert "50 %" in row  # the override's target is shown
    number = mark_of(row)
    assert number is not None, row
    assert "Mục tiêu riêng đặt cho đơn vị" in notes(worst)[number - 1]


async def test_the_unit_screen_cites_its_targets(thai: Thai) -> None:
    page = (await get(thai.base, "/wall/unit", unit=BANG_THANH[0])).text
    row = section(page, rf'<tr data-kpi="{KPI}">.*?</tr>')
    assert "Mục tiêu 50 %" in re.sub(r"<[^>]+>", "", row)  # the target is shown
    assert mark_of(row) is not None, row
    assert "Mục tiêu riêng đặt cho đơn vị" in page


async def test_the_trend_chart_cites_its_target(thai: Thai) -> None:
    page = (await get(thai.base, "/wall", province="19", unit=BANG_THANH[0], kpi=KPI)).text
    trend = section(page, r'<section id="trend".*?</section>')
    assert "Mục tiêu 50 %" in re.sub(r"<[^>]+>", "", trend)  # the dashed line's label
    assert "Mục tiêu riêng đặt cho đơn vị" in trend


async def test_the_walls_json_gives_each_target_its_basis(thai: Thai) -> None:
    body = (await get(thai.base, "/wall/api/overview", province="19")).json()
    rows = {r["unit"]: r["kpis"][KPI] for r in body["rows"]}
    item = rows[BANG_THANH[0]]
    assert item["target_bp"] == 5_000
    assert item["target_basis"]["origin"] == "unit"


def test_an_alert_cites_the_target_it_is_judged_against() -> None:
    fig = figure(CAO_MINH, "day", 20, 30, target_bp=9_500, basis=PROVINCE_OVERRIDE)
    (verdict,) = kpi_below_target([fig], ["day"], 100, 0.0)
    assert "mục tiêu 95 %" in verdict.summary_vi  # the target is shown
    assert "Kế hoạch 12/KH-UBND" in verdict.summary_vi, verdict.summary_vi
    assert "Kế hoạch 12/KH-UBND" in verdict.summary_en, verdict.summary_en


def test_one_override_makes_one_basis_whatever_the_units(monkeypatch: pytest.MonkeyPatch) -> None:
    at = datetime(2026, 11, 23, 3, 0, tzinfo=VN_TZ)
    communes = ("01843", "01840", "01849", "01864", "01879", "01882")
    figures = figures_with(*(c(at, units=(code, "19")) for code in communes), now=at)
    targets = Targets(catalogue())
    targets.overrides = [
        common_targets.Override(common_targets.Scope(province="19"), KPI, 9_500, reason="KH 12")
    ]
    made: list[int] = []
    basis = common_targets.Effective.basis

    def counted(self: common_targets.Effective) -> TargetBasis:
        made.append(1)
        return basis.fget(self)  # type: ignore[attr-defined,no-any-return]

    monkeypatch.setattr(common_targets.Effective, "basis", property(counted))
    query = api.KpiQuery.parse({"unit": list(communes), "window": ["day"]}, catalogue())
    items = api.kpi_items(query, figures, registry(), targets, Periods.at(at))
    assert {i["unit"] for i in items} == set(communes)
    assert all(i["target_basis"]["reason"] == "KH 12" for i in items)
    assert len(made) == 1, f"{len(made)} bases made for one override"
