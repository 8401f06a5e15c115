"""A server-sent-events response that ends when the browser goes away.

uvicorn drops what is sent after a disconnect without telling the sender, so a stream
that only writes would run (and poll the sources) for ever: this one also listens for
``http.disconnect`` and closes its event source then.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",
}


class EventStream(Response):
    """Streams ``events`` (encoded SSE frames) until they end or the client leaves."""

    def __init__(
        self,
        events: AsyncGenerator[bytes],
        headers: Mapping[str, str] = HEADERS,
        on_close: Callable[[], None] | None = None,
    ):
        # Not Response.__init__: it would declare the empty body's Content-Length: 0.
        self.status_code = 200
        self.background = None
        self.raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        self.events = events
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Streams; ``on_close`` runs once the stream ends, however it ends (the slot of
        :class:`services.wall.limits.StreamSlots` it holds is given back)."""
        try:
            await self._stream(receive, send)
        finally:
            if self.on_close is not None:
                self.on_close()

    async def _stream(self, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        pump = asyncio.ensure_future(self._pump(send))
        watch = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait({pump, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, watch):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.events.aclose()
        if pump.done() and not pump.cancelled() and pump.exception() is None:
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _pump(self, send: Send) -> None:
        async for frame in self.events:
            await send({"type": "http.response.body", "body": frame, "more_body": True})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
