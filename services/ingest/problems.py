"""RFC 9457 problem details: one stable ``type`` URI per kind of refusal."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

PROBLEM_BASE = "https://egov-pulse.vn/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


@dataclass(frozen=True, slots=True)
class InvalidEvent:
    """One refused event of a request: where it is, which field, and why."""

    index: int
    pointer: str
    reason: str
    code: str = "schema-violation"

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "pointer": self.pointer,
            "reason": self.reason,
            "code": self.code,
        }


@dataclass(slots=True)
class Problem(Exception):
    """A refusal the publisher can act on; raised anywhere, rendered once."""

    status: int
    slug: str
    title: str
    detail: str
    headers: dict[str, str] = field(default_factory=dict)
    errors: list[InvalidEvent] = field(default_factory=list)

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug

    def body(self) -> bytes:
        """The problem+json document."""
        body: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            body["errors"] = [e.as_dict() for e in self.errors]
        return orjson.dumps(body)


def malformed_json(detail: str) -> Problem:
    return Problem(400, "malformed-json", "Malformed JSON", detail)


def unsupported_media_type(got: str) -> Problem:
    return Problem(
        415,
        "unsupported-media-type",
        "Unsupported media type",
        f"Content-Type {got!r} is not accepted; send application/cloudevents+json "
        "(one event) or application/cloudevents-batch+json (a JSON array).",
    )


def body_too_large(limit: int) -> Problem:
    return Problem(413, "body-too-large", "Body too large", f"The body exceeds {limit} bytes.")


def body_too_slow(limit_s: float) -> Problem:
    return Problem(
        408,
        "body-too-slow",
        "Body too slow",
        f"No part of the body arrived for {limit_s:g} s; send the request again.",
    )


def batch_too_large(count: int, limit: int) -> Problem:
    return Problem(
        413,
        "batch-too-large",
        "Batch too large",
        f"The batch holds {count} events; at most {limit} are accepted per request.",
    )


def invalid_events(errors: list[InvalidEvent], total: int, invalid: int | None = None) -> Problem:
    """``errors``: every invalid event's, then (``invalid`` of them being invalid) the
    scope errors of the valid ones, so one answer lists all that must change."""
    bad = len({e.index for e in errors})
    invalid = bad if invalid is None else invalid
    detail = f"{invalid} of {total} events are invalid"
    if bad > invalid:
        detail += f" and {bad - invalid} more may not be published with this API key"
    return Problem(
        422,
        "invalid-events",
        "Invalid events",
        f"{detail}; nothing from this request was published.",
        errors=errors,
    )


def broker_unavailable(detail: str, retry_after_s: int = 5) -> Problem:
    return Problem(
        503,
        "broker-unavailable",
        "Broker unavailable",
        f"{detail} Some or all of this request's events may have been published already; "
        "retry the same events (same source and id): each is counted once.",
        headers={"Retry-After": str(retry_after_s)},
    )


def unauthorized(detail: str) -> Problem:
    return Problem(
        401,
        "unauthorized",
        "Missing or unknown API key",
        detail,
        headers={"WWW-Authenticate": 'Bearer realm="egov-pulse ingest"'},
    )


def out_of_scope(errors: list[InvalidEvent], total: int) -> Problem:
    indexes = sorted({e.index for e in errors})
    return Problem(
        403,
        "out-of-scope",
        "Events outside the key's scope",
        f"Events {indexes} of {total} are for units or event types this API key may not "
        "publish; nothing from this request was published.",
        errors=errors,
    )


def rate_limited(retry_after: str) -> Problem:
    return Problem(
        429,
        "rate-limited",
        "Rate limit exceeded",
        "This API key sent more events than its rate allows (a request costs one per "
        "event); nothing from this request was published. Retry after the delay.",
        headers={"Retry-After": retry_after},
    )


def auth_rate_limited(retry_after: str) -> Problem:
    return Problem(
        429,
        "rate-limited",
        "Rate limit exceeded",
        "Too many requests from this address with an unknown or invalid API key; "
        "nothing from this request was published. Retry after the delay.",
        headers={"Retry-After": retry_after},
    )


def key_store_unavailable(retry_after_s: int = 5) -> Problem:
    return Problem(
        503,
        "key-store-unavailable",
        "Key store unavailable",
        "The API key could not be checked because the database did not answer; "
        "nothing from this request was published. Retry the same events.",
        headers={"Retry-After": str(retry_after_s)},
    )


def overloaded(retry_after_s: int = 5) -> Problem:
    """Ingest holds as many request bodies as it may (``EGOV_MAX_INFLIGHT_BYTES``): the
    contract's 503, since the cause is a broker slower than the publishers (review 82)."""
    return Problem(
        503,
        "broker-unavailable",
        "Broker unavailable",
        "Ingest holds as many requests awaiting the broker as it may; nothing from this "
        "request was published. Retry the same events after the delay.",
        headers={"Retry-After": str(retry_after_s)},
    )


def shutting_down(retry_after_s: int = 1) -> Problem:
    return Problem(
        503,
        "shutting-down",
        "Shutting down",
        "Ingest stopped before it could answer this request. If its body was still being "
        "read nothing was published; retry the same events (same source and id): each is "
        "counted once.",
        headers={"Retry-After": str(retry_after_s)},
    )
