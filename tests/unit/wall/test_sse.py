"""The wall's event stream ends when the browser leaves, and closes what it streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, MutableMapping
from typing import Any

from services.wall.sse import EventStream


async def test_a_browser_that_leaves_ends_the_stream_and_its_source() -> None:
    closed = asyncio.Event()

    async def events() -> AsyncGenerator[bytes]:
        try:
            while True:  # a stream of heartbeats never ends by itself
                yield b"event: heartbeat\ndata: {}\n\n"
                await asyncio.sleep(0.01)
        finally:
            closed.set()

    sent: list[MutableMapping[str, Any]] = []
    left = asyncio.Event()

    async def receive() -> MutableMapping[str, Any]:
        await left.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        # As uvicorn does: after a disconnect, what is sent is dropped without a word.
        sent.append(message)

    stream = asyncio.ensure_future(EventStream(events())({"type": "http"}, receive, send))
    await asyncio.sleep(0.05)
    assert sent[0]["status"] == 200 and len(sent) > 2
    headers = dict(sent[0]["headers"])
    assert headers[b"content-type"] == b"text/event-stream; charset=utf-8"
    assert b"content-length" not in headers  # an event stream has no length
    left.set()
    await asyncio.wait_for(stream, 1)
    assert closed.is_set()
