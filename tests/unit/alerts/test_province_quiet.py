"""A province gone quiet in a family: its units' UnitSilent are held, then blind
(services/alerts/province.py, review 66). The review's two scenarios are in
tests/unit/test_review66_today.py; these hold the rules and what must not change."""

from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import count

from services.alerts import conditions, text
from services.alerts.conditions import Blind, blind_seconds
from services.alerts.directory import UnitDirectory
from services.alerts.evaluation import Evaluator, Observation
from services.alerts.lifecycle import AlertBook
from services.alerts.model import Alert, AlertKey, State, Status, Transition, Verdict
from services.alerts.province import QUIET_SHARE, QuietSpans, hold_units
from services.alerts.settings import AlertsSettings
from services.common.calendar import HOLIDAYS_FILE, VN_TZ, load_calendar
from services.common.unit_info import UnitInfo

CAL = load_calendar(HOLIDAYS_FILE)  # Mon-Fri 07:30-17:00
PROVINCE = UnitInfo("19", "Tỉnh Thái Nguyên", "Thai Nguyen Province", "province", "19")
COMMUNES = [UnitInfo(f"19{i:03d}", f"Xã {i}", f"Commune {i}", "commune", "19", "19")
            for i in range(10)]  # fmt: skip
FAMILY = "dossiers"


def vn(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=VN_TZ)  # 7 Dec 2026: a Monday


def evaluator() -> Evaluator:
    ev = Evaluator(
        AlertsSettings(alert_windows=["day"], alert_burn_enabled=False),
        CAL,
        UnitDirectory([PROVINCE, *COMMUNES]),
    )
    ev.start_watching(vn(1, 8))
    return ev


def new_book() -> AlertBook:
    ids = count()
    return AlertBook(new_id=lambda: f"id{next(ids)}")


class Run:
    """The service evaluating every minute; ``seen`` is what the workers report."""

    def __init__(self, seen: dict[str, datetime]) -> None:
        self.ev, self.book = evaluator(), new_book()
        self.seen = {(code, FAMILY): at for code, at in seen.items()}
        self.transitions: list[Transition] = []

    def send(self, code: str, at: datetime) -> None:
        """An event of ``code`` at ``at``: the province's rollup sees it too."""
        self.seen[(code, FAMILY)] = at
        self.seen[("19", FAMILY)] = max(self.seen[("19", FAMILY)], at)

    def until(self, start: datetime, end: datetime) -> Iterator[datetime]:
        now = start
        while now <= end:
            yield now
            plan = self.ev.plan(self.book.open, now)
            verdicts = self.ev.verdicts(Observation(plan, [], True), self.book.open, self.seen, now)
            self.transitions += self.book.observe(verdicts, now)
            now += timedelta(minutes=1)

    def fired(self) -> list[tuple[str, datetime]]:
        return [(t.alert.key.unit, t.at) for t in self.transitions if t.to_state is State.FIRING]

    def resolved(self) -> list[tuple[str, datetime]]:
        return [(t.alert.key.unit, t.at) for t in self.transitions if t.to_state is State.RESOLVED]


# --- what must not change ---------------------------------------------------------------


def test_a_busy_commune_silent_alone_while_the_province_sends_fires_as_before() -> None:
    # c0's last dossier at 08:00; the other communes keep sending every few minutes.
    run = Run({c.code: vn(7, 8) for c in COMMUNES} | {"19": vn(7, 8)})
    for now in run.until(vn(7, 8), vn(7, 11)):
        for c in COMMUNES[1:]:
            run.send(c.code, now)
    assert run.fired() == [("19000", vn(7, 10))]  # its floor after its last event: as before
    assert run.resolved() == []


