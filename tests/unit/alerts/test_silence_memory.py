"""The silence judgement's memory outlives a restart of the alerts service.

Before 2026-12-06 the spans in which a unit's time was not its silence (a worker that did
not answer; its province quiet in a family) lived in memory only: an alerts service
restarted (a deploy) just after a province's outage ended judged each commune not yet
heard from on its own last event again, and paged them one by one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from services.alerts.conditions import Blind
from services.alerts.directory import UnitDirectory
from services.alerts.evaluation import Evaluator, Observation
from services.alerts.lifecycle import AlertBook
from services.alerts.model import State
from services.alerts.settings import AlertsSettings
from services.alerts.silence_memory import Heard, SilenceMemory
from services.common.calendar import HOLIDAYS_FILE, VN_TZ, load_calendar
from services.common.figures import Figure
from services.common.unit_info import UnitInfo

PROVINCE = UnitInfo("19", "Tỉnh Thái Nguyên", "Thai Nguyen Province", "province", "19")
COMMUNES = [
    UnitInfo(f"19{i:03d}", f"Xã {i}", f"Commune {i}", "commune", "19", "19") for i in range(30)
]


def _vn(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=VN_TZ)


def _evaluator() -> Evaluator:
    ev = Evaluator(
        AlertsSettings(alert_windows=["day"], alert_burn_enabled=False),
        load_calendar(HOLIDAYS_FILE),
        UnitDirectory([PROVINCE, *COMMUNES]),
    )
    ev.start_watching(_vn(1, 8))
    return ev


def _restarted(ev: Evaluator, book: AlertBook) -> tuple[Evaluator, AlertBook]:
    """A new process: its evaluator recalls what PostgreSQL kept (through the bytes the
    row holds), its book the open alerts."""
    fresh = _evaluator()
    fresh.recall(SilenceMemory.decode(ev.memory().encode()))
    return fresh, AlertBook(list(book.open.values()))


def _firing_units(book: AlertBook) -> set[str]:
    return {a.key.unit for a in book.open.values() if a.state is State.FIRING}


@pytest.mark.parametrize("restart_at", [_vn(7, 10, 5), _vn(7, 10, 30)])
def test_a_restart_after_the_province_came_back_pages_no_commune(restart_at: datetime) -> None:
    # The one-stop system went down on Friday at 16:00; every unit's UnitSilent fired on
    # Monday at 09:01 (the province's mutes the communes'). It came back on Monday at
    # 10:00 and each commune's next dossier follows within the hour. The alerts service
    # is redeployed at ``restart_at``.
    ev = _evaluator()
    seen = {(u.code, "dossiers"): _vn(4, 16) for u in [PROVINCE, *COMMUNES]}
    back = {c.code: _vn(7, 10, 2 * i) for i, c in enumerate(COMMUNES)}
    ids = iter(range(10**6))
    book = AlertBook(new_id=lambda: f"id{next(ids)}")
    fired_after_province_back: list[str] = []
    now = _vn(7, 9)
    while now <= _vn(7, 11):
        if now == restart_at:
            ev, book = _restarted(ev, book)
        for code, at in back.items():
            if at <= now:
                seen[(code, "dossiers")] = at
                seen[("19", "dossiers")] = max(seen[("19", "dossiers")], at)
        plan = ev.plan(book.open, now)
        transitions = book.observe(
            ev.verdicts(Observation(plan, [], True), book.open, seen, now), now
        )
        if now >= _vn(7, 10):
            fired_after_province_back += [
                t.alert.key.unit for t in transitions if t.to_state is State.FIRING
            ]
        now += timedelta(minutes=1)
    assert "19" not in _firing_units(book)  # the province resolved: it sends again
    assert fired_after_province_back == []  # and no commune paged on its own after it
    assert _firing_units(book) <= {c.code for c in COMMUNES}


def test_a_restart_keeps_a_worker_outage_span() -> None:
    # A metrics worker owning the province did not answer from 09:00 to 11:00 on Monday
    # (its units published meanwhile, unseen). The alerts service restarts at 11:10.
    # The units are heard from at 12:30 (their figures caught up): the two hours the
    # worker was away are not their silence, before the restart or after it.
    ev = _evaluator()
    seen = {(u.code, "dossiers"): _vn(7, 8, 55) for u in [PROVINCE, *COMMUNES]}
    ids = iter(range(10**6))
    book = AlertBook(new_id=lambda: f"id{next(ids)}")
    other = [Figure("document_signing", "01", "day", 1, 1, 9500, 1)]  # another worker's unit
    fired: list[str] = []
    now = _vn(7, 8, 55)
    while now <= _vn(7, 12, 30):
        if now == _vn(7, 11, 10):
            ev, book = _restarted(ev, book)
        complete = not (_vn(7, 9) <= now < _vn(7, 11))
        observed = Observation(ev.plan(book.open, now), [] if complete else other, complete)
        transitions = book.observe(ev.verdicts(observed, book.open, seen, now), now)
        fired += [t.alert.key.unit for t in transitions if t.to_state is State.FIRING]
        now += timedelta(minutes=5)
    assert fired == []


def test_the_memory_reads_back_as_written_and_refuses_what_it_cannot_read() -> None:
    memory = SilenceMemory(
        (Blind(_vn(7, 9), _vn(7, 11), frozenset({"01"})),),
        (Blind(_vn(4, 16), _vn(7, 10), frozenset({"19", "19003"}), "19", "dossiers"),),
        {("19", "dossiers"): Heard(_vn(4, 16), 3600.0, True)},
    )
    assert SilenceMemory.decode(memory.encode()) == memory
    for raw in (b"", b"[]", b'{"version": 2}', b'{"version": 1, "blind": [{}]}'):
        with pytest.raises(ValueError, match="silence memory"):
            SilenceMemory.decode(raw)
