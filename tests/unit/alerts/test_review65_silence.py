"""Review 65: silence is an incident, as the provincial on-call and the IOC live it.

Each test was a strict xfail for a defect found in the evaluation of UnitSilent, the
wall or Alertmanager's routes; all fixed 2026-12-06.
"""

import re
from datetime import date, datetime, timedelta
from itertools import count
from typing import Any

import yaml

from services.alerts.cadence import learn
from services.alerts.directory import UnitDirectory
from services.alerts.evaluation import Evaluator, Observation
from services.alerts.lifecycle import AlertBook
from services.alerts.model import State, Transition
from services.alerts.settings import AlertsSettings
from services.common.calendar import HOLIDAYS_FILE, VN_TZ, load_calendar
from services.common.figures import Figure
from services.common.rates import to_bp
from services.common.unit_info import UnitInfo

CAL = load_calendar(HOLIDAYS_FILE)  # the real calendar: Mon-Fri 07:30-17:00, holidays off
COMMUNES = [UnitInfo(f"c{i}", f"Xã {i}", f"Commune {i}", "commune", "19") for i in range(4)]
DIRECTORY = UnitDirectory(COMMUNES)


def vn(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=VN_TZ)


def evaluator(**settings: Any) -> Evaluator:
    values: dict[str, Any] = {"alert_windows": ["day"], "alert_burn_enabled": False}
    return Evaluator(AlertsSettings(**(values | settings)), CAL, DIRECTORY)


def new_book() -> AlertBook:
    ids = count()
    return AlertBook(new_id=lambda: f"id{next(ids)}")


def silent_verdicts(ev: Evaluator, book: AlertBook, seen: dict[tuple[str, str], datetime],
                    now: datetime, figures: list[Figure] | None = None,
                    complete: bool = True) -> list[Transition]:  # fmt: skip
    plan = ev.plan(book.open, now)
    obs = Observation(plan, figures or [], complete)
    return book.observe(ev.verdicts(obs, book.open, seen, now), now)


# --- 1. a unit's own silence teaches it to be silent: fire, "no longer silent", page ----


def _daily_sender_rows(now: datetime, last_day: date) -> list[tuple[str, str, int, date]]:
    """What services.alerts.sources.daily_history returns on ``now``'s day for c0, which
    sent one document every working day up to ``last_day`` (it has for months)."""
    today = now.astimezone(VN_TZ).date()
    first = CAL.working_days_back(now, 20).date()  # EGOV_ALERT_SILENT_CADENCE_DAYS
    days = [first + timedelta(days=i) for i in range((today - first).days)]
    sent = [d for d in days if CAL.is_working_day(d) and d <= last_day]
    return [("c0", "documents", len(sent), sent[0])] if sent else []


def test_a_silent_commune_is_not_resolved_by_relearning_its_own_silence() -> None:
    # c0 sends its one document a day at 09:00; the last one came on Monday 7 Dec 2026.
    last = vn(2026, 12, 7, 9)
    seen = {("c0", "documents"): last}
    ev, book = evaluator(), new_book()
    ev.start_watching(vn(2026, 9, 1, 8))
    transitions: list[Transition] = []
    learned_on: date | None = None
    now = vn(2026, 12, 7, 10)
    while now < vn(2026, 12, 18, 17):  # two working weeks of silence, checked hourly
        if now.date() != learned_on:  # the service relearns once per local day
            first = CAL.working_days_back(now, 20).date()
            rows = _daily_sender_rows(now, last.date())
            ev.learned(learn(rows, CAL, first, now.date()))
            learned_on = now.date()
        transitions += silent_verdicts(ev, book, seen, now)
        now += timedelta(hours=1)
    states = [(t.to_state, t.at) for t in transitions if t.to_state is not State.PENDING]
    fired = [at for s, at in states if s is State.FIRING]
    resolved = [(at, t.alert.annotations["summary_en"])
                for t in transitions if t.to_state is State.RESOLVED
                for at in [t.at]]  # fmt: skip
    assert fired, "the silent commune never paged"
    # Nothing was received: once fired, the alert must stay firing (one page, no flap).
    assert resolved == [], f"fired at {fired}, resolved while still silent: {resolved}"
    assert len(fired) == 1


# --- 2. one metrics worker down hides every other unit's silence -----------------------