def test_a_province_quiet_for_the_night_opens_and_resolves_nothing() -> None:
    # Every unit's last dossier between 16:30 and 16:50; the next morning they start again
    # around 08:15 (the province's rollup quiet for 1 h 5 min of working time).
    run = Run(
        {c.code: vn(7, 16, 30 + 2 * i) for i, c in enumerate(COMMUNES)} | {"19": vn(7, 16, 48)}
    )
    for now in run.until(vn(7, 16, 50), vn(8, 12)):
        if now >= vn(8, 8, 15):
            for c in COMMUNES:
                run.send(c.code, now)
    assert run.transitions == []


def test_a_commune_firing_on_its_own_before_a_quiet_night_stays_firing() -> None:
    # c0 silent since 14:00 (paged at 16:00); the province quiet from 16:50 to 08:40 the
    # next morning: its recovery is not c0's, which still sends nothing.
    run = Run({c.code: vn(7, 16, 50) for c in COMMUNES} | {"19000": vn(7, 14), "19": vn(7, 16, 50)})
    for now in run.until(vn(7, 15), vn(8, 10)):
        if now >= vn(8, 8, 40):
            for c in COMMUNES[1:]:
                run.send(c.code, now)
    assert run.fired() == [("19000", vn(7, 16))]
    assert run.resolved() == []  # not "no longer silent" with nothing received


# --- the rules ------------------------------------------------------------------------


def test_a_short_outage_pages_no_commune_before_or_after() -> None:
    # The system down 10:00-11:55, under the province's own 2 h: nothing fires at all.
    # Each commune's last dossier was some minutes before (from 11:50 they reach their 2 h:
    # held); after, they come back one by one.
    run = Run({c.code: vn(7, 9, 50 + i) for i, c in enumerate(COMMUNES)} | {"19": vn(7, 10)})
    for now in run.until(vn(7, 10), vn(7, 14)):
        for i, c in enumerate(COMMUNES):
            if now >= vn(7, 11, 55) + timedelta(minutes=5 * i):
                run.send(c.code, now)
    assert run.transitions == []


def test_a_commune_still_silent_after_the_province_came_back_fires_from_its_recovery() -> None:
    run = Run({c.code: vn(7, 9, 50 + i) for i, c in enumerate(COMMUNES)} | {"19": vn(7, 10)})
    for now in run.until(vn(7, 10), vn(7, 14)):
        if now >= vn(7, 11, 30):  # back at 11:30; c0 never sends again
            for c in COMMUNES[1:]:
                run.send(c.code, now)
    # Held from 11:50 (its floor after 09:50, the province quiet since 10:00), then judged
    # without the outage: 10 min before it, 1 h 50 after 11:30, a silence of its own.
    assert run.fired() == [("19000", vn(7, 13, 20))]
    alert = run.book.open[AlertKey(conditions.SILENT, FAMILY, "19000", "working-hours")]
    assert alert.values["province_back"] == vn(7, 11, 30).isoformat()


