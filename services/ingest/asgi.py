"""POST /v1/events as a bare ASGI handler: the request as the service sees it, and the reply.

The hot route skips Starlette's middleware, routing and Request/Response objects (~10-15%
of a single-event request's CPU, measured in docs/ingest.md); every other route, and the
405 for other methods on this path, stays with Starlette.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from services.ingest import problems
from services.ingest.problems import PROBLEM_MEDIA_TYPE, Problem
from services.ingest.telemetry import IngestMetrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

EVENTS_PATH = "/v1/events"
_JSON = b"application/json"
_PROBLEM = PROBLEM_MEDIA_TYPE.encode()


class Disconnected(Exception):
    """The client went away before its body arrived: there is no one to answer."""


@dataclass(frozen=True, slots=True)
class Submission:
    """The parts of a POST /v1/events request the service decides on, body read on demand."""

    authorization: str | None
    content_type: str
    content_length: str | None
    receive: Receive
    client: str = ""
    """The peer's IP address (the auth-failure limit is per address); "" when unknown."""

    @classmethod
    def from_scope(cls, scope: Scope, receive: Receive) -> Submission:
        wanted: dict[bytes, str] = {}
        for name, value in scope["headers"]:  # ASGI: names are lowercase; the first one counts
            if name in (b"authorization", b"content-type", b"content-length"):
                wanted.setdefault(name, value.decode("latin-1"))
        return cls(
            wanted.get(b"authorization"),
            wanted.get(b"content-type", ""),
            wanted.get(b"content-length"),
            receive,
            _client_host(scope),
        )

    @property
    def declared_length(self) -> int | None:
        """The Content-Length it declared, when it is a number."""
        declared = self.content_length
        return int(declared) if declared is not None and declared.isdigit() else None

    async def read(self, limit: int, within_s: float) -> bytes:
        """The whole body, or the 413 Problem once it exceeds ``limit`` bytes, or the 408
        Problem when its next part does not come within ``within_s`` seconds.

        A gap, not a deadline on the whole body: a commune on a slow uplink sending a
        4 MiB backlog at 1 Mbit/s takes over 30 s and must not be refused (review 66),
        while a body that stalls does not hold its connection for hours. The key was
        checked at the headers and is checked again once the body is in (review 64)."""
        declared = self.declared_length
        if declared is not None and declared > limit:
            raise problems.body_too_large(limit)
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            try:
                async with asyncio.timeout(within_s):
                    message = await self.receive()
            except TimeoutError:
                raise problems.body_too_slow(within_s) from None
            if message["type"] == "http.disconnect":
                raise Disconnected
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:  # a chunked body has no Content-Length to check up front
                raise problems.body_too_large(limit)
            chunks.append(chunk)
            more = message.get("more_body", False)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class Accepts(Protocol):
    """The service behind the route (``IngestService``)."""

    metrics: IngestMetrics
    stopping: Callable[[], bool]
    """Whether the server is stopping (SIGTERM): then a cancelled request is answered."""

    async def accept(self, submission: Submission) -> int: ...


class EventsEndpoint:
    """The ASGI app of POST /v1/events: 202 with the count accepted, or the problem."""

    def __init__(self, service: Accepts) -> None:
        self._service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics = self._service.metrics
        try:
            try:
                accepted = await self._service.accept(Submission.from_scope(scope, receive))
            except asyncio.CancelledError:
                # uvicorn cancels what is still under way when EGOV_SHUTDOWN_GRACE_S is
                # over (a body trickled in, a stalled broker): the publisher is told to
                # retry, rather than left with uvicorn's 500. Any other cancellation is
                # not ours to end.
                if not self._service.stopping():
                    raise
                _uncancel()
                raise problems.shutting_down() from None
        except Disconnected:
            return
        except Problem as problem:
            metrics.request(str(problem.status), problem.slug).inc()
            extra = [(k.lower().encode(), v.encode()) for k, v in problem.headers.items()]
            await _reply(send, problem.status, _PROBLEM, problem.body(), extra)
            return
        metrics.request("202", "").inc()
        await _reply(send, 202, _JSON, b'{"accepted":%d}' % accepted, [])


def route_events_first(events: ASGIApp, rest: ASGIApp) -> ASGIApp:
    """An app that sends POST /v1/events straight to ``events`` and all else to ``rest``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == EVENTS_PATH:
            await events(scope, receive, send)
        else:
            await rest(scope, receive, send)

    return app


async def _reply(
    send: Send, status: int, media_type: bytes, body: bytes, extra: list[tuple[bytes, bytes]]
) -> None:
    headers = [(b"content-type", media_type), (b"content-length", b"%d" % len(body)), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _uncancel() -> None:
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


def _client_host(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""
