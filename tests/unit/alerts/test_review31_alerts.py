"""Review 31 of the alerts service: defects an on-call person would suffer (the first
four were strict xfails until fixed; the rest hold the fixes' other cases). Pure
(injected clocks, no server): the texts a resolution carries to Alertmanager (its
resolved notification's annotations) and to the webhook/Kafka events.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import count
from typing import Any

import pytest

from services.alerts import conditions as c
from services.alerts.alertmanager import payload
from services.alerts.directory import UnitDirectory
from services.alerts.evaluation import Evaluator, Observation
from services.alerts.lifecycle import AlertBook
from services.alerts.model import State, Transition
from services.alerts.settings import AlertsSettings
from services.common.calendar import VN_TZ, WorkingCalendar
from services.common.figures import Figure
from services.common.rates import to_bp
from services.common.unit_info import UnitInfo

T0 = datetime(2026, 11, 23, 10, tzinfo=VN_TZ)


def new_book() -> AlertBook:
    ids = count()
    return AlertBook([], new_id=lambda: f"id{next(ids)}")


def evaluator(**settings: Any) -> Evaluator:
    base: dict[str, Any] = {
        "alert_for_s": 0,
        "alert_burn_for_s": 0,
        "alert_burn_keep_firing_s": 0,
        "alert_burn_interval_s": 30,
        "alert_windows": ["day"],
    }
    return Evaluator(
        AlertsSettings(**(base | settings)), WorkingCalendar(always=True), UnitDirectory([])
    )


def cycle(ev: Evaluator, book: AlertBook, figures: list[Figure], at: datetime) -> list[Transition]:
    plan = ev.plan(book.open, at)
    verdicts = ev.verdicts(Observation(plan, figures, True), book.open, {}, at)
    return book.observe(verdicts, at)


def day_figure(num: int, den: int, target: float = 0.95) -> Figure:
    return Figure(
        "document_signing", "404", "day", num, den, to_bp(target), 20,
        "Huyện Nông Cống", "Nong Cong District", province="38",
    )  # fmt: skip


def test_a_recovered_below_target_alert_does_not_say_below_target_when_it_resolves() -> None:
    ev, book = evaluator(), new_book()
    fired = cycle(ev, book, [day_figure(800, 1000)], T0)  # 80 %: below 95 %
    assert [t.to_state for t in fired] == [State.PENDING, State.FIRING]
    later = T0 + timedelta(minutes=5)
    (resolved,) = cycle(ev, book, [day_figure(975, 1000)], later)  # 97,5 %: past 97 %
    assert resolved.to_state is State.RESOLVED
    # What Alertmanager's resolved notification (and the webhook's alert.resolved) shows.
    sent = payload(
        resolved.alert, later, timedelta(minutes=4), "http://alerts", "http://alerts/runbooks"
    )
    summary_vi, summary_en = sent["annotations"]["summary_vi"], sent["annotations"]["summary_en"]
    assert "97,50 %" in summary_vi  # the figures are the current ones ...
    assert "thấp hơn mục tiêu" not in summary_vi  # ... but not "below the target"
    assert "below the" not in summary_en


def burn_figures(num: int, den: int) -> list[Figure]:
    return [
        Figure("meeting_online", "c1", w, num, den, to_bp(0.90), 5, "Xã Một", province="19")
        for w in c.BURN_WINDOWS
    ]


def test_a_resolved_burn_alert_does_not_say_it_is_falling_fast() -> None:
    ev, book = evaluator(alert_windows=["day"]), new_book()
    fired = cycle(ev, book, burn_figures(400, 1000), T0)  # 60 % missed: 6x a 10 % budget
    assert [t.to_state for t in fired] == [State.PENDING, State.FIRING]
    later = T0 + timedelta(seconds=30)
    (resolved,) = cycle(ev, book, burn_figures(990, 1000), later)  # 1 % missed: 0.1x
    assert resolved.to_state is State.RESOLVED
    summary_vi = resolved.alert.annotations["summary_vi"]
    summary_en = resolved.alert.annotations["summary_en"]
    assert "đang giảm nhanh" not in summary_vi, summary_vi
    assert "is falling fast" not in summary_en, summary_en


def rejections_cycle(
    ev: Evaluator, book: AlertBook, counters: dict[str, dict[str, float]], at: datetime
) -> list[Transition]:
    plan = ev.plan(book.open, at)
    scrape = c.IngestScrape(counters)
    verdicts = ev.verdicts(Observation(plan, [], False, scrape), book.open, {}, at)
    return book.observe(verdicts, at)


def test_the_rejections_text_says_its_period_in_words_not_a_window_code() -> None:
    ev, book = evaluator(), new_book()
    counters = {"k1": {"accepted": 10.0, "rejected": 40.0}}
    rejections_cycle(ev, book, counters, T0)
    counters = {"k1": {"accepted": 20.0, "rejected": 80.0}}
    opened = rejections_cycle(ev, book, counters, T0 + timedelta(seconds=60))
    assert [t.to_state for t in opened] == [State.PENDING, State.FIRING]
    alert = opened[-1].alert
    assert alert.key.window == "10m"  # the label may stay a code ...
    en, vi = alert.annotations["summary_en"], alert.annotations["summary_vi"]
    assert "10m" not in en, en  # ... the page says "over the last 10 minutes"
    assert "10m" not in vi, vi


def test_a_rejections_alert_ends_once_its_publisher_has_sent_nothing_for_a_window() -> None:
    ev, book = evaluator(), new_book()
    counters = {"k1": {"accepted": 0.0, "rejected": 0.0}}
    history: list[Transition] = []
    for minute in range(10):  # 80 % rejected for ten minutes
        counters = {"k1": {"accepted": 10.0 * (minute + 1), "rejected": 40.0 * (minute + 1)}}
        history += rejections_cycle(ev, book, counters, T0 + timedelta(minutes=minute))
    assert State.FIRING in [t.to_state for t in history]
    # The key is revoked (or its system switched off): its counters stop moving.
    for minute in range(10, 60):
        history += rejections_cycle(ev, book, counters, T0 + timedelta(minutes=minute))
    # An hour later, five windows without a single event: nothing is being rejected.
    assert history[-1].to_state is State.RESOLVED, [a.values for a in book.open.values()]


# --- the fixes' other cases -------------------------------------------------------------


def test_a_recovered_alert_says_it_meets_its_target_in_both_languages() -> None:
    ev, book = evaluator(), new_book()
    cycle(ev, book, [day_figure(800, 1000)], T0)
    (resolved,) = cycle(ev, book, [day_figure(975, 1000)], T0 + timedelta(minutes=5))
    assert resolved.alert.annotations["summary_en"] == (
        "Nong Cong District (404): document_signing today is 97.50% (975 / 1,000), "
        "meeting the 95% target."
    )
    assert resolved.alert.annotations["summary_vi"] == (
        "Huyện Nông Cống (404): document_signing hôm nay đạt 97,50 % (975 / 1.000), "
        "đã đạt mục tiêu 95 %."
    )


@pytest.mark.parametrize(("num", "den", "vi", "en"), [
    (1, 2, "chưa đủ số lượng để đánh giá", "too few items to judge"),
    (0, 0, "chưa có số liệu", "nothing counted, too few items to judge"),
])  # fmt: skip
def test_a_firing_alert_on_too_few_items_is_not_called_below_target(
    num: int, den: int, vi: str, en: str
) -> None:
    ev, book = evaluator(), new_book()
    cycle(ev, book, [day_figure(800, 1000)], T0)
    assert cycle(ev, book, [day_figure(num, den)], T0 + timedelta(minutes=5)) == []
    (alert,) = book.open.values()
    assert alert.state is State.FIRING  # too few to judge: held, as before
    summary_vi, summary_en = alert.annotations["summary_vi"], alert.annotations["summary_en"]
    assert vi in summary_vi and "thấp hơn mục tiêu" not in summary_vi, summary_vi
    assert en in summary_en and "below the" not in summary_en, summary_en


def test_a_resolved_burn_alert_says_it_stopped_with_its_figures() -> None:
    ev, book = evaluator(alert_windows=["day"]), new_book()
    cycle(ev, book, burn_figures(400, 1000), T0)
    (resolved,) = cycle(ev, book, burn_figures(990, 1000), T0 + timedelta(seconds=30))
    summary_vi = resolved.alert.annotations["summary_vi"]
    summary_en = resolved.alert.annotations["summary_en"]
    assert summary_en.startswith("Xã Một (c1): meeting_online is no longer falling fast: ")
    assert "over the last 6 hours is 0.1 times" in summary_en  # the figures, as before
    assert "(alert at 6 times)" in summary_en
    assert "đã ngừng giảm nhanh: tỷ lệ chưa đạt trong 6 giờ qua gấp 0,1 lần" in summary_vi


def test_a_burn_alert_ended_on_too_few_items_does_not_say_it_is_falling_fast() -> None:
    """Its hold ran out on an evaluation with too little volume: that verdict's text is
    the resolution's."""
    ev, book = evaluator(alert_burn_keep_firing_s=60), new_book()
    cycle(ev, book, burn_figures(400, 1000), T0)
    assert cycle(ev, book, burn_figures(990, 1000), T0 + timedelta(seconds=30)) == []  # held
    (resolved,) = cycle(ev, book, burn_figures(0, 0), T0 + timedelta(seconds=90))
    assert resolved.to_state is State.RESOLVED
    assert "is falling fast" not in resolved.alert.annotations["summary_en"]
    assert "đang giảm nhanh" not in resolved.alert.annotations["summary_vi"]
    assert "too few items to judge" in resolved.alert.annotations["summary_en"]


