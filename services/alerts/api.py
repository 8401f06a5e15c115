"""HTTP API of the alerts service: alerts with history, acknowledgements, targets.

Reads and writes go to PostgreSQL; when it is away they answer 503 (the evaluation
goes on in memory). Writes need an operator token (``Authorization: Bearer``) whose
scope covers the province they touch, else 403 naming the unit and the scope. Reads
need none, except what names or quotes people: who acknowledged an alert, its comments
and who changed a target are shown only to an operator whose scope covers that
province (docs/targets.md). A token that is sent is checked before any handler runs, on
every route (``routes`` wraps each one in :meth:`AlertsApi.authenticated`): an unknown
or revoked one is a 401, reads included. Unit and KPI ids are checked against data/units
(today's units) and the catalogue: an unknown one is a 400 naming it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.alerts import operators, store, targets
from services.alerts.directory import UnitDirectory, from_units
from services.alerts.http import (
    BadRequest,
    Forbidden,
    Handler,
    Unauthorized,
    alert_id,
    bearer,
    day,
    guarded,
    json_object,
    optional_text,
    target_bp,
    text,
)
from services.alerts.model import Alert
from services.alerts.operators import Operator
from services.alerts.service import AlertsService
from services.common.db import Connection
from services.common.kpis import KpiCatalogue
from services.common.targetdata import LEVELS
from services.common.targets import (
    Effective,
    Override,
    OverrideIndex,
    Placement,
    Scope,
    effective_target,
)
from services.common.units import VN_TZ, UnitRegistry


@dataclass(frozen=True, slots=True)
class KnownIds:
    """What ids the API accepts: today's units (data/units) and the KPI catalogue."""

    units: UnitDirectory
    catalogue: KpiCatalogue

    @classmethod
    def load(cls) -> KnownIds:
        return cls(from_units(UnitRegistry.from_dir().units("2025")), KpiCatalogue.load())

    def kpi(self, kpi_id: str | None) -> str:
        if not kpi_id:
            raise BadRequest("an override names its KPI (kpi); one per KPI, never all at once")
        if kpi_id not in self.catalogue.ids:
            known = ", ".join(self.catalogue.ids)
            raise BadRequest(f"unknown KPI {kpi_id!r}; the catalogue has {known}")
        return kpi_id

    def placement(self, code: str) -> Placement:
        unit = self.units.get(code)
        if unit is None:
            raise BadRequest(f"unknown unit {code!r}: not a unit code today (data/units)")
        return Placement(unit.code, unit.level, unit.province)

    def province(self, code: str) -> str:
        unit = self.units.get(code)
        if unit is None or unit.level != "province":
            raise BadRequest(f"unknown province {code!r}: not a province code today")
        return code

    def scope(self, fields: Mapping[str, Any], *, new: bool = True) -> Scope:
        """The scope the fields name. A ``new`` override's level must be one some unit
        has today; removing one (``new=False``) takes any stored level, so an override
        set for districts before the 2025 reform can still be unset."""
        unit, province = optional_text(fields, "unit"), optional_text(fields, "province")
        level = optional_text(fields, "level")
        if unit is not None and (province is not None or level is not None):
            raise BadRequest("an override is for a unit, or for a province (and level): not both")
        if unit is not None:
            return Scope(unit=self.placement(unit).code)
        if province is None:
            raise BadRequest("say where the override applies: unit, or province (and level)")
        if level is not None and level not in (self.units.levels if new else LEVELS):
            raise BadRequest(self._no_such_level(level))
        return Scope(province=self.province(province), level=level)

    def _no_such_level(self, level: str) -> str:
        # Checked against today's units, not LEVELS: LEVELS still holds "district" so that
        # overrides stored before the 2025 reform load, but a new one for a level no unit
        # has would apply to nothing.
        order = {lv: i for i, lv in enumerate(LEVELS)}
        today = sorted(self.units.levels, key=lambda lv: (order.get(lv, len(order)), lv))
        former = " (none since the 2025 reform)" if level in LEVELS else ""
        return (
            f"unknown level {level!r}: no unit today has it{former}; "
            f"the levels today are {', '.join(today)}"
        )

    def province_of(self, scope: Scope) -> str:
        return self.placement(scope.unit).province if scope.unit else str(scope.province)


