"""HTTP API of the alerts service: alerts with history, acknowledgements, targets.

Reads and writes go to PostgreSQL; when it is away they answer 503 (the evaluation
goes on in memory). Writes need an operator token (``Authorization: Bearer``).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.alerts import operators, store, targets
from services.alerts.journal import UNAVAILABLE
from services.alerts.service import AlertsService

Handler = Callable[[Request], Awaitable[Response]]


def problem(status: int, title: str, detail: str) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def guarded(handler: Handler) -> Handler:
    """Translate the store's errors and an absent database into problem responses."""

    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except store.NotFound as exc:
            return problem(404, "Not found", str(exc))
        except store.Conflict as exc:
            return problem(409, "Conflict", str(exc))
        except targets.InvalidTarget as exc:
            return problem(422, "Invalid target", str(exc))
        except UNAVAILABLE as exc:
            return problem(503, "Database unavailable", f"retry later ({type(exc).__name__})")

    return run


def routes(service: AlertsService) -> list[Route]:
    def pool() -> Any:
        if service.pool is None:
            raise ConnectionError("PostgreSQL not connected yet")
        return service.pool

    async def operator(request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        async with pool().acquire() as conn:
            return await operators.authenticate(conn, token.strip())

    def unauthorized() -> JSONResponse:
        response = problem(401, "Unauthorized", "send an operator token: Authorization: Bearer")
        response.headers["www-authenticate"] = "Bearer"
        return response

    async def body_of(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw:
            return {}
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return {"__invalid__": True}
        return parsed if isinstance(parsed, dict) else {"__invalid__": True}

    def alert_id(request: Request) -> str:
        raw = request.path_params["id"]
        try:
            return str(uuid.UUID(raw))
        except ValueError:
            raise store.NotFound(raw) from None

    @guarded
    async def list_alerts(request: Request) -> Response:
        q = request.query_params
        f = store.AlertFilter(
            unit=q.get("unit"), kpi=q.get("kpi"), severity=q.get("severity"),
            state=q.get("state"), condition=q.get("alertname"),
        )  # fmt: skip
        since = service.clock() - timedelta(hours=service.settings.alert_recent_hours)
        async with pool().acquire() as conn:
            alerts = await store.list_alerts(conn, f, since)
        return JSONResponse({"items": [store.alert_json(a) for a in alerts]})

    @guarded
    async def get_alert(request: Request) -> Response:
        async with pool().acquire() as conn:
            return JSONResponse(await store.get_alert(conn, alert_id(request)))

    def note(kind: str) -> Handler:
        @guarded
        async def add(request: Request) -> Response:
            who = await operator(request)
            if who is None:
                return unauthorized()
            body = await body_of(request)
            text = body.get("comment", body.get("body", ""))
            if "__invalid__" in body or not isinstance(text, str):
                return problem(400, "Bad request", 'send JSON {"comment": "..."} or nothing')
            if kind == "comment" and not text.strip():
                return problem(422, "Empty comment", "a comment needs text")
            target = alert_id(request)
            async with pool().acquire() as conn:
                await store.add_note(conn, target, kind, who, text)
                return JSONResponse(await store.get_alert(conn, target))

        return add

    @guarded
    async def list_targets(request: Request) -> Response:
        async with pool().acquire() as conn:
            found = await targets.list_overrides(conn, request.query_params.get("unit"))
        return JSONResponse({"items": [o.as_json() for o in found]})

    @guarded
    async def put_target(request: Request) -> Response:
        who = await operator(request)
        if who is None:
            return unauthorized()
        body = await body_of(request)
        value = body.get("target")
        if not isinstance(value, int | float) or isinstance(value, bool):
            return problem(422, "Invalid target", 'send {"target": 0.9, "reason": "..."}')
        unit, kpi = request.path_params["unit"], request.path_params.get("kpi")
        async with pool().acquire() as conn:
            await targets.set_override(conn, unit, kpi, float(value), who,
                                       str(body.get("reason", "")))  # fmt: skip
            found = await targets.list_overrides(conn, unit)
        return JSONResponse({"items": [o.as_json() for o in found]})

    @guarded
    async def delete_target(request: Request) -> Response:
        who = await operator(request)
        if who is None:
            return unauthorized()
        reason = request.query_params.get("reason") or str(
            (await body_of(request)).get("reason", "")
        )
        unit, kpi = request.path_params["unit"], request.path_params.get("kpi")
        async with pool().acquire() as conn:
            await targets.unset_override(conn, unit, kpi, who, reason)
        return Response(status_code=204)

    return [
        Route("/v1/alerts", list_alerts),
        Route("/v1/alerts/{id}", get_alert),
        Route("/v1/alerts/{id}/ack", note("ack"), methods=["POST"]),
        Route("/v1/alerts/{id}/comments", note("comment"), methods=["POST"]),
        Route("/v1/targets", list_targets),
        Route("/v1/targets/{unit}", put_target, methods=["PUT"]),
        Route("/v1/targets/{unit}", delete_target, methods=["DELETE"]),
        Route("/v1/targets/{unit}/{kpi}", put_target, methods=["PUT"]),
        Route("/v1/targets/{unit}/{kpi}", delete_target, methods=["DELETE"]),
    ]
