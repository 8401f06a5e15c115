"""Review 17: KpiBudgetBurn's "keep firing" (5e24815) read against docs/alerts.md.

Its three defects, fixed since (each a strict xfail first): a hold that ran out did not
end on a low-volume evaluation, and a hold begun "in the future" (a clock ahead) kept the
alert firing past one hold, even where it must resolve at once. The other tests check
claims of the commit that
test_burn_keep_firing.py does not cover (the service saves the state file when a hold
starts or ends and not on every cycle, other conditions unchanged, the push of a held
alert, the order of ``AlertState.load``). Injected clocks only; no PostgreSQL.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from services.alerts import conditions as c
from services.alerts.alertmanager import payload
from services.alerts.directory import UnitDirectory
from services.alerts.evaluation import Evaluator, Observation
from services.alerts.lifecycle import AlertBook
from services.alerts.model import Alert, AlertKey, State, Status, Transition, Verdict
from services.alerts.service import AlertsService
from services.alerts.settings import AlertsSettings
from services.alerts.spool import Spool, encode
from services.alerts.state import AlertState, keep_holds
from services.common.calendar import VN_TZ, WorkingCalendar
from services.common.figures import Figure
from services.common.rates import to_bp

T0 = datetime(2026, 11, 23, 10, tzinfo=VN_TZ)
KEY = AlertKey(c.BURN, "meeting_online", "c1", "6h")  # at 90 % only the slow rule can fire
BURNING = (400, 1000)  # 60 % missed: 6x a 10 % budget
SLOWING = (500, 1000)  # 50 % missed: 5x, under the factor
QUIET = (0, 0)  # nothing counted: too little volume (HOLD)

SETTINGS: dict[str, Any] = {
    "alert_burn_for_s": 120,
    "alert_burn_keep_firing_s": 600,
    "alert_burn_interval_s": 30,
}


def evaluator(**settings: Any) -> Evaluator:
    return Evaluator(
        AlertsSettings(**(SETTINGS | settings)), WorkingCalendar(always=True), UnitDirectory([])
    )


def burn(counts: tuple[int, int], target: float = 0.90) -> list[Figure]:
    num, den = counts
    return [
        Figure("meeting_online", "c1", w, num, den, to_bp(target), 5, "Xã Một", province="19")
        for w in c.BURN_WINDOWS
    ]


def cycle(ev: Evaluator, book: AlertBook, figures: list[Figure], at: datetime) -> list[Transition]:
    plan = ev.plan(book.open, at)
    assert plan.slow
    verdicts = ev.verdicts(Observation(plan, figures, True), book.open, {}, at)
    return book.observe(verdicts, at)


def new_book(alerts: list[Alert] | None = None) -> AlertBook:
    ids = count()
    return AlertBook(alerts or [], new_id=lambda: f"id{next(ids)}")


def firing(ev: Evaluator) -> tuple[AlertBook, datetime]:
    """A firing slow-burn alert; returns the book and the next slow cycle."""
    book = new_book()
    history = cycle(ev, book, burn(BURNING), T0)
    history += cycle(ev, book, burn(BURNING), T0 + timedelta(seconds=120))
    assert [t.to_state for t in history] == [State.PENDING, State.FIRING]
    return book, T0 + timedelta(seconds=150)


# --- defects ---------------------------------------------------------------------------


def test_a_hold_that_ran_out_resolves_at_the_next_burn_evaluation_even_with_low_volume() -> None:
    ev = evaluator()
    book, t1 = firing(ev)
    assert cycle(ev, book, burn(SLOWING), t1) == []  # the pair stops burning: held
    assert book.open[KEY].clear_since == t1
    resolved: list[Transition] = []
    # The short window empties (evening): every burn evaluation after is HOLD, for 8 h.
    for s in range(30, 8 * 3600, 30):
        resolved += cycle(ev, book, burn(QUIET), t1 + timedelta(seconds=s))
    # Never broken by a burn, the hold ran out at t1 + 600 s.
    assert [t.to_state for t in resolved] == [State.RESOLVED]
    assert resolved[0].at <= t1 + timedelta(seconds=600 + 30)


def test_a_target_that_no_longer_lets_the_rule_fire_resolves_at_once_whatever_the_hold(
    tmp_path: Path,
) -> None:
    ev = evaluator()
    book, t1 = firing(ev)
    cycle(ev, book, burn(SLOWING), t1)
    # The run that wrote the state file had a clock 10 minutes ahead of the real time.
    ahead = timedelta(minutes=10)
    spool = Spool(tmp_path / "state.json")
    held = replace(book.open[KEY], clear_since=t1 + ahead)
    spool.write(encode([held], [], t1 + ahead))
    spooled = spool.read()
    assert spooled is not None
    row = replace(held, clear_since=None)  # PostgreSQL's row
    keep_holds(spooled.open, [row])
    restarted = new_book([row])
    # The target is lowered to 80 %: 6x of a 20 % budget cannot fire any more.
    after = t1 + timedelta(seconds=30)
    transitions = cycle(evaluator(), restarted, burn(BURNING, target=0.80), after)
    assert [t.to_state for t in transitions] == [State.RESOLVED]


def test_a_hold_from_a_clock_ahead_does_not_keep_the_alert_firing_past_one_hold(
    tmp_path: Path,
) -> None:
    ev = evaluator()
    book, t1 = firing(ev)
    cycle(ev, book, burn(SLOWING), t1)
    spool = Spool(tmp_path / "state.json")
    spool.write(encode([replace(book.open[KEY], clear_since=t1 + timedelta(days=1))], [], t1))
    spooled = spool.read()
    assert spooled is not None
    row = replace(book.open[KEY], clear_since=None)
    keep_holds(spooled.open, [row])
    restarted, ev2 = new_book([row]), evaluator()
    resolved: list[Transition] = []
    for s in range(30, 3600, 30):  # an hour of a pair that does not burn
        resolved += cycle(ev2, restarted, burn(SLOWING), t1 + timedelta(seconds=s))
    # Docs: "the alert resolves up to one hold later" (than without the file).
    assert [t.to_state for t in resolved] == [State.RESOLVED]


# --- claims that hold ------------------------------------------------------------------


def below(status: Status) -> Verdict:
    key = AlertKey(c.BELOW, "document_signing", "c1", "day")
    return Verdict(key, status, "warning", "19", {"ratio": 0.5}, "vi", "en", 0)


@pytest.mark.parametrize("before", [[], [Status.HOLD], [Status.BREACH, Status.HOLD]])
def test_other_conditions_still_resolve_on_the_first_clear_and_change_no_hold(
    before: list[Status],
) -> None:
    book = new_book()
    book.observe([below(Status.BREACH)], T0)  # firing at once (hold 0)
    at = T0
    for status in before:
        at += timedelta(seconds=2)
        assert book.observe([below(status)], at) == []
        assert not book.holds_changed
    (resolved,) = book.observe([below(Status.CLEAR)], at + timedelta(seconds=2))
    assert resolved.to_state is State.RESOLVED and not book.holds_changed


def test_holds_changed_only_when_a_hold_starts_or_ends() -> None:
    ev = evaluator()
    book, t1 = firing(ev)
    seen = []
    for s, counts in [(0, SLOWING), (30, SLOWING), (60, QUIET), (90, SLOWING), (120, BURNING),
                      (150, BURNING), (180, SLOWING)]:  # fmt: skip
        cycle(ev, book, burn(counts), t1 + timedelta(seconds=s))
        seen.append(book.holds_changed)
    assert seen == [True, False, False, False, True, False, True]
    assert cycle(ev, book, [], t1 + timedelta(seconds=210)) == []  # unknown
    assert not book.holds_changed and book.open[KEY].clear_since == t1 + timedelta(seconds=180)


async def test_the_service_saves_the_file_when_a_hold_starts_or_ends_and_not_every_cycle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = AlertsSettings(
        **SETTINGS,
        alert_state_file=tmp_path / "state.json",
        alert_kafka_enabled=False,
        ingest_url="",
        alertmanager_url="",
    )
    service = AlertsService(
        settings, directory=UnitDirectory([]), calendar=WorkingCalendar(always=True), families={}
    )
    counts = {"now": BURNING}

    async def observe(now: datetime) -> Observation:
        plan = service.evaluator.plan(service.state.open, now)
        return Observation(plan, burn(counts["now"]) if plan.slow else [], True)

    monkeypatch.setattr(service, "_observe", observe)
    writes: list[datetime] = []
    real_save = AlertState.save

    async def save(self: AlertState, now: datetime) -> None:
        writes.append(now)
        await real_save(self, now)

    monkeypatch.setattr(AlertState, "save", save)
    try:
        service.state.restore()
        await service.evaluate_once(T0)
        await service.evaluate_once(T0 + timedelta(seconds=120))  # firing
        assert len(writes) == 2
        counts["now"] = SLOWING
        t1 = T0 + timedelta(seconds=150)
        assert await service.evaluate_once(t1) == []
        assert writes[-1] == t1  # the hold starts: on disk
        spooled = Spool(settings.alert_state_file).read()  # type: ignore[arg-type]
        assert spooled is not None and spooled.open[0].clear_since == t1
        for s in (2, 4, 30, 60):  # fast cycles and slow ones inside the hold: no write
            assert await service.evaluate_once(t1 + timedelta(seconds=s)) == []
        assert len(writes) == 3
        counts["now"] = BURNING
        await service.evaluate_once(t1 + timedelta(seconds=90))  # the hold ends: on disk
        assert len(writes) == 4
        spooled = Spool(settings.alert_state_file).read()  # type: ignore[arg-type]
        assert spooled is not None and spooled.open[0].clear_since is None
    finally:
        await service.close()


def test_a_held_alert_is_still_pushed_as_firing_with_a_future_end() -> None:
    ev = evaluator()
    book, t1 = firing(ev)
    cycle(ev, book, burn(SLOWING), t1)
    now = t1 + timedelta(seconds=300)
    cycle(ev, book, burn(SLOWING), now)
    sent = payload(book.open[KEY], now, timedelta(minutes=4), "http://a", "http://a/runbooks")
    assert datetime.fromisoformat(sent["endsAt"]) > now
    assert sent["startsAt"] == (T0 + timedelta(seconds=120)).isoformat()  # the same incident
    assert sent["labels"]["severity"] == "warning"


async def test_load_keeps_the_file_hold_before_the_book_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AlertState.load takes the hold from the restored book (the file's), then replaces
    the book with PostgreSQL's rows; a row under another id starts the hold again."""
    ev = evaluator()
    book, t1 = firing(ev)
    cycle(ev, book, burn(SLOWING), t1)
    spool = Spool(tmp_path / "state.json")
    spool.write(encode(list(book.open.values()), [], t1))
    same = replace(book.open[KEY], clear_since=None)
    other = replace(same, id="restored-from-backup", key=replace(KEY, unit="c2"))

    class Conn:
        async def __aenter__(self) -> Conn:
            return self

        async def __aexit__(self, *_: object) -> None:
            return None

    class Pool:
        def acquire(self) -> Conn:
            return Conn()

    async def pool(_: str) -> Pool:
        return Pool()

    async def nothing(*_: object) -> Any:
        return None

    async def rows(_: object) -> list[Alert]:
        return [same, other]

    async def empty(*_: object) -> Any:
        return {}

    async def _at(now: datetime) -> datetime:
        return now

    from services.alerts import state as state_module
    from services.alerts import store

    monkeypatch.setattr(store, "create_pool", pool)
    monkeypatch.setattr(state_module, "migrate_database", nothing)
    monkeypatch.setattr(store, "load_open", rows)
    monkeypatch.setattr(store, "load_resolved_since", lambda *_: nothing())
    monkeypatch.setattr(store, "load_activity", empty)
    monkeypatch.setattr(store, "watch_started", lambda _conn, now: _at(now))
    monkeypatch.setattr(store, "load_silence_memory", nothing)
    state = AlertState(lambda _: [], spool)
    state.restore()
    monkeypatch.setattr(state.journal, "flush", nothing)
    await state.load("postgresql://unused", t1, t1)
    assert state.open[KEY].clear_since == t1
    assert state.open[replace(KEY, unit="c2")].clear_since is None