class AlertsApi:
    """The handlers; each parses its request (services/alerts/http.py), checks the
    operator's scope where it writes, and calls the store."""

    def __init__(self, service: AlertsService, known: KnownIds) -> None:
        self.service = service
        self.known = known

    # --- shared steps -----------------------------------------------------------------

    def _pool(self) -> Any:
        if self.service.pool is None:
            raise ConnectionError("PostgreSQL not connected yet")
        return self.service.pool

    def authenticated(self, handler: Handler) -> Handler:
        """``handler`` run after the request's token, when one is sent, is checked: an
        unknown or revoked token is a 401 whatever the route; the operator it names (None
        without a token) is what :meth:`_viewer` answers to the handler."""

        @functools.wraps(handler)
        async def run(request: Request) -> Response:
            request.state.viewer = await self._authenticate(request)
            return await handler(request)

        return run

    async def _authenticate(self, request: Request) -> Operator | None:
        """The operator of the request's token, None without one; 401 for a bad one."""
        token = bearer(request)
        if token is None:
            return None
        async with self._pool().acquire() as conn:
            found = await operators.authenticate(conn, token)
        if found is None:
            raise Unauthorized("unknown or revoked operator token")
        return found

    @staticmethod
    def _viewer(request: Request) -> Operator | None:
        """The operator :meth:`authenticated` found for this request (checked once)."""
        viewer: Operator | None = request.state.viewer
        return viewer

    async def _operator(self, request: Request) -> Operator:
        found = self._viewer(request)
        if found is None:
            raise Unauthorized("send an operator token: Authorization: Bearer <token>")
        return found

    @staticmethod
    def _may(who: Operator, province: str, what: str) -> None:
        if not who.may_act_on(province):
            raise Forbidden(
                f"{what} is in province {province}; operator {who.name!r} may act on {who.scope}"
            )

    # --- alerts -----------------------------------------------------------------------

    async def list_alerts(self, request: Request) -> Response:
        viewer = self._viewer(request)
        q = request.query_params
        f = store.AlertFilter(
            unit=q.get("unit"), kpi=q.get("kpi"), severity=q.get("severity"),
            state=q.get("state"), condition=q.get("alertname"),
        )  # fmt: skip
        since = self.service.clock() - timedelta(hours=self.service.settings.alert_recent_hours)
        async with self._pool().acquire() as conn:
            alerts = await store.list_alerts(conn, f, since)
        live = self._open_by_id()
        items = [_shown(_current(store.alert_json(a), live), viewer) for a in alerts]
        return JSONResponse({"items": items})

    async def get_alert(self, request: Request) -> Response:
        viewer = self._viewer(request)
        async with self._pool().acquire() as conn:
            found = await store.get_alert(conn, alert_id(request))
        return JSONResponse(_shown(_current(found, self._open_by_id()), viewer))

    def _open_by_id(self) -> dict[str, Alert]:
        return {a.id: a for a in self.service.state.open.values()}

    async def ack(self, request: Request) -> Response:
        return await self._note(request, "ack")

    async def comment(self, request: Request) -> Response:
        return await self._note(request, "comment")

    async def _note(self, request: Request, kind: str) -> Response:
        who = await self._operator(request)
        body = await json_object(request)
        note = text(body, "comment", text(body, "body"))
        if kind == "comment" and not note.strip():
            raise BadRequest('a comment needs text: {"comment": "..."}')
        target = alert_id(request)
        async with self._pool().acquire() as conn:
            before = await store.get_alert(conn, target)
            self._may(who, before["province"], f"the alert of unit {before['unit']}")
            await store.add_note(conn, target, kind, who.name, note)
            after = await store.get_alert(conn, target)
        if kind == "ack":
            # The open alert in memory too: the webhook and Kafka events of its next
            # transitions are made from it, and must say who acknowledged it.
            self.service.state.acknowledged(target, after["acked_by"], after["acked_at"])
            # On local disk too: a restart while PostgreSQL is away keeps it acknowledged.
            await self.service.state.save(self.service.clock())
            # Its silence in Alertmanager, at the next cycle.
            self.service.delivery.request_push(acknowledgement=True)
        return JSONResponse(_shown(after, who))

    # --- targets ----------------------------------------------------------------------

    async def list_targets(self, request: Request) -> Response:
        viewer = self._viewer(request)
        q = request.query_params
        async with self._pool().acquire() as conn:
            found = await targets.list_overrides(conn)
        items = [
            targets.override_json(o, with_names=_reads_names(viewer, self._province(o.scope)))
            for o in found
            if all(q.get(k) in (None, v) for k, v in _filters(o).items())
        ]
        return JSONResponse({"items": items})

    async def effective(self, request: Request) -> Response:
        q = request.query_params
        where = self.known.placement(q.get("unit") or "")
        kpi = self.known.catalogue.get(self.known.kpi(q.get("kpi")))
        on = day(q, "day") or _vietnam_day(self.service)
        async with self._pool().acquire() as conn:
            index = OverrideIndex(await targets.list_overrides(conn))
        found = effective_target(kpi, where, on, index)
        if found is None:
            raise store.NotFound(f"no target for {kpi.id} on {on}")
        return JSONResponse(_effective_json(where, kpi.id, on, found))

    async def put_target(self, request: Request) -> Response:
        who = await self._operator(request)
        fields = await self._target_fields(request)
        change = self._change(fields, who)
        value, until = target_bp(fields), day(fields, "valid_until")
        async with self._pool().acquire() as conn:
            await targets.set_override(conn, change, value, until)
            return await self._listing(conn, change.scope)

    async def delete_target(self, request: Request) -> Response:
        who = await self._operator(request)
        fields = {**request.query_params, **(await self._target_fields(request))}
        change = self._change(fields, who, new=False)
        async with self._pool().acquire() as conn:
            await targets.unset_override(conn, change)
        return Response(status_code=204)

    async def kpi_less(self, request: Request) -> Response:
        raise BadRequest(
            f"an override names its KPI: {request.method} /v1/targets/"
            f"{request.path_params['unit']}/<kpi> (one of {', '.join(self.known.catalogue.ids)})"
        )

    async def _target_fields(self, request: Request) -> dict[str, Any]:
        """The body, with the unit and KPI of the path (``/v1/targets/{unit}/{kpi}``)."""
        fields = await json_object(request)
        return {**fields, **request.path_params}

    def _change(
        self, fields: Mapping[str, Any], who: Operator, *, new: bool = True
    ) -> targets.Change:
        scope = self.known.scope(fields, new=new)
        kpi = self.known.kpi(optional_text(fields, "kpi"))
        self._may(who, self.known.province_of(scope), f"the target of {scope}")
        return targets.Change(
            scope, kpi, who.name, text(fields, "reason"), day(fields, "valid_from")
        )

    async def _listing(self, conn: Connection, scope: Scope) -> Response:
        found = [o for o in await targets.list_overrides(conn) if o.scope == scope]
        return JSONResponse({"items": [targets.override_json(o, with_names=True) for o in found]})

    def _province(self, scope: Scope) -> str:
        if scope.unit is None:
            return str(scope.province)
        unit = self.known.units.get(scope.unit)
        return unit.province if unit else ""