def silent_cycle(ev: Evaluator, book: AlertBook, last: datetime, at: datetime) -> list[Transition]:
    plan = ev.plan(book.open, at)
    seen = {("c1", "documents"): last}
    return book.observe(ev.verdicts(Observation(plan, [], True), book.open, seen, at), at)


def test_a_resolved_unit_silent_alert_does_not_say_no_data() -> None:
    ev, book = evaluator(alert_windows=["day"]), new_book()
    ev.start_watching(T0)
    fired = silent_cycle(ev, book, T0, T0 + timedelta(hours=3))  # silent after 2 h
    assert [t.to_state for t in fired] == [State.PENDING, State.FIRING]
    assert (
        "no data from the document-management system for 3 h"
        in (fired[-1].alert.annotations["summary_en"])
    )
    event = T0 + timedelta(hours=3, minutes=1)
    (resolved,) = silent_cycle(ev, book, event, event + timedelta(minutes=1))
    assert resolved.to_state is State.RESOLVED
    summary_vi = resolved.alert.annotations["summary_vi"]
    summary_en = resolved.alert.annotations["summary_en"]
    assert "không nhận được dữ liệu từ" not in summary_vi, summary_vi
    assert "no data from" not in summary_en, summary_en
    assert summary_en == (
        "c1 (c1): the document-management system is no longer silent (last received "
        "23 Nov 2026 13:01, 1 min of working time ago; alert after 2 h of working time "
        "without data)."
    )
    assert "hệ thống quản lý văn bản không còn im lặng (lần cuối: 23/11/2026 13:01" in (summary_vi)


