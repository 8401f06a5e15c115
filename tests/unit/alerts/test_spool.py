"""The alert state file (services/alerts/spool.py) and the replay of its journal.

What a restart while PostgreSQL is away depends on: the file reads back what was
written, field for field; a file it cannot read is set aside with a clear log, never
half-trusted; a failed write leaves the previous file whole; and the open alerts after
loading are where the unwritten transitions led, over older rows.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import pytest

from services.alerts.lifecycle import AlertBook
from services.alerts.model import Alert, AlertKey, State, Status, Transition, Verdict
from services.alerts.spool import Spool, encode
from services.alerts.state import AlertState

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
KEY = AlertKey("KpiBelowTarget", "document_signing", "31", "day")


def verdict(status: Status, key: AlertKey = KEY) -> Verdict:
    values = {"ratio": 0.8, "numerator": 80, "denominator": 100, "label": "Hải Phòng"}
    return Verdict(key, status, "critical", "31", values, "dưới mục tiêu", "below", 0)


def book() -> AlertBook:
    ids = count()
    return AlertBook(new_id=lambda: f"id{next(ids)}")


def fired_then_resolved() -> tuple[list[Transition], list[Transition]]:
    b = book()
    fired = b.observe([verdict(Status.BREACH)], T0)  # pending and firing at once (hold 0)
    resolved = b.observe([verdict(Status.CLEAR)], T0 + timedelta(minutes=5))
    return fired, resolved


def test_the_file_reads_back_what_was_written(tmp_path: Path) -> None:
    b = book()
    fired = b.observe([verdict(Status.BREACH)], T0)
    open_alerts = list(b.open.values())
    open_alerts[0].acked_by, open_alerts[0].acked_at = "trực ban", T0 + timedelta(minutes=1)
    spool = Spool(tmp_path / "alerts" / "state.json")  # its folder is made
    spool.write(encode(open_alerts, fired, T0))
    back = spool.read()
    assert back is not None
    assert back.open == open_alerts  # every field, the Vietnamese text and the ack included
    assert back.journal == fired
    assert back.written_at == T0
    assert [p.name for p in spool.path.parent.iterdir()] == ["state.json"]  # no temporary


def test_no_file_is_nothing_to_restore(tmp_path: Path) -> None:
    assert Spool(tmp_path / "state.json").read() is None


@pytest.mark.parametrize(
    "content",
    [b"{not json", b'{"version": 99, "written_at": "2026-11-23T02:00:00+00:00"}', b'{"open": 1}'],
    ids=["torn", "newer-version", "wrong-shape"],
)
def test_an_unreadable_file_is_set_aside_and_said(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with caplog.at_level(logging.ERROR):
        assert Spool(path).read() is None
    assert not path.exists()
    assert (tmp_path / "state.json.unreadable").read_bytes() == content  # kept for a look
    assert "unreadable" in caplog.text and "PostgreSQL's" in caplog.text


def test_a_failed_write_leaves_the_previous_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fired, _ = fired_then_resolved()
    spool = Spool(tmp_path / "state.json")
    spool.write(encode([fired[-1].alert], fired, T0))
    before = spool.path.read_bytes()

    def full_disk(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        spool.write(encode([], [], T0 + timedelta(minutes=1)))
    monkeypatch.undo()
    assert spool.path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # temporary removed
    assert Spool(spool.path).read() is not None


async def test_a_state_file_that_cannot_be_written_is_logged_and_the_state_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    state = AlertState(lambda _: [], Spool(blocker / "state.json"))
    state.restore()
    state.apply([verdict(Status.BREACH)], T0)
    with caplog.at_level(logging.ERROR):
        await state.save(T0)  # does not raise
    assert "could not be written" in caplog.text
    assert len(state.journal) == 2 and len(state.open) == 1  # nothing lost in memory


def test_replay_resolves_what_was_resolved_while_the_database_was_away() -> None:
    fired, resolved = fired_then_resolved()
    rows = [fired[-1].alert]  # PostgreSQL has the alert firing
    b = AlertBook(rows)
    b.replay(resolved)
    assert b.open == {}


def test_replay_opens_what_fired_while_the_database_was_away_and_keeps_an_ack() -> None:
    b0 = book()
    pending = b0.observe([verdict(Status.BREACH)], T0)[0]
    row = Alert(**{f: getattr(pending.alert, f) for f in Alert.__slots__})  # type: ignore[attr-defined]
    row.acked_by, row.acked_at = "trực ban", T0  # acked while pending, in PostgreSQL
    firing = Transition("t-fire", _with(pending.alert, State.FIRING), State.PENDING,
                        State.FIRING, T0 + timedelta(minutes=5))  # fmt: skip
    b = AlertBook([row])
    b.replay([firing])
    alert = b.open[KEY]
    assert alert.state is State.FIRING and alert.acked_by == "trực ban"
    assert alert is not firing.alert  # the journal's snapshot is not shared


def test_replay_leaves_another_alert_of_the_same_identity_alone() -> None:
    fired, resolved = fired_then_resolved()
    newer = _with(fired[-1].alert, State.FIRING, alert_id="a-newer-incident")
    b = AlertBook([newer])
    b.replay(resolved)  # the resolution of an older alert of that identity
    assert b.open[KEY].id == "a-newer-incident"


def _with(alert: Alert, state: State, alert_id: str | None = None) -> Alert:
    copy = Alert(**{f: getattr(alert, f) for f in Alert.__slots__})  # type: ignore[attr-defined]
    copy.state = state
    if alert_id is not None:
        copy.id = alert_id
    return copy