def _fig(unit: str) -> Figure:
    return Figure("document_signing", unit, "day", 10, 10, to_bp(1.0), 5, f"Xã {unit}",
                  province="19")  # fmt: skip


def test_a_worker_outage_does_not_hide_the_silence_of_units_another_worker_answers_for() -> None:
    monday_8 = vn(2026, 12, 7, 8)
    seen = {("c0", "documents"): monday_8}
    ev, book = evaluator(), new_book()
    ev.start_watching(vn(2026, 9, 1, 8))
    answered = [_fig("c0")]  # c0's worker answers; the worker of c1..c3 is down
    assert silent_verdicts(ev, book, seen, vn(2026, 12, 7, 8, 30), answered) == []
    transitions: list[Transition] = []
    at = vn(2026, 12, 7, 8, 31)
    while at < vn(2026, 12, 7, 11):  # the other worker is down 08:31-11:00
        transitions += silent_verdicts(ev, book, seen, at, answered, complete=False)
        at += timedelta(minutes=1)
    transitions += silent_verdicts(ev, book, seen, vn(2026, 12, 7, 11), answered)
    fired = [t for t in transitions if t.to_state is State.FIRING]
    assert [t.alert.key.unit for t in fired] == ["c0"]
    assert fired[0].at <= vn(2026, 12, 7, 10, 1)  # 2 working hours after its last event


# --- 3. the province's one-stop system goes down: one notification per commune ---------

ALERTMANAGER_YML = HOLIDAYS_FILE.parents[1] / "deploy" / "alertmanager" / "alertmanager.yml"


def _matches(matchers: list[str], labels: dict[str, str]) -> bool:
    """Alertmanager's matchers: =, !=, =~, !~ (a missing label reads as "")."""
    for m in matchers:
        name, op, value = re.fullmatch(r"\s*(\w+)\s*(=~|!~|!=|=)\s*(.*)", m).groups()  # type: ignore[union-attr]
        value, got = value.strip().strip('"'), labels.get(name, "")
        matched = bool(re.fullmatch(value, got)) if "~" in op else got == value
        if matched == op.startswith("!"):
            return False
    return True


def _notifications(alerts: list[dict[str, str]]) -> set[tuple[str, ...]]:
    """The notification groups deploy/alertmanager/alertmanager.yml makes of these firing
    alerts: inhibited ones left out, the rest grouped by their route's group_by."""
    config = yaml.safe_load(ALERTMANAGER_YML.read_text("utf-8"))

    def inhibited(target: dict[str, str]) -> bool:
        for rule in config.get("inhibit_rules", []):
            if not _matches(rule.get("target_matchers", []), target):
                continue
            equal = rule.get("equal", [])
            for source in alerts:
                if (
                    source is not target
                    and _matches(rule.get("source_matchers", []), source)
                    and all(source.get(e, "") == target.get(e, "") for e in equal)
                ):
                    return True
        return False

    def group_by(labels: dict[str, str]) -> tuple[str, list[str]]:
        route, by, name = config["route"], config["route"]["group_by"], "root"
        while True:
            child = next((r for r in route.get("routes", [])
                          if _matches(r.get("matchers", []), labels)), None)  # fmt: skip
            if child is None:
                return name, by
            route, by, name = child, child.get("group_by", by), child.get("receiver", name)

    groups = set()
    for labels in alerts:
        if not inhibited(labels):
            receiver, by = group_by(labels)
            groups.add((receiver, *(labels.get(k, "") for k in by)))
    return groups


def test_a_whole_province_going_silent_is_one_notification_not_one_per_commune() -> None:
    province = UnitInfo("19", "Tỉnh Thái Nguyên", "Thai Nguyen Province", "province", "19")
    communes = [UnitInfo(f"19{i:03d}", f"Xã {i}", f"Commune {i}", "commune", "19", "19")
                for i in range(30)]  # fmt: skip
    ev = Evaluator(AlertsSettings(alert_windows=["day"], alert_burn_enabled=False), CAL,
                   UnitDirectory([province, *communes]))  # fmt: skip
    ev.start_watching(vn(2026, 9, 1, 8))
    friday_16 = vn(2026, 12, 4, 16)  # the one-stop system went down on Friday afternoon
    seen = {(u.code, "dossiers"): friday_16 for u in [province, *communes]}
    seen |= {(u.code, "documents"): vn(2026, 12, 7, 9, 55) for u in [province, *communes]}
    book = new_book()
    assert silent_verdicts(ev, book, seen, vn(2026, 12, 7, 8)) == []  # 1 h 30 of silence
    fired = silent_verdicts(ev, book, seen, vn(2026, 12, 7, 9, 1))  # 2 h 31
    firing = [t.alert.labels for t in fired if t.to_state is State.FIRING]
    assert len(firing) == 31  # the province and its 30 communes, in dossiers
    assert len(_notifications(firing)) <= 2, sorted(_notifications(firing))[:3]


