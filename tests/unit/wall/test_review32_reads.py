"""Review 32: what users of the read endpoints and the files would read wrong.

Each test names the defect it held (strict xfails until fixed, 2026-12):
- a family's silence read the items' any-family ``last_event_time``
  (services/wall/overview.py ``_last_events``);
- the wall's file named its period from the wall's clock, not the figures'
  ``period_start`` (services/wall/downloads.py ``figures_period``);
- a worker's file named the codes asked for only from the selected figures
  (services/metrics/download.py ``subject``).
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import pytest

from services.common.calendar import WorkingCalendar
from services.common.contract import kpi_families
from services.common.export_requests import ExportAsk
from services.common.figures import Activity, Figure
from services.common.scorecard import Scorecard
from services.common.units import VN_TZ
from services.wall.downloads import PeriodUnsettled, export_file
from services.wall.overview import Silence
from services.wall.snapshot import Snapshot, SourceState

TN = "19"
NOW_VN = datetime(2026, 11, 30, 10, 0, tzinfo=VN_TZ)  # a Monday, mid-morning
DOCS = "document_signing"
ON_TIME = "dossier_on_time"
NOVEMBER = datetime(2026, 11, 1, tzinfo=VN_TZ)
DECEMBER = datetime(2026, 12, 1, tzinfo=VN_TZ)
JUST_AFTER_MIDNIGHT = datetime(2026, 12, 1, 0, 0, 1, tzinfo=VN_TZ)  # the wall's clock
NAMES = {TN: ("Tỉnh Thái Nguyên", "province"), "01843": ("Phường Bắc Kạn", "commune"),
         "01840": ("Xã Phong Quang", "commune")}  # fmt: skip


def worker_figure(kpi: str, code: str, activity: list[Activity]) -> Figure:
    """A /v1/kpis item as a worker writes it: ``last_event_time`` is the unit's latest
    event in ANY family (services/metrics/api.py kpi_items; docs/metrics-api.md)."""
    last = max((a.last_event_time for a in activity if a.unit == code), default=None)
    start = NOW_VN.replace(day=1, hour=0, minute=0)
    return Figure(
        kpi, code, "month", 100, 100, 9_000, 20,
        unit_name=code, unit_name_en=code, kpi_name_vi=kpi, kpi_name_en=kpi,
        level="commune", province=TN, parent=TN, last_event_time=last, period_start=start,
    )  # fmt: skip


def month_figure(code: str, start: datetime) -> Figure:
    """A month item of Thái Nguyên or one of its communes, counting from ``start``."""
    name, level = NAMES[code]
    return Figure(
        ON_TIME, code, "month", 95, 100, 9_000, 20,
        unit_name=name, unit_name_en=name, kpi_name_vi=ON_TIME, kpi_name_en=ON_TIME,
        level=level, province=TN, parent=None if code == TN else TN,
        last_event_time=datetime(2026, 11, 30, 23, 59, 50, tzinfo=VN_TZ), period_start=start,
    )  # fmt: skip


def ask_csv() -> ExportAsk:
    return ExportAsk.parse({"format": ["csv"], "lang": ["vi"]}, default_window="month")


def test_a_commune_whose_dossiers_stopped_is_marked_with_worker_shaped_items() -> None:
    three_days = NOW_VN - timedelta(days=3)
    activity = [
        Activity("01843", "dossiers", NOW_VN - timedelta(minutes=2)),
        Activity("01843", "documents", NOW_VN - timedelta(minutes=2)),
        Activity("01840", "dossiers", three_days),
        Activity("01840", "documents", NOW_VN - timedelta(minutes=2)),
    ]
    figures = [
        worker_figure(kpi, code, activity) for code in ("01843", "01840") for kpi in (DOCS, ON_TIME)
    ]
    snap = Snapshot(
        taken_at=NOW_VN,
        figures=tuple(figures),
        activity=tuple(activity),
        sources=(SourceState("metrics", "http://w", True),),
        data_time=NOW_VN,
    )
    families = kpi_families()
    assert families[ON_TIME] == "dossiers" and families[DOCS] == "documents"
    rule = Silence(30, WorkingCalendar(always=True), families)
    # The rankings by the on-time KPI and the file's Sending column both read this rule.
    assert rule.units(snap, NOW_VN, ON_TIME) == {"01840"}
    stopped = rule.rows(snap, NOW_VN)
    assert {(f.unit, f.kpi) for f in snap.figures if stopped(f)} == {("01840", ON_TIME)}


def test_a_family_never_heard_from_is_silent_and_meetings_are_judged_weekly() -> None:
    """Judged from the family's activity alone: no dossier ever (its documents arrive) is
    not sending dossiers; a meeting two working days ago is within the week."""
    activity = [
        Activity("01843", "documents", NOW_VN - timedelta(minutes=2)),
        Activity("01843", "meetings", NOW_VN - timedelta(days=2)),
        Activity("01840", "documents", NOW_VN - timedelta(minutes=2)),
        Activity("01840", "meetings", NOW_VN - timedelta(days=9)),
    ]
    figures = [worker_figure(ON_TIME, code, activity) for code in ("01843", "01840")]
    figures += [worker_figure("meeting_online", code, activity) for code in ("01843", "01840")]
    snap = Snapshot(taken_at=NOW_VN, figures=tuple(figures), activity=tuple(activity))
    rule = Silence(30, WorkingCalendar(), kpi_families())
    assert rule.units(snap, NOW_VN, ON_TIME) == {"01843", "01840"}
    assert rule.units(snap, NOW_VN, "meeting_online") == {"01840"}
    assert rule.units(snap, NOW_VN) == frozenset()  # any family: documents arrive


def test_a_file_is_named_for_the_period_its_figures_count() -> None:
    """Just after midnight on the 1st a worker's snapshot (refreshed every 2 s) still
    answers November: the file is named, titled and scored November, not the clock's
    December."""
    figures = [month_figure(code, NOVEMBER) for code in (TN, "01843")]
    file = export_file(ask_csv(), "kpis", figures, TN, Scorecard.load(), JUST_AFTER_MIDNIGHT)
    title = next(csv.reader(io.StringIO(file.body.decode("utf-8-sig"))))[0]
    assert file.filename == "bao-cao-19-2026-11.csv", file.filename
    assert "11/2026" in title, title


def test_figures_of_two_periods_make_no_file() -> None:
    """One worker rolled to December, another still answers November: no file names
    either period for both."""
    figures = [month_figure(TN, NOVEMBER), month_figure("01843", DECEMBER)]
    with pytest.raises(PeriodUnsettled, match="rolling over"):
        export_file(ask_csv(), "kpis", figures, TN, Scorecard.load(), JUST_AFTER_MIDNIGHT)
    unsaid = [f._replace(period_start=None) for f in figures]
    with pytest.raises(PeriodUnsettled, match="period_start"):
        export_file(ask_csv(), "kpis", unsaid, TN, Scorecard.load(), JUST_AFTER_MIDNIGHT)


def test_the_first_seconds_of_a_year_name_the_year_that_ended() -> None:
    started = datetime(2026, 1, 1, tzinfo=VN_TZ)
    figures = [month_figure(c, started)._replace(window="year") for c in (TN, "01843")]
    new_year = datetime(2027, 1, 1, 0, 0, 1, tzinfo=VN_TZ)
    ask = ExportAsk.parse({"format": ["csv"], "window": ["year"], "lang": ["en"]}, "month")
    file = export_file(ask, "kpis", figures, TN, Scorecard.load(), new_year)
    title = next(csv.reader(io.StringIO(file.body.decode("utf-8-sig"))))[0]
    assert file.filename == "report-19-2026.csv", file.filename
    assert "2026 to 31 Dec 2026" in title, title


class _Hub:
    """The wall's hub as the download reads it: the current snapshot."""

    def __init__(self, figures: list[Figure]) -> None:
        self.snap = Snapshot(taken_at=JUST_AFTER_MIDNIGHT, figures=tuple(figures))

    async def current(self) -> Snapshot:
        return self.snap