def test_communes_fire_with_their_province_and_resolve_with_it() -> None:
    run = Run({c.code: vn(7, 9, 10 * i // 2) for i, c in enumerate(COMMUNES)} | {"19": vn(7, 10)})
    for now in run.until(vn(7, 10), vn(7, 13, 30)):
        if now >= vn(7, 13):
            run.send("19003", now)  # the first event after the outage
    fired = run.fired()
    assert {at for _, at in fired} == {vn(7, 12)}  # all at once, with the province
    assert fired[0][0] == "19" and len(fired) == 1 + len(COMMUNES)
    assert {u for u, at in run.resolved() if at == vn(7, 13)} == {"19", *(c.code for c in COMMUNES)}
    assert run.book.open == {}
    resolution = next(
        t for t in run.transitions if t.alert.key.unit == "19000" and t.to_state is State.RESOLVED
    )
    assert "the province's system is back since" in resolution.alert.annotations["summary_en"]


# --- the parts ------------------------------------------------------------------------


def _verdict(unit: str, status: Status, silent_s: float, after_s: float = 7200.0) -> Verdict:
    values = {"silent_working_s": silent_s, "silent_after_s": after_s}
    key = AlertKey(conditions.SILENT, FAMILY, unit, "working-hours")
    return Verdict(key, status, "warning", "19", values, "", "", 0.0, family=FAMILY)


def test_hold_units_holds_breaches_only_while_the_province_is_quiet_and_undecided() -> None:
    commune = _verdict("19000", Status.BREACH, 7200.0)
    quiet = _verdict("19", Status.CLEAR, QUIET_SHARE * 7200.0)
    assert [v.status for v in hold_units([quiet, commune], {})] == [Status.CLEAR, Status.HOLD]
    lull = _verdict("19", Status.CLEAR, QUIET_SHARE * 7200.0 - 1)
    assert hold_units([lull, commune], {})[1].status is Status.BREACH
    silent = _verdict("19", Status.BREACH, 7200.0)  # the province decides: they fire with it
    assert hold_units([silent, commune], {})[1].status is Status.BREACH
    assert hold_units([commune], {})[1:] == []  # no verdict of the province: as before
    assert hold_units([commune], {})[0].status is Status.BREACH
    open_alert = {commune.key: _alert("19000", vn(7, 10))}  # already open: left as it is
    assert hold_units([quiet, commune], open_alert)[1].status is Status.BREACH


def _alert(unit: str, fired_at: datetime) -> Alert:
    key = AlertKey(conditions.SILENT, FAMILY, unit, "working-hours")
    return Alert("a" + unit, key, State.FIRING, "warning", "19", {}, {}, {}, fired_at, fired_at,
                 fired_at=fired_at)  # fmt: skip


def test_quiet_spans_are_recorded_when_a_quiet_province_is_heard_from_again() -> None:
    spans = QuietSpans(CAL)
    seen = {("19", FAMILY): vn(7, 10)}
    spans.judged([_verdict("19", Status.CLEAR, 3000.0)], seen)  # not quiet yet
    spans.recovered({("19", FAMILY): vn(7, 10, 50)}, {})
    assert spans.spans == []
    spans.judged([_verdict("19", Status.CLEAR, 3600.0)], seen)  # quiet for 1 h
    own = _alert("19000", vn(7, 10, 30))  # fired before the province was quiet: its own
    late = _alert("19001", vn(7, 11, 5))  # fired while it was: the province's
    opened = {a.key: a for a in (own, late)}
    spans.recovered({("19", FAMILY): vn(7, 11, 10)}, opened)
    assert spans.spans == [
        Blind(vn(7, 10), vn(7, 11, 10), frozenset({"19", "19000"}), "19", FAMILY)
    ]
    spans.recovered({("19", FAMILY): vn(7, 11, 10)}, opened)  # the same span, once
    assert len(spans.spans) == 1
    spans.prune(vn(7, 11, 10))
    assert spans.spans == []


def test_a_province_span_covers_its_units_in_its_family_only() -> None:
    span = Blind(vn(7, 10), vn(7, 12), frozenset({"19"}), "19", FAMILY)
    assert span.covers("19000", FAMILY, "19")
    assert not span.covers("19", FAMILY, "19")
    assert not span.covers("19000", "documents", "19")
    assert not span.covers("20000", FAMILY, "20")
    assert Blind(vn(7, 10), vn(7, 12)).covers("20000", "documents", "20")  # a worker's


def test_overlapping_blind_spans_count_once() -> None:
    spans = [Blind(vn(7, 10), vn(7, 12)), Blind(vn(7, 11), vn(7, 13)), Blind(vn(7, 15), vn(7, 16))]
    assert blind_seconds(CAL, vn(7, 9), vn(7, 17), spans) == 4 * 3600.0
    assert blind_seconds(CAL, vn(7, 11, 30), vn(7, 15, 30), spans) == 2 * 3600.0


def test_the_resolution_says_the_province_came_back() -> None:
    vi, en = text.silence_over(
        "Xã 1", "19001", FAMILY, 120.0, 7200.0, vn(4, 16), "Commune 1", vn(7, 10)
    )
    assert "hệ thống của tỉnh hoạt động lại từ" in vi
    assert "the province's system is back since" in en and "2 min of working time ago" in en