# --- 4. the alerts service (re)starts while a metrics worker is down --------------------


def test_a_worker_down_when_the_service_starts_does_not_page_its_units_when_it_answers() -> None:
    seen = {("c1", "documents"): vn(2026, 12, 7, 8, 30)}  # c1 sent at 08:30
    ev, book = evaluator(), new_book()  # the service (re)starts at 09:00
    ev.start_watching(vn(2026, 9, 1, 8))
    transitions: list[Transition] = []
    at = vn(2026, 12, 7, 9)
    while at < vn(2026, 12, 7, 11):  # c1's worker does not answer until 11:00
        transitions += silent_verdicts(ev, book, seen, at, complete=False)
        at += timedelta(minutes=1)
    # At 11:00 it answers; its backlog (c1's events since 08:30) is still being counted.
    transitions += silent_verdicts(ev, book, seen, vn(2026, 12, 7, 11))
    assert [t.to_state for t in transitions] == []  # 30 min of silence seen, not 2 h 30


# --- 5. the IOC wall: a commune that never sent anything is not on the page ------------


def test_the_wall_shows_a_never_heard_commune_as_silent() -> None:
    from services.wall.model import Alert as WallAlert
    from services.wall.overview import build_overview
    from services.wall.snapshot import Snapshot

    now = vn(2026, 12, 7, 14)

    def figure(unit: str, name: str, level: str, parent: str | None) -> Figure:
        return Figure("document_signing", unit, "day", 40, 40, to_bp(1.0), 5, name,
                      level=level, province="19", parent=parent,
                      last_event_time=now - timedelta(minutes=5))  # fmt: skip

    figures = (figure("19", "Thái Nguyên", "province", None),
               figure("01840", "Phường Đức Xuân", "commune", "19"))  # fmt: skip
    # Xã Phong Quang (01849) has never sent anything: its UnitSilent fires (peer rule).
    alert = WallAlert("a1", "UnitSilent", "documents", "01849", "working-hours", "warning",
                      "firing", "19", "Xã Phong Quang (01849): không nhận được dữ liệu",
                      "Xã Phong Quang (01849): no data (nothing received yet)",
                      now - timedelta(hours=3), None, None)  # fmt: skip
    snapshot = Snapshot(now, figures, (), (alert,))
    ov = build_overview(snapshot, "19", None, now, 30.0, CAL)
    assert [a.unit for a in ov.alerts or []] == ["01849"]  # the wall lists its alert...
    assert "01849" in [r.unit.code for r in ov.silent]  # ...and must show it silent


# --- 6. a commune that meets twice a month pages every fortnight ------------------------


def test_a_commune_meeting_every_ten_working_days_is_not_paged_between_its_meetings() -> None:
    last = vn(2026, 12, 1, 9)  # its last meeting; the one before was 10 working days earlier
    ev, book = evaluator(), new_book()
    ev.start_watching(vn(2026, 9, 1, 8))
    day, worked = last.date(), 0
    while worked < 9:  # nine working days on, one before its next usual meeting
        day += timedelta(days=1)
        worked += CAL.is_working_day(day)
    now = vn(day.year, day.month, day.day, 16)
    first = CAL.working_days_back(now, 20).date()
    ev.learned(learn([("c0", "meetings", 2, first)], CAL, first, now.date()))
    # 1.5 usual gaps, not the 9 working days that capped every unit's and paged this one
    assert ev.cadence().silent_after("c0", "meetings") == 1.5 * 10 * 9.5 * 3600
    fired = silent_verdicts(ev, book, {("c0", "meetings"): last}, now)
    assert [t.to_state for t in fired] == []