class _Sources:
    """The workers' answers, read at each request: rolled over by one worker first."""

    def __init__(self, answers: list[list[Figure]]) -> None:
        self.answers = answers

    async def province_figures(self, window: str, province: str) -> list[Figure]:
        return self.answers.pop(0)


async def test_a_download_during_the_rollover_is_a_503_to_retry_and_then_whole() -> None:
    import httpx
    from starlette.applications import Starlette

    from services.wall.downloads import RETRY_AFTER_S, Downloads

    codes = (TN, "01843", "01840")
    rolling = [month_figure(TN, DECEMBER), *(month_figure(c, NOVEMBER) for c in codes[1:])]
    rolled = [month_figure(c, DECEMBER) for c in codes]
    sources = _Sources([rolling, rolled])
    downloads = Downloads(
        _Hub(rolled), sources, Scorecard.load(), "vi",  # type: ignore[arg-type]
        clock=lambda: JUST_AFTER_MIDNIGHT,
    )  # fmt: skip
    app = Starlette(routes=downloads.routes())
    params = {"unit": TN, "window": "month", "format": "csv"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://wall") as client:
        refused = await client.get("/wall/export", params=params)
        again = await client.get("/wall/export", params=params)
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == str(RETRY_AFTER_S)
    assert "content-disposition" not in refused.headers  # no file, not a mislabelled one
    error = refused.json()["error"]
    assert "period rolling over" in error and "retry in a few seconds" in error, error
    # Nothing is lost: asked again once the workers agree, the file holds every unit.
    assert again.status_code == 200, again.text
    assert 'filename="bao-cao-19-2026-12.csv"' in again.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(again.content.decode("utf-8-sig"))))
    assert sorted(r[0] for r in rows[2:]) == sorted(codes)
    assert sources.answers == []


def test_a_province_file_of_its_communes_names_the_province() -> None:
    from services.metrics.api import KpiQuery
    from services.metrics.download import subject
    from tests.unit.metrics.helpers import registry

    commune = Figure(
        ON_TIME, "01843", "month", 95, 100, 9_000, 20,
        unit_name="Phường Bắc Kạn", unit_name_en="Bac Kan Ward", level="commune",
        province=TN, parent=TN,
    )  # fmt: skip
    query = KpiQuery(frozenset(), frozenset({"commune"}), frozenset({TN}), frozenset(), ("month",))
    now = datetime(2026, 12, 5, 10, tzinfo=VN_TZ)
    named = subject(query, [commune], "vi", registry(), now)
    assert named == "Tỉnh Thái Nguyên (19), Các đơn vị cấp xã"
