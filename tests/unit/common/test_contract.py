"""Tests of the event contract: schema files, examples and the validator."""

import copy
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.contract import (
    EARLIEST_EVENT_EPOCH,
    EVENT_YEARS,
    LATEST_EVENT_EPOCH,
    UTC_OFFSETS,
    Contract,
    ContractError,
    Violation,
)
from services.common.events import CloudEvent
from services.common.paths import SCHEMAS_DIR

TYPES = (
    "vn.egov.document.issued",
    "vn.egov.dossier.received",
    "vn.egov.dossier.paid",
    "vn.egov.dossier.resolved",
    "vn.egov.dossier.resubmitted",
    "vn.egov.meeting.held",
    "vn.egov.rating.submitted",
)
CONTRACT = Contract.load()


def _cases(kind: str) -> list[Any]:
    return [
        pytest.param(event_type, path, body, id=f"{event_type}/{path.stem}")
        for event_type in TYPES
        for path, body in CONTRACT.examples(event_type, kind)  # type: ignore[arg-type]
    ]


def _valid_event(event_type: str = "vn.egov.document.issued") -> dict[str, Any]:
    return copy.deepcopy(CONTRACT.examples(event_type, "valid")[0][1])


def test_event_types_are_the_seven_of_the_contract() -> None:
    assert CONTRACT.event_types == frozenset(TYPES)


def test_families_come_from_the_schema_files() -> None:
    assert {t: CONTRACT.family(t) for t in TYPES} == {
        "vn.egov.document.issued": "documents",
        "vn.egov.dossier.received": "dossiers",
        "vn.egov.dossier.paid": "dossiers",
        "vn.egov.dossier.resolved": "dossiers",
        "vn.egov.dossier.resubmitted": "dossiers",
        "vn.egov.meeting.held": "meetings",
        "vn.egov.rating.submitted": "dossiers",
    }
    assert CONTRACT.families() == {"documents", "dossiers", "meetings"}


def test_family_of_unknown_type_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        CONTRACT.family("vn.egov.document.received")


def test_dataschema_uri_names_the_version() -> None:
    uri = "https://schemas.egov-pulse.vn/vn.egov.dossier.paid/v1.json"
    assert CONTRACT.dataschema_uri("vn.egov.dossier.paid") == uri
    assert CONTRACT.dataschema_uri("vn.egov.dossier.paid", 1) == uri
    with pytest.raises(KeyError):
        CONTRACT.dataschema_uri("vn.egov.dossier.paid", 2)


@pytest.mark.parametrize("event_type", TYPES)
def test_every_type_has_valid_and_invalid_examples(event_type: str) -> None:
    assert len(CONTRACT.examples(event_type, "valid")) >= 2
    assert len(CONTRACT.examples(event_type, "invalid")) >= 5


@pytest.mark.parametrize(("event_type", "path", "event"), _cases("valid"))
def test_valid_example_passes(event_type: str, path: Path, event: dict[str, Any]) -> None:
    assert event["type"] == event_type
    assert CONTRACT.validate(event) == []


@pytest.mark.parametrize(("event_type", "path", "case"), _cases("invalid"))
def test_invalid_example_fails_at_its_pointer(
    event_type: str, path: Path, case: dict[str, Any]
) -> None:
    expect = case["expect"]
    violations = CONTRACT.validate(case["event"])
    assert {v.pointer for v in violations} == {expect["pointer"]}, violations
    assert any(expect["reason_contains"] in v.reason for v in violations), violations


def test_invalid_examples_cover_the_envelope() -> None:
    pointers = {
        case["expect"]["pointer"]
        for event_type in TYPES
        for _, case in CONTRACT.examples(event_type, "invalid")
    }
    assert {"/time", "/specversion", "/type", "/unit", "/dataschema", "/id", "/data"} <= pointers


@pytest.mark.parametrize("value", [None, 1, 2.5, "event", [], [{"id": "1"}], True])
def test_non_object_is_one_violation_at_the_root(value: object) -> None:
    violations = CONTRACT.validate(value)
    assert len(violations) == 1
    assert violations[0].pointer == ""


def test_envelope_errors_hide_data_errors() -> None:
    event = _valid_event()
    del event["time"]
    event["data"]["signed"] = "yes"
    assert [v.pointer for v in CONTRACT.validate(event)] == ["/time"]


def test_required_field_reason_names_the_field() -> None:
    event = _valid_event()
    del event["data"]["signed"]
    assert CONTRACT.validate(event) == [
        Violation("/data/signed", '"signed" is a required property')
    ]


def test_type_error_reason_names_the_field() -> None:
    event = _valid_event()
    event["data"]["electronic"] = 1
    [violation] = CONTRACT.validate(event)
    assert violation.pointer == "/data/electronic"
    assert "electronic" in violation.reason


def test_each_unexpected_property_is_its_own_violation() -> None:
    event = _valid_event()
    event["data"] |= {"a/b": 1, "c~d": 2}
    pointers = sorted(v.pointer for v in CONTRACT.validate(event))
    assert pointers == ["/data/a~1b", "/data/c~0d"]