def _filters(o: Override) -> dict[str, str | None]:
    return {"unit": o.scope.unit, "province": o.scope.province, "kpi": o.kpi}


def _reads_names(viewer: Operator | None, province: str) -> bool:
    return viewer is not None and viewer.may_act_on(province)


def _shown(alert: dict[str, Any], viewer: Operator | None) -> dict[str, Any]:
    """An alert as ``viewer`` may see it: names and comments for an operator in scope."""
    if _reads_names(viewer, alert.get("province") or ""):
        return alert
    hidden = {**alert, "acked_by": None, "names_hidden": True}
    if "notes" in alert:
        hidden["notes"] = None
    return hidden


def _vietnam_day(service: AlertsService) -> date:
    return service.clock().astimezone(VN_TZ).date()


def _effective_json(where: Placement, kpi: str, on: date, found: Effective) -> dict[str, Any]:
    body: dict[str, Any] = {
        "unit": where.code, "level": where.level, "province": where.province, "kpi": kpi,
        "day": on.isoformat(), "target_bp": found.target_bp, "target": found.ratio,
        "origin": found.origin,
    }  # fmt: skip
    if found.override is not None:
        body["override"] = targets.override_json(found.override, with_names=False)
    if found.default is not None:
        source = found.default.source
        body["source"] = {
            "id": source.id, "document": source.document, "issuer": source.issuer,
            "title_vi": source.title_vi, "title_en": source.title_en,
            "national": source.national,
        }  # fmt: skip
    return body


def routes(service: AlertsService, known: KnownIds | None = None) -> list[Route]:
    """The API's routes; every one checks a sent token first (``AlertsApi.authenticated``),
    so a route added here cannot forget it."""
    api = AlertsApi(service, known or KnownIds.load())

    def route(path: str, handler: Handler, *methods: str) -> Route:
        return Route(path, guarded(api.authenticated(handler)), methods=list(methods))

    return [
        route("/v1/alerts", api.list_alerts, "GET"),
        route("/v1/alerts/{id}", api.get_alert, "GET"),
        route("/v1/alerts/{id}/ack", api.ack, "POST"),
        route("/v1/alerts/{id}/comments", api.comment, "POST"),
        route("/v1/targets", api.list_targets, "GET"),
        route("/v1/targets", api.put_target, "PUT"),
        route("/v1/targets", api.delete_target, "DELETE"),
        route("/v1/targets/effective", api.effective, "GET"),
        route("/v1/targets/{unit}", api.kpi_less, "PUT", "DELETE"),
        route("/v1/targets/{unit}/{kpi}", api.put_target, "PUT"),
        route("/v1/targets/{unit}/{kpi}", api.delete_target, "DELETE"),
    ]


def _current(stored: dict[str, Any], live: Mapping[str, Alert]) -> dict[str, Any]:
    """A stored alert with the figures and wording of its latest evaluation, while it is
    open in this service (``live``, by id): the row is written at transitions only, and
    the wall must show what Alertmanager is sent (60,00 % now, not the 80 % it fired at)."""
    alert = live.get(stored["id"])
    if alert is None or alert.state.value != stored["state"]:
        return stored
    return {**stored, "values": dict(alert.values), "annotations": dict(alert.annotations)}
