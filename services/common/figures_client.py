"""Adapter: reads /v1/kpis and /v1/activity from every metrics worker, all at once.

Each worker answers only for the partitions it owns (docs/metrics-api.md), so every
worker in ``EGOV_METRICS_URLS`` is asked and the answers are merged
(:mod:`services.common.figures`). A worker that does not answer within the timeout is
reported in :attr:`Reading.errors`, with a short reason; its units are *unknown*
(absent), never zero and never recovered. So is a worker whose counting is stalled
(services/common/stalls.py: its /v1/kpis answers 503, its /v1/activity says so): it
answers from figures that stand still, and its units' events wait uncounted in it. Used by
the alerts service and the wall.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from services.common.figures import (
    Activity,
    AnswerFormatError,
    Figure,
    merge_activity,
    merge_figures,
    parse_activity_answer,
    parse_figures,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

PROBLEM_DETAIL_CHARS = 300
"""At most this much of a problem answer's ``detail`` goes into the reason given."""


class FetchError(Exception):
    """One request did not get a usable answer; the message says how, in a few words
    (``timeout``, ``ConnectError``, ``HTTP 503``, ``unexpected JSON: ...``)."""


async def fetch(
    http: httpx.AsyncClient, url: str, timeout_s: float, params: Mapping[str, Any] | None = None
) -> bytes:
    """The body of a 200 answer to GET ``url``; :class:`FetchError` for anything else."""
    try:
        response = await http.get(url, params=params, timeout=timeout_s)
    except httpx.TimeoutException:
        raise FetchError("timeout") from None
    except httpx.TransportError as exc:
        raise FetchError(type(exc).__name__) from None
    if response.status_code != 200:
        raise FetchError(_failed(response))
    return response.content


def _failed(response: httpx.Response) -> str:
    """``HTTP 503``, and the problem's ``detail`` when the answer has one (a stalled
    worker names its stall there): the log and the wall say why, not only that."""
    reason = f"HTTP {response.status_code}"
    if not response.headers.get("content-type", "").startswith("application/problem+json"):
        return reason
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return reason
    if not isinstance(detail, str) or not detail:
        return reason
    said = "".join(c if c.isprintable() else " " for c in detail[:PROBLEM_DETAIL_CHARS])
    return f"{reason}: {said}"


@dataclass(frozen=True, slots=True)
class WorkerAnswer:
    """What one worker answered: its figures of every window asked, and its activity."""

    figures: list[Figure]
    activity: list[Activity]


@dataclass(slots=True)
class Reading:
    """One read of every worker: the answers by URL, and why the others failed."""

    answers: dict[str, WorkerAnswer] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def figures(self) -> list[Figure]:
        return merge_figures([a.figures for a in self.answers.values()])

    def activity(self) -> list[Activity]:
        return merge_activity(a.activity for a in self.answers.values())


class FiguresClient:
    """Asks every worker at once, one request per window and one for the activity.

    One request per window keeps each call on a worker short (the worker builds the
    answer in its event loop, about a second per window at 10,000 units) and lets this
    side parse one window while the worker builds the next. ``timeout_s`` bounds every
    request: a slow worker is reported as failed rather than holding the others.
    """

    def __init__(self, http: httpx.AsyncClient, urls: Sequence[str], timeout_s: float) -> None:
        self._http = http
        self.urls = [u.rstrip("/") for u in urls]
        self._timeout_s = timeout_s

    async def read(self, windows: Sequence[str], *, activity: bool = True) -> Reading:
        outcomes = await asyncio.gather(
            *(self._worker(url, windows, activity) for url in self.urls), return_exceptions=True
        )
        reading = Reading()
        for url, outcome in zip(self.urls, outcomes, strict=True):
            if isinstance(outcome, WorkerAnswer):
                reading.answers[url] = outcome
            elif isinstance(outcome, FetchError):
                reading.errors[url] = str(outcome)
            elif isinstance(outcome, Exception):
                log.warning("metrics worker %s failed", url, exc_info=outcome)
                reading.errors[url] = repr(outcome)
            else:
                raise outcome  # cancelled or interrupted: not a worker's fault
        return reading

    async def _worker(self, url: str, windows: Sequence[str], activity: bool) -> WorkerAnswer:
        # A worker answers for all of its windows or is counted as not answering.
        async def acts() -> list[Activity]:
            if not activity:
                return []
            found, stall = _parsed(parse_activity_answer, await self._get(f"{url}/v1/activity"))
            if stall is not None:  # its last events stand still: not its units' silence
                raise FetchError(stall.describe())
            return found

        per_window, answered = await asyncio.gather(
            asyncio.gather(*(self._kpis(url, w) for w in windows)), acts()
        )
        return WorkerAnswer([fig for part in per_window for fig in part], answered)

    async def _kpis(self, url: str, window: str) -> list[Figure]:
        return _parsed(parse_figures, await self._get(f"{url}/v1/kpis", {"window": window}))

    async def _get(self, url: str, params: Mapping[str, Any] | None = None) -> bytes:
        return await fetch(self._http, url, self._timeout_s, params)


def _parsed(parse: Callable[[bytes], T], body: bytes) -> T:
    try:
        return parse(body)
    except AnswerFormatError as exc:
        raise FetchError(f"unexpected JSON: {exc}") from None