def test_a_silent_alert_of_a_dissolved_unit_says_why_it_ends() -> None:
    gone = UnitInfo("c1", "Xã Một", "Mot Commune", "commune", "19")
    ev = Evaluator(
        AlertsSettings(alert_windows=["day"]), WorkingCalendar(always=True),
        UnitDirectory([gone]),
    )  # fmt: skip
    book = new_book()
    ev.start_watching(T0)
    silent_cycle(ev, book, T0, T0 + timedelta(hours=3))
    ev.directory = UnitDirectory([UnitInfo("c2", "Xã Hai", "Hai Commune", "commune", "19")])
    (resolved,) = silent_cycle(ev, book, T0, T0 + timedelta(hours=4))
    assert resolved.to_state is State.RESOLVED
    assert "no longer in the unit directory" in resolved.alert.annotations["summary_en"]
    assert "không còn trong danh mục đơn vị" in resolved.alert.annotations["summary_vi"]


def firing_rejections(ev: Evaluator, book: AlertBook) -> dict[str, dict[str, float]]:
    """k1 80 % rejected for ten minutes, firing; returns its last counters."""
    counters: dict[str, dict[str, float]] = {}
    for minute in range(10):
        counters = {"k1": {"accepted": 10.0 * (minute + 1), "rejected": 40.0 * (minute + 1)}}
        rejections_cycle(ev, book, counters, T0 + timedelta(minutes=minute))
    assert [a.state for a in book.open.values()] == [State.FIRING]
    return counters


def test_a_rejections_alert_resolves_saying_nothing_was_sent() -> None:
    ev, book = evaluator(), new_book()
    counters = firing_rejections(ev, book)
    history: list[Transition] = []
    for minute in range(10, 30):
        history += rejections_cycle(ev, book, counters, T0 + timedelta(minutes=minute))
    (resolved,) = history
    # The window from 10:09 (the last events) to 10:19 holds none: the first complete one.
    assert resolved.at == T0 + timedelta(minutes=19)
    assert resolved.alert.annotations["summary_en"] == (
        "Publisher (key k1) sent no events over the last 10 min: nothing rejected."
    )
    assert resolved.alert.annotations["summary_vi"] == (
        "Hệ thống gửi dữ liệu (khóa k1) không gửi bản tin nào trong 10 phút qua: không có "
        "bản tin bị từ chối."
    )


