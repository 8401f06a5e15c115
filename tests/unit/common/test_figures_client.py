"""Reading every metrics worker at once, over real local HTTP servers."""

from __future__ import annotations

import asyncio
from datetime import datetime

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.common.broker import free_port
from services.common.figures_client import FiguresClient
from services.common.units import VN_TZ
from tests.integration.alerts.harness import FakeMetrics, LocalServer

AT = datetime(2026, 11, 23, 10, 15, tzinfo=VN_TZ)


class Stuck(LocalServer):
    """Answers /v1/kpis only after ``delay_s``, or with ``status``."""

    def __init__(self, delay_s: float = 0.0, status: int = 200) -> None:
        self.delay_s, self.status = delay_s, status
        super().__init__(Starlette(routes=[Route("/v1/kpis", self._slow),
                                           Route("/v1/activity", self._slow)]))  # fmt: skip

    async def _slow(self, _: Request) -> Response:
        await asyncio.sleep(self.delay_s)
        return Response(b'{"items": []}', status_code=self.status)


async def test_every_worker_is_read_and_the_failures_are_named() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with (
        FakeMetrics() as w1,
        FakeMetrics() as w2,
        Stuck(delay_s=0.8) as slow,
        Stuck(status=503) as broken,
        httpx.AsyncClient() as http,
    ):
        w1.set("c1", 90, 100)
        w1.set("c2", 5, 10, window="month")
        w1.activity[("c1", "documents")] = AT
        w2.set("c3", 19, 20)
        client = FiguresClient(http, [w1.url, w2.url, slow.url, broken.url, dead], 0.3)
        reading = await client.read(["day", "month"])
    assert set(reading.answers) == {w1.url, w2.url}
    assert reading.errors == {slow.url: "timeout", broken.url: "HTTP 503", dead: "ConnectError"}
    figures = {(f.unit, f.window): (f.numerator, f.denominator) for f in reading.figures()}
    assert figures == {("c1", "day"): (90, 100), ("c2", "month"): (5, 10), ("c3", "day"): (19, 20)}
    assert [(a.unit, a.family, a.last_event_time) for a in reading.activity()] == [
        ("c1", "documents", AT)
    ]


async def test_a_rebalance_does_not_count_a_unit_twice() -> None:
    async with FakeMetrics() as old, FakeMetrics() as new, httpx.AsyncClient() as http:
        old.set("c1", 10, 12)  # the previous owner, a moment behind
        new.set("c1", 11, 13)
        new.set("c2", 1, 1)
        reading = await FiguresClient(http, [old.url, new.url], 2.0).read(["day"])
    assert reading.errors == {}
    assert sorted((f.unit, f.numerator, f.denominator) for f in reading.figures()) == [
        ("c1", 11, 13),
        ("c2", 1, 1),
    ]


async def test_an_answer_in_the_wrong_shape_fails_that_worker_only() -> None:
    class Html(LocalServer):
        def __init__(self) -> None:
            async def page(_: Request) -> Response:
                return Response(b"<html>", media_type="text/html")

            super().__init__(Starlette(routes=[Route("/v1/kpis", page),
                                               Route("/v1/activity", page)]))  # fmt: skip

    async with FakeMetrics() as good, Html() as html, httpx.AsyncClient() as http:
        good.set("c1", 1, 2)
        reading = await FiguresClient(http, [good.url, html.url], 2.0).read(["day"], activity=False)
    assert reading.errors[html.url].startswith("unexpected JSON: not a /v1/kpis answer")
    assert [f.unit for f in reading.figures()] == ["c1"]
