"""Real local servers the alerts tests (and bench/alerts.py) run against.

FakeMetrics serves the metrics workers' JSON API (docs/metrics-api.md) from figures a
test sets; Receiver is the webhook Alertmanager notifies; Alertmanager runs the real
Debian binary on free ports; TcpProxy stands between the service and PostgreSQL so a
test can cut the database off and bring it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import httpx
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.common.broker import free_port
from tests.servers import database_address, database_port

if TYPE_CHECKING:
    from services.alerts.service import AlertsService


class LocalServer:
    """A Starlette app served by uvicorn on a free loopback port, in this event loop."""

    def __init__(self, app: Starlette) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="off")  # fmt: skip
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:  # noqa: ASYNC110 - uvicorn offers no event
            await asyncio.sleep(0.02)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task


class FakeMetrics(LocalServer):
    """GET /v1/kpis and /v1/activity from ``items`` and ``activity``, set by the test."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.activity: dict[tuple[str, str], datetime] = {}
        self.requests = 0
        super().__init__(Starlette(routes=[Route("/v1/kpis", self._kpis),
                                           Route("/v1/activity", self._activity)]))  # fmt: skip

    def set(self, unit: str, numerator: int, denominator: int, *, kpi: str = "document_signing",
            window: str = "day", target: float = 0.95, min_volume: int = 20,
            province: str = "19") -> None:  # fmt: skip
        self.items[(kpi, unit, window)] = {
            "kpi": kpi, "kpi_name_vi": "Tỷ lệ văn bản điện tử được ký số",
            "kpi_name_en": "Digital-signing rate", "unit": unit, "unit_name": f"Xã {unit}",
            "unit_name_en": f"Commune {unit}", "level": "commune", "parent": province,
            "province": province, "window": window, "numerator": numerator,
            "denominator": denominator,
            "ratio": numerator / denominator if denominator else None, "target": target,
            "min_volume": min_volume,
        }  # fmt: skip

    def body(self, windows: list[str]) -> bytes:
        wanted = set(windows) or {"day"}
        items = [i for (_, _, w), i in self.items.items() if w in wanted]
        return orjson.dumps({"worker": "fake", "items": items})

    async def _kpis(self, request: Request) -> Response:
        self.requests += 1
        return Response(self.body(request.query_params.getlist("window")),
                        media_type="application/json")  # fmt: skip

    async def _activity(self, _: Request) -> Response:
        items = [{"unit": u, "family": f, "last_event_time": t.isoformat()}
                 for (u, f), t in self.activity.items()]  # fmt: skip
        return Response(orjson.dumps({"items": items}), media_type="application/json")


class Receiver(LocalServer):
    """Collects what Alertmanager (or the service's webhook) posts, with arrival times."""

    def __init__(self) -> None:
        self.posts: list[tuple[float, dict[str, Any], dict[str, str]]] = []
        self.raw_bodies: list[bytes] = []
        super().__init__(Starlette(routes=[Route("/hook", self._hook, methods=["POST"])]))

    async def _hook(self, request: Request) -> Response:
        raw = await request.body()
        self.posts.append((time.time(), orjson.loads(raw), dict(request.headers)))
        self.raw_bodies.append(raw)
        return Response(status_code=200)

    def notifications(self) -> list[tuple[str, list[dict[str, Any]]]]:
        """(status, alerts) of every Alertmanager notification so far."""
        return [(p["status"], p["alerts"]) for _, p, _ in self.posts]


AM_CONFIG = """
global:
  resolve_timeout: 5m
route:
  receiver: test
  group_by: [alertname, unit, kpi, window]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: {repeat}
receivers:
  - name: test
    webhook_configs:
      - url: {url}/hook
        send_resolved: true
"""


class Alertmanager:
    """The real prometheus-alertmanager on free ports, clustering off, storage in tmp."""

    def __init__(self, tmp: Path, receiver_url: str, repeat_interval: str = "1h") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._tmp = tmp
        (tmp / "am.yml").write_text(AM_CONFIG.format(url=receiver_url, repeat=repeat_interval))
        self._proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        with (self._tmp / "am.log").open("ab") as log:
            self._proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once
                ["prometheus-alertmanager", f"--config.file={self._tmp / 'am.yml'}",
                 f"--storage.path={self._tmp / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],
                stdout=log, stderr=log,
            )  # fmt: skip
        async with httpx.AsyncClient() as client:
            await wait_until(lambda: _ready(client, self.url), 20, "Alertmanager ready")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
            self._proc = None


QUIET = 3.0
"""Long enough for Alertmanager (group_interval 1 s) to have sent whatever it would."""


def statuses(receiver: Receiver) -> list[str]:
    """What the on-call person was told, in order: firing, resolved, ..."""
    return [status for status, _ in receiver.notifications()]


async def _ready(client: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await client.get(f"{url}/-/ready")).status_code == 200
    except httpx.TransportError:
        return False


async def wait_until(check: Callable[[], Awaitable[bool] | bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


class TcpProxy:
    """Forwards a free port to the session's PostgreSQL; ``down()`` refuses and cuts everything."""

    def __init__(self, target_port: int | None = None) -> None:
        self.port = free_port()
        self._target = target_port or database_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def dsn(self, database_url: str) -> str:
        """``database_url`` through this proxy."""
        return database_url.replace(database_address(), f"127.0.0.1:{self.port}")

    async def up(self) -> None:
        if self._server is None:  # up twice (a test's body, then its clean-up) is up
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update({writer, up_writer})
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        self._writers.difference_update({writer, up_writer})


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()


@pytest.fixture
async def fake_metrics() -> AsyncIterator[FakeMetrics]:
    """The metrics workers' JSON API, serving figures the test sets."""
    async with FakeMetrics() as server:
        yield server


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """The webhook Alertmanager notifies."""
    async with Receiver() as server:
        yield server


@pytest.fixture
async def repeating_alertmanager(tmp_path: Path, receiver: Receiver) -> AsyncIterator[Alertmanager]:
    """The real Alertmanager, re-notifying a firing group every 2 s (production: hours)."""
    am = Alertmanager(tmp_path, receiver.url, repeat_interval="2s")
    await am.start()
    try:
        yield am
    finally:
        am.stop()


async def silences(am: Alertmanager, states: tuple[str, ...] = ("active",)) -> list[dict[str, Any]]:
    """Alertmanager's silences in ``states``."""
    async with httpx.AsyncClient() as client:
        found: list[dict[str, Any]] = (await client.get(f"{am.url}/api/v2/silences")).json()
    return [s for s in found if s["status"]["state"] in states]


@pytest.fixture
async def alertmanager(tmp_path: Path, receiver: Receiver) -> AsyncIterator[Alertmanager]:
    """The real prometheus-alertmanager, routing every alert group to ``receiver``."""
    am = Alertmanager(tmp_path, receiver.url)
    await am.start()
    try:
        yield am
    finally:
        am.stop()


async def fire_then_resolve(svc: AlertsService, metrics: FakeMetrics, t0: datetime) -> str:
    """Commune c1 breaches (80 %), fires, recovers (99 %) and resolves, 2 s apart from
    ``t0``; the transitions are written. Returns the resolved alert's id."""
    from services.alerts.model import State

    metrics.set("c1", 80, 100)
    seen = await svc.evaluate_once(t0)
    seen += await svc.evaluate_once(t0 + timedelta(seconds=2))
    metrics.set("c1", 99, 100)
    seen += await svc.evaluate_once(t0 + timedelta(seconds=4))
    assert [t.to_state for t in seen] == [State.PENDING, State.FIRING, State.RESOLVED]
    await svc.flush()
    return seen[-1].alert.id
