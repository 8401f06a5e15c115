"""The fast paths keep the rules: per-era scope in one batch, body limits, the route split."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.common.contract import Contract
from services.common.units import UnitRegistry
from services.ingest.asgi import Disconnected, Message, Scope, Submission, route_events_first
from services.ingest.keys import ApiKey, scope_violations
from services.ingest.problems import Problem
from services.ingest.validation import EventValidator, Limits

CONTRACT = Contract.load()
REGISTRY = UnitRegistry.from_dir()
NONG_CONG_DISTRICT, NONG_CONG_TOWN = "404", "16279"  # the town's code outlived its district


def event(unit: str, at: datetime) -> dict[str, Any]:
    example = copy.deepcopy(CONTRACT.examples("vn.egov.document.issued", "valid")[0][1])
    example.update(id=str(uuid.uuid4()), unit=unit, time=at.isoformat())
    return example


def test_scope_is_decided_per_era_within_one_batch() -> None:
    # One batch, one unit code, both sides of the reform: the pre-reform district key
    # covers the 2024 event and not the 2025 one, whichever comes first.
    before, after = datetime(2025, 6, 20, 9, tzinfo=UTC), datetime(2025, 8, 1, 9, tzinfo=UTC)
    validator = EventValidator(CONTRACT, REGISTRY, Limits(timedelta(minutes=5), None))
    key = ApiKey(
        "0123456789ab",
        "district",
        frozenset({NONG_CONG_DISTRICT}),
        CONTRACT.event_types,
        b"",
        sources=("https:",),
    )
    batch = [event(NONG_CONG_TOWN, before), event(NONG_CONG_TOWN, after)]
    for events, denied_index in ((batch, 1), (batch[::-1], 0)):
        records, errors = validator.check(events, datetime(2025, 8, 2, tzinfo=UTC))
        assert errors == []
        denied = scope_violations(key, records, REGISTRY)
        assert [(e.index, e.code) for e in denied] == [(denied_index, "unit-out-of-scope")]


def receiving(*messages: Message) -> Any:
    queue = list(messages)

    async def receive() -> Message:
        return queue.pop(0)

    return receive


async def test_a_chunked_body_over_the_limit_is_413_without_content_length() -> None:
    chunks = [{"type": "http.request", "body": b"x" * 600, "more_body": True}] * 2
    submission = Submission(None, "", None, receiving(*chunks))
    with pytest.raises(Problem) as refused:
        await submission.read(1000, 5.0)
    assert (refused.value.status, refused.value.slug) == (413, "body-too-large")


async def test_a_declared_length_over_the_limit_is_413_before_reading() -> None:
    submission = Submission(None, "", "1001", receiving())  # nothing to receive: not read
    with pytest.raises(Problem) as refused:
        await submission.read(1000, 5.0)
    assert refused.value.status == 413


async def test_a_body_in_chunks_is_read_whole_and_a_disconnect_is_no_body() -> None:
    parts = [
        {"type": "http.request", "body": b'{"a":', "more_body": True},
        {"type": "http.request", "body": b"1}", "more_body": False},
    ]
    assert await Submission(None, "", None, receiving(*parts)).read(1000, 5.0) == b'{"a":1}'
    gone = Submission(None, "", None, receiving(parts[0], {"type": "http.disconnect"}))
    with pytest.raises(Disconnected):
        await gone.read(1000, 5.0)


def test_headers_are_taken_first_come_from_the_asgi_scope() -> None:
    scope: Scope = {
        "headers": [
            (b"content-type", b"application/cloudevents+json"),
            (b"authorization", b"Bearer first"),
            (b"authorization", b"Bearer second"),
            (b"x-other", b"ignored"),
        ]
    }
    submission = Submission.from_scope(scope, receiving())
    assert submission.authorization == "Bearer first"
    assert submission.content_type == "application/cloudevents+json"
    assert submission.content_length is None


@pytest.mark.parametrize(
    ("kind", "method", "path", "expected"),
    [
        ("http", "POST", "/v1/events", "events"),
        ("http", "GET", "/v1/events", "rest"),  # Starlette answers 405
        ("http", "POST", "/v1/events/", "rest"),
        ("http", "GET", "/metrics", "rest"),
        ("lifespan", None, None, "rest"),
    ],
)
async def test_only_post_v1_events_takes_the_short_route(
    kind: str, method: str | None, path: str | None, expected: str
) -> None:
    reached: list[str] = []

    def app(name: str) -> Any:
        async def called(scope: Scope, receive: Any, send: Any) -> None:
            reached.append(name)

        return called

    scope: Scope = {"type": kind}
    if method is not None:
        scope.update(method=method, path=path)
    await route_events_first(app("events"), app("rest"))(scope, receiving(), receiving())
    assert reached == [expected]