def test_dataschema_is_optional_and_means_current_version() -> None:
    event = _valid_event()
    del event["dataschema"]
    assert CONTRACT.validate(event) == []


@pytest.mark.parametrize(
    "time",
    [
        "2024-03-15T08:42:17+07:00",
        "2024-03-15T01:42:17Z",
        "2024-03-15t01:42:17z",
        "2024-03-15T01:42:17.123456789-05:30",
    ],
)
def test_rfc3339_times_with_offset_pass(time: str) -> None:
    assert CONTRACT.validate(_valid_event() | {"time": time}) == []


@pytest.mark.parametrize(
    "time",
    [
        "2024-03-15T08:42:17",
        "2024-03-15 08:42:17+07:00",
        "2024-03-15",
        "20240315T084217+0700",
        "2024-02-30T08:00:00+07:00",
        "2024-03-15T24:00:00Z",
        "2024-12-31T23:59:60Z",
        "2024-03-15T08:42:17+07:60",
        "0000-01-01T00:00:00Z",
        "２０２４-03-15T08:42:17Z",
    ],
)
def test_times_that_are_not_rfc3339_with_offset_fail(time: str) -> None:
    violations = CONTRACT.validate(_valid_event() | {"time": time})
    assert violations
    assert {v.pointer for v in violations} == {"/time"}


@pytest.mark.parametrize("unit", ["38", "404", "16342", "01843", "19-STTTT", "01-VPUBND"])
def test_unit_codes_of_every_level_pass(unit: str) -> None:
    assert CONTRACT.validate(_valid_event() | {"unit": unit}) == []


@pytest.mark.parametrize("unit", ["", "1", "4044", "163421", "19-", "19-sttt", "ab", "19-S"])
def test_malformed_unit_codes_fail(unit: str) -> None:
    assert [v.pointer for v in CONTRACT.validate(_valid_event() | {"unit": unit})] == ["/unit"]


