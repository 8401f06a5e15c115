"""``Contract.checked_time`` accepts exactly what ``Contract.validate`` accepts, with the
same reasons, and hands back the parsed time of a valid event (the worker's fast path,
services/metrics/decoding.py)."""

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from services.common.contract import NOT_RFC3339, Contract, ContractError, _untimed
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
        *NOT_RFC3339,
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


TIME = {
    "type": "string",
    "format": "date-time",
    "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?"
    "(Z|[+-][0-9]{2}:[0-9]{2})$",
}


def test_the_untimed_envelope_drops_only_the_format_of_time() -> None:
    envelope = {"properties": {"time": dict(TIME)}}
    untimed = _untimed(envelope)
    assert untimed == {"properties": {"time": {k: v for k, v in TIME.items() if k != "format"}}}
    assert envelope["properties"]["time"]["format"] == "date-time"  # a copy
    with pytest.raises(ContractError):
        _untimed(copy.deepcopy(untimed))  # the fast path relies on that format


@pytest.mark.parametrize(
    "pattern",
    [
        "^[0-9]{4}-[0-9]{2}-[0-9]{2}",  # unanchored at the end: the rest is anything
        "^[0-9T:.+Z-]+$",  # basic format, no offset, ...
        "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?(Z|[+-][0-9:]+)$",
        "^x$",  # refuses every time, valid ones too
    ],
)
def test_a_time_pattern_weaker_or_stricter_than_rfc3339_is_refused_at_load(pattern: str) -> None:
    """checked_time reads a time with fromisoformat alone once the untimed schema passed
    it: a pattern letting through what fromisoformat reads beyond RFC 3339 (a naive
    time, read in the server's zone; a basic format) would let such times count, so a
    contract with one does not load."""
    envelope = {"properties": {"time": TIME | {"pattern": pattern}}}
    with pytest.raises(ContractError, match="RFC 3339"):
        _untimed(envelope)


def test_the_contract_refuses_every_time_fromisoformat_reads_beyond_rfc3339() -> None:
    for text in NOT_RFC3339:
        checked = CONTRACT.checked_time(_valid_event() | {"time": text})
        assert isinstance(checked, list) and checked, text
        assert {v.pointer for v in checked} == {"/time"}, text
