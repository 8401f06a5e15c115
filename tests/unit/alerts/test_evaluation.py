"""One evaluation cycle: which windows it reads, per-window volume, the end of a day."""

from datetime import datetime, timedelta
from itertools import count
from typing import Any

from services.alerts import conditions as c
from services.alerts.directory import UnitDirectory
from services.alerts.evaluation import Evaluator, Observation, Plan
from services.alerts.lifecycle import AlertBook
from services.alerts.model import State, Transition
from services.alerts.settings import AlertsSettings
from services.common.calendar import VN_TZ, WorkingCalendar
from services.common.figures import Figure
from services.common.rates import to_bp

MONDAY_10 = datetime(2026, 11, 23, 10, tzinfo=VN_TZ)


def evaluator(**settings: Any) -> Evaluator:
    values: dict[str, Any] = {"alert_for_s": 0, "alert_burn_enabled": False} | settings
    return Evaluator(AlertsSettings(**values), WorkingCalendar(always=True), UnitDirectory([]))


def fig(num: int, den: int, window: str = "day", *, kpi: str = "meeting_online",
        min_volume: int = 5, start: datetime | None = None) -> Figure:  # fmt: skip
    return Figure(kpi, "c1", window, num, den, to_bp(0.9), min_volume, "Xã Một",
                  province="19", period_start=start)  # fmt: skip


def cycle(ev: Evaluator, book: AlertBook, figures: list[Figure], now: datetime,
          complete: bool = True) -> list[Transition]:  # fmt: skip
    plan = ev.plan(book.open, now)
    seen = [f for f in figures if f.window in plan.windows]
    verdicts = ev.verdicts(Observation(plan, seen, complete), book.open, {}, now)
    return book.observe(verdicts, now)


def new_book() -> AlertBook:
    ids = count()
    return AlertBook(new_id=lambda: f"id{next(ids)}")


def test_month_and_year_are_evaluated_by_default_on_slow_cycles() -> None:
    ev = evaluator()
    assert ev.plan({}, MONDAY_10) == Plan(("day", "month", "year"), slow=True)
    ev.verdicts(Observation(Plan(("day", "month", "year"), True), [], True), {}, {}, MONDAY_10)
    assert ev.plan({}, MONDAY_10 + timedelta(seconds=2)).windows == ("day",)
    assert ev.plan({}, MONDAY_10 + timedelta(seconds=30)).windows == ("day", "month", "year")


def test_meetings_below_the_day_minimum_alert_on_the_month() -> None:
    # Two meetings today (below min_volume 5), eleven of twenty online this month.
    book = new_book()
    figures = [fig(1, 2), fig(11, 20, "month"), fig(200, 210, "year")]
    opened = cycle(evaluator(), book, figures, MONDAY_10)
    assert [(t.alert.key.window, t.to_state) for t in opened] == [
        ("month", State.PENDING), ("month", State.FIRING)
    ]  # fmt: skip


def test_min_volume_per_window() -> None:
    ev = evaluator(alert_min_volume="year=3")  # the year judged from 15 meetings on
    book = new_book()
    assert cycle(ev, book, [fig(10, 14, "year")], MONDAY_10) == []
    assert cycle(evaluator(), new_book(), [fig(10, 14, "year")], MONDAY_10) != []
    later = MONDAY_10 + timedelta(minutes=1)
    assert [t.alert.key.window for t in cycle(ev, book, [fig(10, 15, "year")], later)] == [
        "year", "year"
    ]  # fmt: skip


def day_alert_firing() -> tuple[Evaluator, AlertBook]:
    ev, book = evaluator(), new_book()
    start = MONDAY_10.replace(hour=0)
    cycle(ev, book, [fig(10, 20, kpi="document_signing", start=start)], MONDAY_10)
    (alert,) = book.open.values()
    assert alert.state is State.FIRING and alert.values["period"] == "2026-11-23"
    return ev, book


def test_a_day_alert_resolves_when_its_day_ends_keeping_that_days_text() -> None:
    ev, book = day_alert_firing()
    text = dict(next(iter(book.open.values())).annotations)
    after_midnight = datetime(2026, 11, 24, 0, 0, 5, tzinfo=VN_TZ)
    empty_day = fig(0, 0, kpi="document_signing", start=after_midnight.replace(second=0))
    (resolved,) = cycle(ev, book, [empty_day], after_midnight)
    assert resolved.to_state is State.RESOLVED
    assert resolved.values["ended"] == "day" and resolved.values["period"] == "2026-11-23"
    assert resolved.alert.annotations == text  # yesterday's figures, not 0 of 0
    assert book.open == {}


