"""Request parsing and problem responses of the alerts API, in one place.

Handlers raise :class:`ApiError` leaves (or the store's and the targets' own errors);
``guarded`` turns every one into an ``application/problem+json`` answer (RFC 9457), and
an absent database into 503. Nothing here knows what an alert or a target means.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.alerts import store
from services.alerts.journal import UNAVAILABLE
from services.alerts.targets import InvalidTarget
from services.common.rates import BP_SCALE
from services.common.targets import InvalidScope

Handler = Callable[[Request], Awaitable[Response]]


class ApiError(Exception):
    """An answer other than success; ``status`` and ``title`` make the problem document."""

    status = 500
    title = "Error"

    def response(self) -> JSONResponse:
        return problem(self.status, self.title, str(self))


class BadRequest(ApiError):
    status, title = 400, "Bad request"


class Unauthorized(ApiError):
    status, title = 401, "Unauthorized"

    def response(self) -> JSONResponse:
        answer = super().response()
        answer.headers["www-authenticate"] = "Bearer"
        return answer


class Forbidden(ApiError):
    status, title = 403, "Outside the operator's scope"


class TooLarge(ApiError):
    status, title = 413, "Body too large"


class Unprocessable(ApiError):
    status, title = 422, "Invalid target"


def problem(status: int, title: str, detail: str) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def guarded(handler: Handler) -> Handler:
    """Translate the API's, the store's and the database's errors into problem responses."""

    @functools.wraps(handler)
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as exc:
            return exc.response()
        except store.NotFound as exc:
            return problem(404, "Not found", str(exc))
        except store.Conflict as exc:
            return problem(409, "Conflict", str(exc))
        except InvalidTarget as exc:
            return problem(422, "Invalid target", str(exc))
        except InvalidScope as exc:
            return problem(400, "Bad request", str(exc))
        except UNAVAILABLE as exc:
            return problem(503, "Database unavailable", f"retry later ({type(exc).__name__})")

    return run


def bearer(request: Request) -> str | None:
    """The token of ``Authorization: Bearer``; None when no such header was sent."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        return None
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send an operator token: Authorization: Bearer <token>")
    return token.strip()


MAX_BODY_BYTES = 64 * 1024
"""The most an operator's request may send: an acknowledgement's note, a comment, a
target and its reason are a few hundred bytes. Unbounded, any operator token could make
the service hold bodies of any size (the service that evaluates the alerts), and store
comments and reasons cited with every figure of its province (review 51)."""


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object; an empty body is an empty object; 413 past
    :data:`MAX_BODY_BYTES`, counted as it arrives (a chunked body declares no length)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise TooLarge(f"the body exceeds {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise TooLarge(f"the body exceeds {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        return {}
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("the body is not JSON") from None
    if not isinstance(parsed, dict):
        raise BadRequest("send a JSON object")
    return parsed


def alert_id(request: Request) -> str:
    raw = request.path_params["id"]
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise store.NotFound(raw) from None


def text(fields: Mapping[str, Any], name: str, default: str = "") -> str:
    value = fields.get(name, default)
    if not isinstance(value, str):
        raise BadRequest(f"{name} is text")
    return value


def optional_text(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} is text")
    return value


def day(fields: Mapping[str, Any], name: str) -> date | None:
    """An ISO date (a Vietnam calendar day) or None."""
    value = optional_text(fields, name)
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{name} is a date, YYYY-MM-DD: {value!r}") from None


def target_bp(fields: Mapping[str, Any]) -> int:
    """``target_bp`` (basis points) or ``target`` (a ratio, 0.975 is 97.5 %) of a body."""
    if "target_bp" in fields:
        value = fields["target_bp"]
        if type(value) is not int:
            raise Unprocessable('target_bp is an integer: {"target_bp": 9750} is 97.5 %')
        return value
    value = fields.get("target")
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise Unprocessable('send {"target": 0.975, "reason": "..."} or {"target_bp": 9750, ...}')
    return ratio_bp(value)


def ratio_bp(value: float) -> int:
    """A target given as a ratio (0.975 is 97.5 %) in basis points, the unit targets are
    stored, judged and shown in; the API's ``target`` and ``egov-pulse targets set``.

    Refused (never rounded) unless it is a whole number of basis points, read through the
    number's shortest decimal form as sent: 0.99995 rounded to 10,000 would judge a unit
    at 99.995 % below a target of 100 % that nobody set."""
    if not 0.0 <= value <= 1.0:  # NaN too
        raise Unprocessable("target is a ratio between 0 and 1 (0.95 means 95 %)")
    bp = Decimal(repr(float(value))) * BP_SCALE
    if bp != bp.to_integral_value():
        raise Unprocessable(
            f"targets are whole basis points: {value!r} is {bp.normalize():f} bp; send "
            f'target_bp (an integer: {{"target_bp": 9999}} is 99.99 %) or a ratio with at '
            "most 4 decimals"
        )
    return int(bp)
