"""Silence against each unit's own cadence: learned from its daily figures, per family."""

from datetime import date, datetime, timedelta

from services.alerts import conditions as c
from services.alerts.cadence import WORKDAY_S, Cadence, Usual, learn
from services.alerts.directory import UnitDirectory
from services.alerts.model import Status
from services.common.calendar import VN_TZ, WorkingCalendar
from services.common.unit_info import UnitInfo

CAL = WorkingCalendar()
DIRECTORY = UnitDirectory(
    [UnitInfo(f"c{i}", f"Xã {i}", f"Commune {i}", "commune", "19") for i in range(3)]
)
MONDAY = date(2026, 11, 23)
FIRST = CAL.working_days_back(datetime(2026, 11, 23, 12, tzinfo=VN_TZ), 20).date()


def cadence(usual: dict[tuple[str, str], Usual]) -> Cadence:
    # Production defaults: 2 working hours, one working week for meetings, 5 gaps.
    return Cadence(7200, 5 * WORKDAY_S, 5, 9 * WORKDAY_S, usual)


def silent(usual: dict[tuple[str, str], Usual], seen: dict[tuple[str, str], datetime],
           now: datetime) -> dict[tuple[str, str], Status]:  # fmt: skip
    rule = c.SilenceRule(cadence(usual), lookback_days=10, peer_share=1.01)
    verdicts = c.unit_silent(seen, now, now - timedelta(days=30), CAL, DIRECTORY, rule)
    return {(v.key.unit, v.key.kpi): v.status for v in verdicts}


def test_weekly_meetings_are_not_paged_after_two_working_hours_daily_documents_are() -> None:
    # Four working weeks of history: c0 sends about 40 documents every working day, c1
    # holds three meetings a week (Monday, Wednesday, Friday).
    rows = [("c0", "documents", 40 * 20, FIRST), ("c1", "meetings", 3 * 4, FIRST)]
    usual = learn(rows, CAL, FIRST, MONDAY)
    assert usual[("c0", "documents")].working_days == 20
    at_8 = datetime(2026, 11, 23, 8, tzinfo=VN_TZ)
    seen = {("c0", "documents"): at_8, ("c1", "meetings"): at_8}
    at_10_30 = silent(usual, seen, at_8 + timedelta(hours=2, minutes=30))
    assert at_10_30[("c0", "documents")] is Status.BREACH
    assert at_10_30[("c1", "meetings")] is Status.CLEAR
    # The meetings stop for good: after more than five of its usual gaps (each 20/12 days).
    later = datetime(2026, 12, 4, 16, tzinfo=VN_TZ)  # 9 working days on
    assert silent(usual, seen, later)[("c1", "meetings")] is Status.BREACH


def test_a_unit_with_few_documents_a_day_is_given_its_own_longer_gap() -> None:
    rows = [("c0", "documents", 3 * 20, FIRST)]  # three documents a day
    usual = learn(rows, CAL, FIRST, MONDAY)
    after = cadence(usual).silent_after("c0", "documents")
    assert after == 5 * WORKDAY_S / 3  # five of its usual gaps of 3h10m: 15h50m
    at_8 = datetime(2026, 11, 23, 8, tzinfo=VN_TZ)
    seen = {("c0", "documents"): at_8}
    assert silent(usual, seen, at_8 + timedelta(hours=3))[("c0", "documents")] is Status.CLEAR
    tuesday_16 = at_8 + timedelta(days=1, hours=8)  # 9 + 8.5 working hours
    assert silent(usual, seen, tuesday_16)[("c0", "documents")] is Status.BREACH


def test_without_history_the_family_defaults_apply() -> None:
    empty = cadence({})
    assert empty.silent_after("c2", "documents") == 7200
    assert empty.silent_after("c2", "dossiers") == 7200
    assert empty.silent_after("c2", "meetings") == 5 * WORKDAY_S
    # A busy unit is never judged sooner than the floor; a rare one never later than the
    # lookback lets its alert fire, unless 1.5 of its usual gaps are later still (review
    # 65: a unit meeting every ten working days was paged at every ordinary gap).
    busy = cadence({("c0", "documents"): Usual(10_000, 20)})
    weekly = cadence({("c0", "documents"): Usual(4, 20)})
    rare = cadence({("c0", "documents"): Usual(1, 20)})
    assert busy.silent_after("c0", "documents") == 7200
    assert weekly.silent_after("c0", "documents") == 9 * WORKDAY_S
    assert rare.silent_after("c0", "documents") == 1.5 * 20 * WORKDAY_S


def test_learning_counts_working_days_from_the_first_event_and_skips_days_off() -> None:
    # Thursday 19 November to Sunday 22: Thursday and Friday are the working days.
    holidays = WorkingCalendar(days_off=frozenset({date(2026, 11, 20)}))
    rows = [("c0", "documents", 10, date(2026, 11, 19))]
    assert learn(rows, CAL, FIRST, MONDAY)[("c0", "documents")].working_days == 2
    assert learn(rows, holidays, FIRST, MONDAY)[("c0", "documents")].working_days == 1
    # Events only today (nothing complete yet): at least one day, never a division by 0.
    assert (
        learn([("c0", "documents", 5, MONDAY)], CAL, FIRST, MONDAY)[
            ("c0", "documents")
        ].working_days
        == 1
    )
