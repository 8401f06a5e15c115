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
from services.alerts.model import AlertKey, Status, Transition, Verdict
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
    [
        b"{not json",
        b'{"version": 99, "written_at": "2026-11-23T02:00:00+00:00"}',
        b'{"open": 1}',
        b"null",
        b"[]",
        b'"state"',
    ],
    ids=["torn", "newer-version", "wrong-shape", "null", "list", "string"],
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
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = AlertState(lambda _: [], Spool(tmp_path / "state.json"))
    state.restore()

    def read_only(self: Spool, data: bytes) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(Spool, "write", read_only)
    state.apply([verdict(Status.BREACH)], T0)
    with caplog.at_level(logging.ERROR):
        await state.save(T0)  # does not raise
    assert "could not be written" in caplog.text
    assert len(state.journal) == 2 and len(state.open) == 1  # nothing lost in memory


async def test_a_failed_write_sets_the_file_aside_as_stale_and_a_restart_pushes_none_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path / "state.json")
    state = AlertState(lambda _: [], spool)
    state.restore()
    state.apply([verdict(Status.BREACH)], T0)
    await state.save(T0)  # firing, on disk
    real_write = Spool.write

    def full_disk(self: Spool, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Spool, "write", full_disk)
    state.apply([verdict(Status.CLEAR)], T0 + timedelta(minutes=5))
    await state.save(T0 + timedelta(minutes=5))  # the resolution never reaches the disk
    assert not spool.path.exists() and spool.stale_path.exists()
    monkeypatch.setattr(Spool, "write", real_write)

    restarted = AlertState(lambda _: [], Spool(spool.path))
    restored = restarted.restore()
    assert restored is not None and restored.stale
    assert restarted.open == {}  # its firing alert is not believed, nor pushed
    assert len(restarted.journal) == 2  # its transitions still go to PostgreSQL (once each)
    await restarted.save(T0 + timedelta(minutes=6))
    assert spool.path.exists() and not spool.stale_path.exists()  # superseded


def test_a_file_neither_readable_nor_movable_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(b"precious")

    def unreadable(self: Path) -> bytes:
        raise OSError(5, "Input/output error")

    def unmovable(*_: object) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(Path, "read_bytes", unreadable)
    monkeypatch.setattr(os, "replace", unmovable)
    state = AlertState(lambda _: [], Spool(path))
    assert state.restore() is None
    monkeypatch.undo()
    assert path.read_bytes() == b"precious"  # this run never writes over it
