"""Bounds on what requests make the wall do (services/wall/limits.py, review 55)."""

from __future__ import annotations

import asyncio

import pytest

from services.wall.limits import Busy, Gate, Limits, SharedReads, StreamSlots
from services.wall.settings import WallSettings


async def test_a_full_gate_refuses_after_its_wait_and_frees_its_places() -> None:
    gate = Gate(1, wait_s=0.01)
    async with gate.place():
        with pytest.raises(Busy):
            async with gate.place():
                pass
    async with gate.place():  # the place was given back
        pass


async def test_one_read_per_key_is_shared_while_in_flight_and_kept_a_moment() -> None:
    now = [0.0]
    reads: list[str] = []

    async def read(key: str) -> str:
        reads.append(key)
        await asyncio.sleep(0.01)
        return key.upper()

    shared: SharedReads[str, str] = SharedReads(2.0, clock=lambda: now[0])
    got = await asyncio.gather(*(shared.get(k, lambda k=k: read(k)) for k in "aaab"))
    assert got == ["A", "A", "A", "B"] and sorted(reads) == ["a", "b"]
    now[0] = 1.9
    assert await shared.get("a", lambda: read("a")) == "A" and len(reads) == 2
    now[0] = 2.0  # kept for keep_s, then read again
    assert await shared.get("a", lambda: read("a")) == "A" and len(reads) == 3


async def test_a_failed_or_forgotten_read_is_read_again() -> None:
    answers: list[object] = [ValueError("worker down"), "first", "second"]

    async def read() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return str(answer)

    shared: SharedReads[str, str] = SharedReads(60.0)
    with pytest.raises(ValueError, match="worker down"):
        await shared.get("k", read)
    assert await shared.get("k", read) == "first"
    assert await shared.get("k", read) == "first"
    shared.forget("k")
    assert await shared.get("k", read) == "second"


async def test_a_request_that_leaves_does_not_cancel_the_read_others_wait_for() -> None:
    started = asyncio.Event()

    async def read() -> int:
        started.set()
        await asyncio.sleep(0.02)
        return 7

    shared: SharedReads[str, int] = SharedReads(0.0)
    leaving = asyncio.ensure_future(shared.get("k", read))
    staying = asyncio.ensure_future(shared.get("k", read))
    await started.wait()
    leaving.cancel()
    assert await staying == 7


async def test_reads_through_a_gate_stay_within_it() -> None:
    in_flight, peak = 0, 0

    async def read() -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1

    shared: SharedReads[int, None] = SharedReads(0.0, Gate(3, wait_s=5))
    await asyncio.gather(*(shared.get(i, read) for i in range(20)))
    assert peak == 3


def test_streams_are_counted_per_client_and_in_all() -> None:
    slots = StreamSlots(total=3, per_client=2)
    assert slots.take("10.0.0.7") is None and slots.take("10.0.0.7") is None
    assert slots.take("10.0.0.7") == 429  # this address has its share
    assert slots.take("10.0.0.8") is None
    assert slots.take("10.0.0.9") == 503  # the wall has all it serves
    slots.give_back("10.0.0.7")
    assert slots.take("10.0.0.9") is None


def test_the_limits_come_from_the_walls_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EGOV_WALL_MAX_STREAMS_PER_CLIENT", "4")
    monkeypatch.setenv("EGOV_WALL_SHARE_READS_S", "0")
    limits = Limits.of(WallSettings())
    assert limits.streams.per_client == 4 and limits.histories.keep_s == 0
    assert (
        Limits.build().streams.per_client
        == WallSettings.model_fields["wall_max_streams_per_client"].default
    )


async def test_a_closed_stream_gives_its_slot_back() -> None:
    from starlette.applications import Starlette

    from services.common.calendar import WorkingCalendar
    from services.wall.hub import Hub
    from services.wall.views import WallViews
    from tests.unit.wall.factories import fig, recent, snapshot

    class Static:
        async def read(self):  # type: ignore[no-untyped-def]
            return snapshot([fig("19", 9, 10, last_event=recent(1))])

        async def aclose(self) -> None:
            return None

    hub = Hub(Static(), interval_s=0.05)  # type: ignore[arg-type]
    limits = Limits.build(streams_per_client=1)
    app = Starlette(routes=WallViews(WallSettings(), hub, WorkingCalendar(), None, limits).routes())
    statuses: list[int] = []

    async def open_and_leave() -> None:
        async def receive():  # type: ignore[no-untyped-def]
            await asyncio.sleep(0.05)
            return {"type": "http.disconnect"}

        async def send(message) -> None:  # type: ignore[no-untyped-def]
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": "/wall/stream", "raw_path": b"/wall/stream",
            "query_string": b"", "root_path": "", "headers": [],
            "client": ("10.0.0.7", 50000), "server": ("wall", 8083),
        }  # fmt: skip
        await app(scope, receive, send)

    await asyncio.gather(open_and_leave(), open_and_leave())
    assert sorted(statuses) == [200, 429]
    await open_and_leave()  # the first one left: its slot is free again
    await hub.close()
    assert statuses[-1] == 200
