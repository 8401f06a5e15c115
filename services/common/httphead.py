"""uvicorn's httptools protocol with a deadline and a size bound on every request head.

uvicorn (0.54) has neither for httptools: its keep-alive timeout runs only between
requests and is cancelled by the first byte of the next, nothing runs before a new
connection's first request, and the parser keeps every header line it is sent. So a
client trickling its head a byte at a time held a connection for ever, and one sending
header lines without end grew the process's memory by what it sent (ingest, review 82;
the wall and the alerts API, review 87: RSS +16 MiB for 16 MiB of one head). Its h11
protocol bounds the head's size (``h11_max_incomplete_event_size``) but has no deadline
either and costs the hot path a pure-Python parser, so the two bounds are added here, on
the parser ingest is measured with (docs/ingest.md, "Performance"). Every service that
serves HTTP through uvicorn gives :func:`head_limited` to ``uvicorn.Config(http=...)``,
its bounds from ``EGOV_HEADER_TIMEOUT_S`` and ``EGOV_MAX_HEADER_BYTES``
(services/common/settings.py, ``HeadBounds``).

A head is what a connection sends from when it opens, or its previous request's body
ended, until the end of the header lines; its deadline runs from when the connection
opens or its previous answer was sent, never while an answer is being sent (the wall's
event streams last for hours). Past either bound the client is answered (408, 431,
problem+json, the same bytes whichever service answers) and the connection closed; a
connection that sent nothing is closed without a word.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

PROBLEM_BASE = "https://egov-pulse.vn/problems/"
"""The project's problem types (ingest's problems.py, the workers' web.py): a refused
head is the same problem, with the same ``type``, whichever service refuses it, and
ingest's answers are what its contract lists (schemas/CONTRACT.md)."""
PROBLEM_MEDIA_TYPE = "application/problem+json"

Refused = Callable[[str], None]
"""Told the problem slug of every connection closed for its head (a metric)."""


@dataclass(frozen=True, slots=True)
class HeadRefusal:
    """The RFC 9457 answer to a refused head, written by the protocol itself: the
    application never sees the request."""

    status: int
    slug: str
    title: str
    detail: str

    def body(self) -> bytes:
        """The problem+json document, as ingest's problems.py writes one (its bytes are
        ingest's contract)."""
        return orjson.dumps(
            {
                "type": PROBLEM_BASE + self.slug,
                "title": self.title,
                "status": self.status,
                "detail": self.detail,
            }
        )

    def response(self) -> bytes:
        """The whole HTTP/1.1 answer, closing the connection."""
        body = self.body()
        reason = HTTPStatus(self.status).phrase
        head = (
            f"HTTP/1.1 {self.status} {reason}\r\ncontent-type: {PROBLEM_MEDIA_TYPE}\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        return head.encode() + body


def headers_too_slow(limit_s: float) -> HeadRefusal:
    return HeadRefusal(
        408,
        "headers-too-slow",
        "Request head too slow",
        f"The request head was not complete within {limit_s:g} s; send the request again.",
    )


def headers_too_large(limit: int) -> HeadRefusal:
    return HeadRefusal(
        431,
        "headers-too-large",
        "Request header fields too large",
        f"The request line and headers exceed {limit} bytes.",
    )


class HeadLimitedProtocol(HttpToolsProtocol):
    """httptools' protocol, refusing a head not whole within ``head_timeout_s`` or larger
    than ``max_head_bytes``. Configured by subclassing (:func:`head_limited`): uvicorn
    builds one instance per connection from the class alone."""

    head_timeout_s: ClassVar[float] = 10.0
    max_head_bytes: ClassVar[int] = 32 * 1024
    body_gap_s: ClassVar[float] = 30.0
    """How long the body of a request answered early may stop coming before the connection
    is closed (ingest's body rule, ``EGOV_BODY_TIMEOUT_S``)."""
    refused: ClassVar[Refused | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._in_head = True
        self._head_bytes = 0
        self._ended = 0
        """Requests whose message ended (their body read whole) on this connection."""
        self._answered_early = False
        """Answered before its body was read whole (a 413, a 401): the next head's deadline
        starts when the body has ended, not while it still arrives (review 84)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        while data:
            if not self._in_head:  # a body, the common case: one test
                if self._answered_early:  # answered already: the body only has to keep coming
                    self._arm(self._stalled, self.body_gap_s)
                super().data_received(data)
                return
            room = self.max_head_bytes - self._head_bytes
            if room <= 0:
                self._refuse(headers_too_large(self.max_head_bytes))
                return
            # The head may take only ``room`` more bytes: the parser is fed those alone,
            # and what follows only once the head has ended in them.
            piece, data = data[:room], data[room:]
            ended = self._ended
            super().data_received(piece)
            if self.transport.is_closing():
                return
            if self._ended == ended and self._in_head:
                self._head_bytes += len(piece)
            # Else the head ended in the piece, and maybe whole requests after it
            # (pipelined: review 84 found 1,000 small ones in one read refused as one
            # large head): a next head's part of the piece is not known and counts as
            # nothing (``on_message_complete`` began its count at 0), so a head is cut at
            # twice the bound at worst.

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # Whatever follows is the next request's head (pipelined, or after keep-alive).
        self._in_head = True
        self._head_bytes = 0
        self._ended += 1
        if self._answered_early:
            self._answered_early = False
            self._disarm()
            if not self.pipeline and not self.transport.is_closing():
                self._arm()

    def on_response_complete(self) -> None:
        # A next request whose head is already whole waits in the pipeline: no deadline.
        waiting = bool(self.pipeline)
        super().on_response_complete()
        if self.transport.is_closing() or waiting:
            return
        if self._in_head:
            self._arm()
        else:
            # Its body still arrives: no head deadline before the body's end (a second,
            # unasked answer cut the upload: review 84), but a body that stops coming for
            # as long closes the connection, or a client could hold it for ever.
            self._answered_early = True
            self._arm(self._stalled, self.body_gap_s)

    def _arm(self, expired: Callable[[], None] | None = None, after_s: float = 0.0) -> None:
        self._disarm()
        after_s, expired = (after_s, expired) if expired else (self.head_timeout_s, self._too_slow)
        self._deadline = self.loop.call_later(after_s, expired)

    def _stalled(self) -> None:
        """The body of a request answered early stopped coming: nobody waits for an answer."""
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._head_bytes == 0:
            # Nothing came (or only between requests): nobody is waiting for an answer.
            self.transport.close()
            return
        self._refuse(headers_too_slow(self.head_timeout_s))

    def _refuse(self, refusal: HeadRefusal) -> None:
        self._disarm()
        refused = type(self).refused  # read on the class: a function stays unbound
        if refused is not None:
            refused(refusal.slug)
        self.transport.write(refusal.response())
        self.transport.close()


def head_limited(
    timeout_s: float, max_bytes: int, refused: Refused | None = None, body_gap_s: float = 30.0
) -> type[HeadLimitedProtocol]:
    """The protocol class to give uvicorn (``http=``) with these bounds."""
    bounds = {"head_timeout_s": timeout_s, "max_head_bytes": max_bytes, "refused": refused}
    return type("HeadLimitedProtocol", (HeadLimitedProtocol,), {**bounds, "body_gap_s": body_gap_s})