def test_a_rejections_alert_ends_when_a_few_events_a_window_are_all_accepted() -> None:
    """The publisher was fixed and sends five events per window, under the 20 needed to
    judge a share: none rejected over a whole window ends the alert; one rejected of
    five still holds it (a share of five says little either way)."""
    ev, book = evaluator(), new_book()
    counters = firing_rejections(ev, book)  # 10:09, 100 accepted and 400 rejected
    accepted, rejected = counters["k1"]["accepted"], counters["k1"]["rejected"]
    history: list[Transition] = []
    for minute in range(10, 30):
        accepted += minute % 2  # one event every two minutes: 5 per window, all accepted
        history += rejections_cycle(
            ev, book, {"k1": {"accepted": accepted, "rejected": rejected}},
            T0 + timedelta(minutes=minute),
        )  # fmt: skip
    (resolved,) = history
    assert resolved.at == T0 + timedelta(minutes=19)  # the first whole window, 10:09-10:19
    assert resolved.alert.annotations["summary_en"] == (
        "Publisher (key k1) had 0.00% of its events rejected over the last 10 min (0 / 5):"
        " back to normal."
    )
    # Four accepted and one rejected a window: too few to judge, so it is held firing.
    ev, book = evaluator(), new_book()
    counters = firing_rejections(ev, book)
    accepted, rejected = counters["k1"]["accepted"], counters["k1"]["rejected"]
    for minute in range(10, 30):
        if minute % 2:  # one every two minutes, every fifth of them rejected
            rejected, accepted = (
                (rejected + 1, accepted) if minute % 10 == 1 else (rejected, accepted + 1)
            )
        assert rejections_cycle(
            ev, book, {"k1": {"accepted": accepted, "rejected": rejected}},
            T0 + timedelta(minutes=minute),
        ) == []  # fmt: skip


def test_no_events_over_less_than_a_window_does_not_end_the_alert() -> None:
    """Right after a start the two scrapes compared are a minute apart: a minute without
    events says little about a publisher that sends a few an hour."""
    ev, book = evaluator(), new_book()
    counters = firing_rejections(ev, book)
    restarted = evaluator()  # remembers no scrape: its first windows are short
    rejections_cycle(restarted, book, counters, T0 + timedelta(minutes=10))
    assert rejections_cycle(restarted, book, counters, T0 + timedelta(minutes=11)) == []
    assert [a.state for a in book.open.values()] == [State.FIRING]


def test_a_key_gone_from_ingests_counters_does_not_hold_its_alert_open() -> None:
    ev, book = evaluator(), new_book()
    firing_rejections(ev, book)
    history: list[Transition] = []
    for minute in range(10, 30):  # ingest restarted: k1 is in no counter any more
        history += rejections_cycle(
            ev, book, {"k2": {"accepted": 5.0}}, T0 + timedelta(minutes=minute)
        )
    assert [t.to_state for t in history] == [State.RESOLVED]
    assert history[0].alert.key.unit == "k1"
    assert "sent no events" in history[0].alert.annotations["summary_en"]


@pytest.mark.parametrize(("window_s", "label", "vi", "en"), [
    (600.0, "10m", "trong 10 phút qua", "over the last 10 min"),
    (900.0, "15m", "trong 15 phút qua", "over the last 15 min"),
    (3600.0, "60m", "trong 1 giờ qua", "over the last hour"),
    (5400.0, "90m", "trong 1 giờ 30 phút qua", "over the last 1 h 30 min"),
])  # fmt: skip
def test_the_rejections_period_reads_in_words_for_any_window(
    window_s: float, label: str, vi: str, en: str
) -> None:
    ev, book = evaluator(alert_rejection_window_s=window_s), new_book()
    rejections_cycle(ev, book, {"k1": {"accepted": 10.0, "rejected": 40.0}}, T0)
    later = T0 + timedelta(seconds=60)
    (_, fired) = rejections_cycle(ev, book, {"k1": {"accepted": 20.0, "rejected": 80.0}}, later)
    assert fired.alert.key.window == label  # the label, part of the identity, unchanged
    assert (
        f"rejected {en} (40 / 50): check its integration." in fired.alert.annotations["summary_en"]
    )
    assert f"bản tin {vi} (40 / 50)" in fired.alert.annotations["summary_vi"]
