"""HTTP views of the metrics worker: Prometheus exposition, the JSON API, health.

They run on the event loop that counts, so none of them builds figures per request:
/v1/kpis and /v1/activity answer from the snapshot the loop publishes
(services/metrics/snapshot.py), /v1/kpis/history from PostgreSQL with a bounded query
(services/metrics/history.py), a few at a time. A bad or out-of-bounds parameter is a
400 problem+json naming it. While the counting is stalled (services/metrics/stallwatch.py)
/v1/kpis answers 503 and /v1/activity says so: the snapshot stands still meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any

import asyncpg
import faust
import orjson
from aiohttp import web as aioweb
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from services.common.export_requests import ExportAsk, ExportQueryError, attachment
from services.common.stalls import MEMBER as STALL_MEMBER
from services.common.stalls import CountingStall
from services.common.units import UnitRegistry
from services.metrics import api, download, history, store
from services.metrics.eras import Crosswalk
from services.metrics.figures import Figures
from services.metrics.kpitext import KpiText
from services.metrics.periods import local_day
from services.metrics.settings import MetricsSettings
from services.metrics.snapshot import KpiSnapshots, SnapshotCollector
from services.metrics.targets import Targets

PROBLEM_BASE = "https://egov-pulse.vn/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"
HISTORY_WAIT_S = 5.0
"""How long a history request waits for a free query slot before a 503."""
STALLED_RETRY_AFTER_S = 5
"""``Retry-After`` of a /v1/kpis refused while the counting is stalled."""


def _never_stalled() -> CountingStall | None:
    return None


def _params(request: Any) -> dict[str, list[str]]:
    query = request.query
    return {key: query.getall(key) for key in set(query.keys())}


def problem(status: int, slug: str, title: str, detail: str, **extra: Any) -> aioweb.Response:
    """An RFC 9457 problem+json answer, as ingest writes them."""
    body = {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail}
    headers = {}
    if "retry_after" in extra:
        headers["Retry-After"] = str(extra.pop("retry_after"))
    return aioweb.Response(
        body=orjson.dumps(body | extra),
        status=status,
        content_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def bad_query(exc: api.QueryError) -> aioweb.Response:
    if isinstance(exc, history.LimitError):
        return problem(
            400, "limit-exceeded", "parameter out of bounds", str(exc),
            parameter=exc.parameter, limit=exc.limit,
        )  # fmt: skip
    return problem(400, "bad-query", "bad query", str(exc))


def _json(body: dict[str, Any]) -> aioweb.Response:
    return aioweb.Response(body=orjson.dumps(body), content_type="application/json")


def register_views(
    app: faust.App,
    registry: CollectorRegistry,
    kpi_text: KpiText,
    *,
    figures: Figures,
    units: UnitRegistry,
    targets: Targets,
    clock: Callable[[], datetime],
    pool: Callable[[], Awaitable[asyncpg.Pool]],
    worker_name: str,
    settings: MetricsSettings,
    stalled: Callable[[], CountingStall | None] = _never_stalled,
) -> KpiSnapshots:
    """Register the views and the snapshot timer; returns the snapshots they answer from.
    ``stalled`` says whether the counting is stalled (``Counting.stalled``)."""
    snapshots = KpiSnapshots(
        figures, units, targets, clock, interval_s=settings.metrics_snapshot_interval_s
    )
    registry.register(SnapshotCollector(snapshots))
    crosswalk = Crosswalk.from_dir(settings.units_dir)
    slots = asyncio.Semaphore(settings.metrics_history_concurrency)

    async def first_snapshot() -> None:
        # At start-up, before partitions are assigned: nothing to build yet. From then
        # on every change of the figures (a committed step) schedules the next one.
        await snapshots.refresh()
        figures.on_change = snapshots.poke

    async def publish_snapshot() -> None:
        await snapshots.refresh()

    app.task(first_snapshot)
    app.timer(settings.metrics_snapshot_interval_s)(publish_snapshot)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        # Streamed in pieces: a full scrape is ~90 MB of text, which held at once doubled
        # the worker's memory, and rendered at once held the event loop (counting) for
        # seconds. Between pieces the loop runs; the figures were snapshotted first.
        # aiohttp refuses a charset inside content_type, so the header is set whole.
        response = aioweb.StreamResponse(headers={"Content-Type": CONTENT_TYPE_LATEST})
        await response.prepare(request)
        for chunk in kpi_text.chunks():
            await response.write(chunk)
            await asyncio.sleep(0)
        await response.write(generate_latest(registry))
        await response.write_eof()
        return response

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/v1/kpis")
    async def kpis(web: Any, request: Any) -> Any:
        stall = stalled()
        if stall is not None:  # the file download too: never frozen figures as today's
            return stalled_answer(stall, worker_name)
        params = _params(request)
        if "format" in params:
            return await kpis_download(params, snapshots, targets, units)
        return kpis_answer(params, snapshots, targets, worker_name)

    @app.page("/v1/activity")
    async def activity(web: Any, request: Any) -> Any:
        return activity_answer(snapshots, worker_name, stalled())

    @app.page("/v1/kpis/history")
    async def history_page(web: Any, request: Any) -> Any:
        try:
            query = history.HistoryQuery.parse(
                _params(request),
                units,
                crosswalk,
                local_day(clock()),
                settings.metrics_history_max_days,
            )
        except api.QueryError as exc:
            return bad_query(exc)

        async def read(query: history.HistoryQuery) -> list[tuple[date, int, int]]:
            async with (await pool()).acquire() as conn:
                return await store.history(conn, query.lineage, query.kpi, query.first, query.last)

        target_on = history.targets_on(targets, units, query)
        return await history_answer(query, read, slots, HISTORY_WAIT_S, target_on)

    return snapshots


def kpis_answer(
    params: dict[str, list[str]], snapshots: KpiSnapshots, targets: Targets, worker_name: str
) -> aioweb.Response:
    """/v1/kpis from the latest snapshot: items selected and joined, never built here."""
    try:
        query = api.KpiQuery.parse(params, targets.catalogue)
    except api.QueryError as exc:
        return bad_query(exc)
    snapshot = snapshots.latest
    head = {
        "generated_at": snapshot.periods.now.isoformat(),
        "snapshot_age_s": round(snapshots.age_s(snapshot), 3),
        "worker": worker_name,
        "partitions": list(snapshot.partitions),
    }
    return _with_items(head, b"[" + b",".join(snapshot.select(query)) + b"]")


async def kpis_download(
    params: dict[str, list[str]], snapshots: KpiSnapshots, targets: Targets, units: UnitRegistry
) -> aioweb.Response:
    """/v1/kpis?format=csv|xlsx: the same selection as the JSON answer, as a file."""
    try:
        query = api.KpiQuery.parse(params, targets.catalogue)
        ask = ExportAsk.parse(params, default_window="day")
        download.one_window(query)
    except api.QueryError as exc:
        return bad_query(exc)
    except ExportQueryError as exc:
        return problem(400, "bad-query", "bad query", str(exc), parameter=exc.parameter)
    snapshot = snapshots.latest
    items = snapshot.select(query)
    try:
        file = await download.render_off_loop(ask, query, items, snapshot.periods.now, units)
    except ExportQueryError as exc:
        return problem(400, "limit-exceeded", "too many rows", str(exc), parameter=exc.parameter)
    return aioweb.Response(body=file.body, headers=attachment(file))


def stalled_answer(stall: CountingStall, worker_name: str) -> aioweb.Response:
    """/v1/kpis while the counting is stalled: a 503 naming the stall, never a 200 from
    figures that stand still (a reader would take them as today's, and the alerts the
    units' silence as theirs)."""
    detail = (
        f"{worker_name} has committed no flush for {stall.stalled_s:.0f} s while "
        f"{stall.waiting_records} records it read wait uncounted (PostgreSQL unreachable "
        f"or a lock held?): its figures stand still; its units are unknown, not silent"
    )
    return problem(
        503, "counting-stalled", "counting stalled", detail,
        worker=worker_name, retry_after=STALLED_RETRY_AFTER_S, **{STALL_MEMBER: stall.to_json()},
    )  # fmt: skip


def activity_answer(
    snapshots: KpiSnapshots, worker_name: str, stall: CountingStall | None = None
) -> aioweb.Response:
    """/v1/activity from the latest snapshot. Still a 200 while the counting is stalled:
    the last events counted stay true, and the answer says the counting stands still
    (``counting_stalled``), which a reader of silence must heed (figures_client does)."""
    snapshot = snapshots.latest
    head = {
        "worker": worker_name,
        "partitions": list(snapshot.partitions),
        "snapshot_age_s": round(snapshots.age_s(snapshot), 3),
        STALL_MEMBER: None if stall is None else stall.to_json(),
    }
    return _with_items(head, snapshot.activity)


def _with_items(head: dict[str, Any], items: bytes) -> aioweb.Response:
    """``head`` with ``"items"``, an encoded JSON array, as its last member."""
    body = orjson.dumps(head)[:-1] + b',"items":' + items + b"}"
    return aioweb.Response(body=body, content_type="application/json")


async def history_answer(
    query: history.HistoryQuery,
    read: Callable[[history.HistoryQuery], Awaitable[list[tuple[date, int, int]]]],
    slots: asyncio.Semaphore,
    wait_s: float,
    target_on: history.TargetOn = history.no_target,
) -> aioweb.Response:
    """The history answer, read when one of ``slots`` is free: waiting longer than
    ``wait_s`` is a 503 (retry), so a burst of history requests queues at most that long
    and never takes the flush's connections. ``target_on`` gives each day's target."""
    try:
        await asyncio.wait_for(slots.acquire(), wait_s)
    except TimeoutError:
        return problem(
            503, "busy", "history busy", "too many history queries at once; retry",
            retry_after=1,
        )  # fmt: skip
    try:
        rows = await read(query)
    finally:
        slots.release()
    return _json(history.answer(query, rows, target_on))