def test_a_day_alert_goes_on_when_the_new_day_breaches_too() -> None:
    ev, book = day_alert_firing()
    next_day = datetime(2026, 11, 24, 10, tzinfo=VN_TZ)
    still = fig(5, 20, kpi="document_signing", start=next_day.replace(hour=0))
    assert cycle(ev, book, [still], next_day) == []
    assert next(iter(book.open.values())).values["period"] == "2026-11-24"


def test_a_day_alert_of_a_unit_nobody_answered_for_waits() -> None:
    ev, book = day_alert_firing()
    after_midnight = datetime(2026, 11, 24, 0, 0, 5, tzinfo=VN_TZ)
    assert cycle(ev, book, [], after_midnight, complete=False) == []  # unknown: holds
    assert [t.to_state for t in cycle(ev, book, [], after_midnight)] == [State.RESOLVED]


def test_the_day_is_the_figures_own_until_the_worker_rolls_over() -> None:
    # The alerts' clock is past midnight, the worker's figure still of yesterday: HOLD
    # (inside the margin) does not end the day; the worker's new day does.
    ev, book = day_alert_firing()
    just_after = datetime(2026, 11, 24, 0, 0, 1, tzinfo=VN_TZ)
    yesterday = MONDAY_10.replace(hour=0)
    assert cycle(ev, book, [fig(18, 20, kpi="document_signing", start=yesterday)],
                 just_after) == []  # fmt: skip
    assert c.BELOW in {k.condition for k in book.open}


def test_burn_windows_read_on_slow_cycles_are_not_judged_below_target() -> None:
    ev, book = evaluator(alert_burn_enabled=True), new_book()
    rolling = [fig(0, 100, w, kpi="document_signing") for w in c.BURN_WINDOWS]
    assert {w for w in c.BURN_WINDOWS} <= set(ev.plan({}, MONDAY_10).windows)
    opened = {(t.alert.key.condition, t.alert.key.window) for t in
              cycle(ev, book, rolling, MONDAY_10)}  # fmt: skip
    assert opened == {(c.BURN, "6h")}  # at a 90 % target only the slow rule can fire


def test_a_month_alert_resolves_on_the_first_and_waits_on_cycles_that_skip_the_month() -> None:
    ev, book = evaluator(), new_book()
    cycle(ev, book, [fig(10, 20, "month", start=datetime(2026, 11, 1, tzinfo=VN_TZ))],
          MONDAY_10)  # fmt: skip
    assert [a.key.window for a in book.open.values()] == ["month"]
    first = datetime(2026, 12, 1, 0, 0, 5, tzinfo=VN_TZ)
    fast = Observation(Plan(("day",), slow=False), [], complete=True)  # month not read
    assert book.observe(ev.verdicts(fast, book.open, {}, first), first) == []
    december = fig(0, 0, "month", start=datetime(2026, 12, 1, tzinfo=VN_TZ))
    (resolved,) = cycle(ev, book, [december], first)
    assert resolved.to_state is State.RESOLVED and resolved.values["ended"] == "month"
    assert resolved.values["period"] == "2026-11-01"


def scraped(ev: Evaluator, book: AlertBook, scrape: c.IngestScrape, now: datetime) -> None:
    plan = ev.plan(book.open, now)
    book.observe(ev.verdicts(Observation(plan, [], False, scrape), book.open, {}, now), now)


def test_rejections_over_an_ingest_restart_count_everything_the_new_process_counted() -> None:
    """Ingest restarted between two scrapes and its counters passed their old values:
    1,000 accepted and 50 rejected by value, 4.8 %, where the new process refused 550 of
    2,550 (21.6 %). Its counters' start says it began again."""
    ev, book = evaluator(alert_rejection_window_s=120.0), new_book()
    old_start = {"k1": {"accepted": 1_000.0, "rejected": 1_000.0}}
    scraped(ev, book, c.IngestScrape({"k1": {"accepted": 1_000.0, "rejected": 500.0}}, old_start),
            MONDAY_10)  # fmt: skip
    new_start = {"k1": {"accepted": 5_000.0, "rejected": 5_000.0}}
    at = MONDAY_10 + timedelta(minutes=1)
    scraped(ev, book, c.IngestScrape({"k1": {"accepted": 2_000.0, "rejected": 550.0}}, new_start),
            at)  # fmt: skip
    (alert,) = book.open.values()
    assert alert.state is State.FIRING and alert.key.condition == c.REJECTIONS
    assert (alert.values["rejected"], alert.values["total"]) == (550, 2_550)
    # A minute later, 100 more of each: summed over the window's scrapes, not re-read.
    later = MONDAY_10 + timedelta(minutes=2)
    scraped(ev, book, c.IngestScrape({"k1": {"accepted": 2_100.0, "rejected": 650.0}}, new_start),
            later)  # fmt: skip
    (alert,) = book.open.values()
    assert (alert.values["rejected"], alert.values["total"]) == (650, 2_750)