def test_extension_attributes_are_allowed() -> None:
    event = _valid_event() | {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f0-01"}
    assert CONTRACT.validate(event) == []


def test_binary_data_is_rejected() -> None:
    event = _valid_event()
    event["data_base64"] = "e30="
    assert "/data_base64" in {v.pointer for v in CONTRACT.validate(event)}


def test_deep_nesting_is_a_violation_not_an_exception() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(2000):
        node["a"] = {}
        node = node["a"]
    violations = CONTRACT.validate(_valid_event() | {"data": deep})
    assert violations
    assert all(isinstance(v, Violation) for v in violations)


# Arbitrary JSON, then envelopes with one attribute replaced by arbitrary JSON.
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
ATTRIBUTES = (
    "specversion",
    "id",
    "source",
    "type",
    "time",
    "unit",
    "datacontenttype",
    "dataschema",
    "data",
)


def _assert_violations(result: object) -> None:
    assert isinstance(result, list)
    assert all(isinstance(v, Violation) for v in result)
    assert all(v.pointer == "" or v.pointer.startswith("/") for v in result)


@given(JSON)
def test_arbitrary_json_never_raises(value: object) -> None:
    _assert_violations(CONTRACT.validate(value))


def _mutated(event_type: str, attribute: str, value: object, data_field: str) -> dict[str, Any]:
    """A valid event of ``event_type`` with one attribute (or, with ``data_field``, one
    field of its data) replaced by ``value``."""
    event = _valid_event(event_type)
    if data_field:
        event["data"][data_field] = value
    else:
        event[attribute] = value
    return event


MUTATED = st.builds(
    _mutated,
    st.sampled_from(TYPES),
    st.sampled_from((*ATTRIBUTES, "unknown")),
    JSON,
    st.sampled_from(("", "document_id", "dossier_id", "due_at", "sites", "signed")),
)
"""Valid events with one attribute or data field replaced by arbitrary JSON."""


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(MUTATED)
def test_mutated_envelopes_never_raise(event: dict[str, Any]) -> None:
    result = CONTRACT.validate(event)
    _assert_violations(result)
    if result == []:
        # Whatever the contract accepts, the stream processors must be able to parse.
        parsed = CloudEvent.from_dict(event)
        assert parsed.time.utcoffset() is not None


@given(st.sampled_from(TYPES), st.sampled_from(ATTRIBUTES))
def test_removing_a_required_attribute_points_at_it(event_type: str, attribute: str) -> None:
    event = _valid_event(event_type)
    event.pop(attribute, None)
    violations = CONTRACT.validate(event)
    if attribute in ("datacontenttype", "dataschema"):
        assert violations == []
    else:
        assert violations == [Violation(f"/{attribute}", f'"{attribute}" is a required property')]


def _copy_schemas(tmp_path: Path) -> Path:
    target = tmp_path / "schemas"
    (target / "events").mkdir(parents=True)
    (target / "cloudevent.schema.json").write_bytes(
        (SCHEMAS_DIR / "cloudevent.schema.json").read_bytes()
    )
    for path in (SCHEMAS_DIR / "events").glob("*.json"):
        (target / "events" / path.name).write_bytes(path.read_bytes())
    return target


def _add_version_2(schemas: Path) -> None:
    source = schemas / "events" / "vn.egov.dossier.paid.v1.schema.json"
    schema = json.loads(source.read_text())
    schema["$id"] = "https://schemas.egov-pulse.vn/vn.egov.dossier.paid/v2.json"
    schema["x-egov-version"] = 2
    schema["required"].append("currency")
    schema["properties"]["currency"] = {"const": "VND"}
    (schemas / "events" / "vn.egov.dossier.paid.v2.schema.json").write_text(json.dumps(schema))


def test_old_versions_stay_accepted_and_the_newest_is_current(tmp_path: Path) -> None:
    schemas = _copy_schemas(tmp_path)
    _add_version_2(schemas)
    contract = Contract.load(schemas)
    v1 = _valid_event("vn.egov.dossier.paid")
    assert contract.validate(v1) == []
    assert contract.dataschema_uri("vn.egov.dossier.paid").endswith("/v2.json")
    implicit = {k: v for k, v in v1.items() if k != "dataschema"}
    assert [v.pointer for v in contract.validate(implicit)] == ["/data/currency"]


def test_schema_whose_id_disagrees_with_its_file_name_is_refused(tmp_path: Path) -> None:
    schemas = _copy_schemas(tmp_path)
    path = schemas / "events" / "vn.egov.meeting.held.v1.schema.json"
    schema = json.loads(path.read_text())
    schema["$id"] = "https://schemas.egov-pulse.vn/vn.egov.meeting.held/v2.json"
    path.write_text(json.dumps(schema))
    with pytest.raises(ContractError):
        Contract.load(schemas)


def test_schema_without_family_is_refused(tmp_path: Path) -> None:
    schemas = _copy_schemas(tmp_path)
    path = schemas / "events" / "vn.egov.meeting.held.v1.schema.json"
    schema = json.loads(path.read_text())
    del schema["x-egov-family"]
    path.write_text(json.dumps(schema))
    with pytest.raises(ContractError):
        Contract.load(schemas)


def test_every_schema_file_declares_draft_2020_12_and_the_keywords() -> None:
    for path in (SCHEMAS_DIR / "events").glob("*.schema.json"):
        schema = json.loads(path.read_text())
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["x-egov-family"] in {"documents", "dossiers", "meetings"}
        assert schema["additionalProperties"] is False


@pytest.mark.parametrize(
    ("time", "valid"),
    [
        ("2000-01-01T00:00:00+14:00", True),  # the earliest instant the contract accepts
        ("2100-12-31T23:59:59.999999-12:00", True),  # the latest
        ("2024-03-15T08:42:17+07:00", True),
        ("2024-03-15T01:42:17-00:00", True),
        ("1999-12-31T23:59:59Z", False),
        ("2101-01-01T00:00:00Z", False),
        ("0001-01-01T00:00:00+14:00", False),  # once crashed a worker on every restart
        ("9999-12-31T23:59:59Z", False),
        ("2024-03-15T08:42:17+14:01", False),
        ("2024-03-15T08:42:17+15:00", False),
        ("2024-03-15T08:42:17-12:01", False),
        ("2024-03-15T08:42:17-13:00", False),
    ],
)
def test_event_times_are_bounded_to_real_years_and_offsets(time: str, valid: bool) -> None:
    event = _valid_event()
    event["time"] = time
    violations = CONTRACT.validate(event)
    assert (violations == []) == valid, violations
    if not valid:  # the field, the value and the rule, not a regular expression
        reason = violations[0].reason
        assert violations[0].pointer == "/time"
        assert time in reason and "years 2000 to 2100" in reason and "-12:00 to +14:00" in reason


def test_the_named_bounds_are_the_schemas() -> None:
    """EVENT_YEARS and UTC_OFFSETS name the rule of cloudevent.schema.json; the epochs
    derived from them are the first and last instants a valid event can have."""
    event = _valid_event()
    first, last = EVENT_YEARS
    low, high = UTC_OFFSETS
    for text, ok in (
        (f"{first}-01-01T00:00:00{high}", True),
        (f"{first - 1}-12-31T23:59:59{high}", False),
        (f"{last}-12-31T23:59:59.999999{low}", True),
        (f"{last + 1}-01-01T00:00:00{low}", False),
    ):
        event["time"] = text
        assert (CONTRACT.validate(event) == []) == ok, text
    earliest = datetime.fromisoformat(f"{first}-01-01T00:00:00{high}")
    latest = datetime.fromisoformat(f"{last}-12-31T23:59:59.999999{low}")
    assert (EARLIEST_EVENT_EPOCH, LATEST_EVENT_EPOCH) == (earliest.timestamp(), latest.timestamp())
