"""``Contract.checked_time`` accepts exactly what ``Contract.validate`` accepts, with the
same reasons, and hands back the parsed time of a valid event (the worker's fast path,
services/metrics/decoding.py)."""

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from services.common.contract import Contract, ContractError, _untimed
from services.common.events import parse_time
from tests.unit.common.test_contract import JSON, MUTATED, _cases, _valid_event

CONTRACT = Contract.load()


def _agrees(event: object) -> None:
    """checked_time is validate, plus the time when valid."""
    violations = CONTRACT.validate(event)
    checked = CONTRACT.checked_time(event)
    if violations:
        assert checked == violations
    else:
        assert isinstance(event, dict)
        assert checked == parse_time(event["time"])


@pytest.mark.parametrize(("event_type", "path", "event"), _cases("valid") + _cases("invalid"))
def test_every_example_is_judged_as_validate_judges_it(
    event_type: str, path: object, event: dict[str, Any]
) -> None:
    _agrees(event)


@pytest.mark.parametrize(
    "time",
    [
        "2024-03-15T08:42:17+07:00",
        "2024-03-15t01:42:17z",
        "2024-03-15T01:42:17.123456789-05:30",
        "2024-03-15T08:42:17",
        "2024-02-30T08:00:00+07:00",
        "2024-03-15T24:00:00Z",
        "2024-12-31T23:59:60Z",
        "2024-03-15T08:42:17+07:60",
        "1999-12-31T23:59:59Z",
        "2101-01-01T00:00:00Z",
        "2024-03-15T08:42:17+14:01",
        "２０２４-03-15T08:42:17Z",
        "",
        17,
        None,
    ],
)
def test_times_are_judged_as_validate_judges_them(time: object) -> None:
    _agrees(_valid_event() | {"time": time})


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(MUTATED)
def test_mutated_events_are_judged_as_validate_judges_them(event: dict[str, Any]) -> None:
    _agrees(event)


@given(JSON)
def test_arbitrary_json_is_judged_as_validate_judges_it(value: object) -> None:
    _agrees(value)


def test_deep_nesting_is_a_violation_not_an_exception() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(2000):
        node["a"] = {}
        node = node["a"]
    _agrees(_valid_event() | {"data": deep})


def test_the_untimed_envelope_drops_only_the_format_of_time() -> None:
    envelope = {"properties": {"time": {"type": "string", "format": "date-time", "pattern": "x"}}}
    untimed = _untimed(envelope)
    assert untimed == {"properties": {"time": {"type": "string", "pattern": "x"}}}
    assert envelope["properties"]["time"]["format"] == "date-time"  # a copy
    with pytest.raises(ContractError):
        _untimed(copy.deepcopy(untimed))  # the fast path relies on that format
