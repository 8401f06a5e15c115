"""Review 85: a worker that says its counting is stalled is read as a worker that does not
answer (services/common/figures_client.py), by the alerts and the wall alike. The
answers are the worker's own (services/metrics/web.py), served over real local HTTP."""

from __future__ import annotations

from datetime import datetime

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.common.figures import parse_activity, parse_activity_answer
from services.common.figures_client import FetchError, FiguresClient, fetch
from services.common.stalls import CountingStall
from services.common.units import VN_TZ
from services.metrics.web import stalled_answer
from tests.integration.alerts.harness import FakeMetrics, LocalServer

AT = datetime(2026, 11, 23, 10, 15, tzinfo=VN_TZ)
STALL = CountingStall(74.0, 1240, 60.0)


class Stalled(LocalServer):
    """A worker whose counting is stalled: /v1/kpis is its 503, /v1/activity a 200 that
    says so; or, with ``kpis_ok``, a /v1/kpis read just before the stall began."""

    def __init__(self, kpis_ok: bool = False) -> None:
        self.kpis_ok = kpis_ok
        super().__init__(Starlette(routes=[Route("/v1/kpis", self._kpis),
                                           Route("/v1/activity", self._activity)]))  # fmt: skip

    async def _kpis(self, _: Request) -> Response:
        if self.kpis_ok:
            return Response(b'{"items": []}', media_type="application/json")
        answer = stalled_answer(STALL, "egov-metrics@h:8081")
        return Response(answer.body, answer.status, media_type=answer.content_type)  # type: ignore[arg-type]

    async def _activity(self, _: Request) -> Response:
        items = [{"unit": "c1", "family": "documents", "last_event_time": AT.isoformat()}]
        body = {"worker": "w", "counting_stalled": STALL.to_json(), "items": items}
        return Response(orjson.dumps(body), media_type="application/json")


async def test_a_stalled_worker_is_read_as_not_answering_and_the_reason_names_the_stall() -> None:
    async with (
        FakeMetrics() as current,
        Stalled() as stalled,
        Stalled(kpis_ok=True) as stalling,
        httpx.AsyncClient() as http,
    ):
        current.set("c2", 19, 20)
        current.activity[("c2", "documents")] = AT
        client = FiguresClient(http, [current.url, stalled.url, stalling.url], 2.0)
        reading = await client.read(["day"])
    assert set(reading.answers) == {current.url}
    said = reading.errors[stalled.url]  # from whichever of its two answers came first
    assert "74 s" in said and "1240 records" in said, said
    # Its /v1/kpis read a moment before the stall began: the activity says it.
    assert reading.errors[stalling.url] == (
        "counting stalled: nothing committed for 74 s, 1240 records waiting"
    )
    assert [a.unit for a in reading.activity()] == ["c2"]


async def test_a_503_problem_answer_is_a_failure_that_gives_its_detail() -> None:
    async with Stalled() as stalled, httpx.AsyncClient() as http:
        with pytest.raises(FetchError) as failed:
            await fetch(http, f"{stalled.url}/v1/kpis", 2.0)
    assert str(failed.value).startswith(
        "HTTP 503: egov-metrics@h:8081 has committed no flush for 74 s while 1240 records"
    )


def test_the_stall_an_activity_answer_states_is_read_with_its_items() -> None:
    items = [{"unit": "c1", "family": "documents", "last_event_time": AT.isoformat()}]
    stalled = orjson.dumps({"counting_stalled": STALL.to_json(), "items": items})
    found, stall = parse_activity_answer(stalled)
    assert stall == STALL
    assert [(a.unit, a.last_event_time) for a in found] == [("c1", AT)]
    assert parse_activity(stalled) == found
    # Keeping up (null), or a worker older than the member: no stall.
    assert (
        parse_activity_answer(orjson.dumps({"counting_stalled": None, "items": items}))[1] is None
    )
    assert parse_activity_answer(orjson.dumps({"items": items}))[1] is None


def test_a_stall_that_does_not_read_is_believed() -> None:
    assert CountingStall.from_json("yes") == CountingStall(0.0, 0, 0.0)
    assert CountingStall.from_json({"stalled_s": "long", "waiting_records": None}) == (
        CountingStall(0.0, 0, 0.0)
    )
    assert CountingStall.from_json(STALL.to_json()) == STALL
