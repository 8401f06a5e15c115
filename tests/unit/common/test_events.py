"""Tests of the parsed CloudEvent and RFC 3339 time parsing."""

import dataclasses
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.contract import Contract
from services.common.events import CloudEvent, format_time, parse_time

CONTRACT = Contract.load()
ICT = timezone(timedelta(hours=7))
VALID = [
    pytest.param(event, id=f"{event_type}/{path.stem}")
    for event_type in sorted(CONTRACT.event_types)
    for path, event in CONTRACT.examples(event_type, "valid")
]


def _event(**changes: Any) -> CloudEvent:
    base = CloudEvent(
        id="9b1f6c2e",
        source="https://tdoffice.thanhhoa.gov.vn/nongcong",
        type="vn.egov.document.issued",
        time=datetime(2023, 11, 29, 9, 15, 42, tzinfo=ICT),
        unit="404",
        data={"document_id": "VB-1", "electronic": True, "signed": True},
    )
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-11-29T09:15:42+07:00", datetime(2023, 11, 29, 9, 15, 42, tzinfo=ICT)),
        ("2023-11-29T02:15:42Z", datetime(2023, 11, 29, 2, 15, 42, tzinfo=UTC)),
        ("2023-11-29t02:15:42z", datetime(2023, 11, 29, 2, 15, 42, tzinfo=UTC)),
        ("2023-11-29T09:15:42.5+07:00", datetime(2023, 11, 29, 9, 15, 42, 500000, tzinfo=ICT)),
        (
            "2023-11-29T09:15:42.123456789+07:00",
            datetime(2023, 11, 29, 9, 15, 42, 123456, tzinfo=ICT),
        ),
        (
            "2023-11-29T09:15:42-03:30",
            datetime(2023, 11, 29, 9, 15, 42, tzinfo=timezone(-timedelta(hours=3, minutes=30))),
        ),
    ],
)
def test_parse_time_accepts_rfc3339_with_offset(text: str, expected: datetime) -> None:
    parsed = parse_time(text)
    assert parsed == expected
    assert parsed.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    "text",
    [
        "2023-11-29T09:15:42",
        "2023-11-29",
        "2023-11-29 09:15:42+07:00",
        "2023-11-29T09:15+07:00",
        "20231129T091542Z",
        "2023-W48-3T09:15:42Z",
        "2023-11-29T09:15:42+0700",
        "2023-11-29T09:15:42+24:00",
        "2023-02-29T09:15:42Z",
        "2023-12-31T23:59:60Z",
        "2023-11-29T09:15:42.Z",
        " 2023-11-29T09:15:42Z",
        "2023-11-29T09:15:42Z\n",
        "",
    ],
)
def test_parse_time_rejects_everything_else(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


def test_format_time_keeps_the_offset_and_writes_z_for_utc() -> None:
    assert format_time(datetime(2024, 1, 1, 7, tzinfo=ICT)) == "2024-01-01T07:00:00+07:00"
    assert format_time(datetime(2024, 1, 1, 0, tzinfo=UTC)) == "2024-01-01T00:00:00Z"


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        timezones=st.sampled_from([UTC, ICT, timezone(-timedelta(hours=9, minutes=30))]),
    )
)
def test_format_then_parse_is_identity(value: datetime) -> None:
    parsed = parse_time(format_time(value))
    assert parsed == value
    assert parsed.utcoffset() == value.utcoffset()


@pytest.mark.parametrize("envelope", VALID)
def test_from_dict_reads_every_valid_example(envelope: dict[str, Any]) -> None:
    event = CloudEvent.from_dict(envelope)
    assert event.id == envelope["id"]
    assert event.time == parse_time(envelope["time"])
    assert event.dataschema == envelope.get("dataschema")
    assert event.data == envelope["data"]


@pytest.mark.parametrize("envelope", VALID)
def test_to_dict_round_trips_and_stays_valid(envelope: dict[str, Any]) -> None:
    event = CloudEvent.from_dict(envelope)
    again = event.to_dict()
    assert CONTRACT.validate(again) == []
    assert CloudEvent.from_dict(again) == event
    known = {k: v for k, v in envelope.items() if k not in ("time", "traceparent")}
    assert {k: v for k, v in again.items() if k != "time"} == known | {
        "datacontenttype": "application/json"
    }


@pytest.mark.parametrize("envelope", VALID)
def test_to_dict_serialises_with_orjson(envelope: dict[str, Any]) -> None:
    event = CloudEvent.from_dict(envelope)
    assert CloudEvent.from_dict(orjson.loads(orjson.dumps(event.to_dict()))) == event


def test_to_dict_omits_absent_dataschema() -> None:
    assert "dataschema" not in _event().to_dict()
    uri = "https://schemas.egov-pulse.vn/vn.egov.document.issued/v1.json"
    assert _event(dataschema=uri).to_dict()["dataschema"] == uri


def test_from_dict_copies_data() -> None:
    envelope = _event().to_dict()
    event = CloudEvent.from_dict(envelope)
    envelope["data"]["signed"] = False
    assert event.data["signed"] is True


def test_dedup_key_is_source_and_id() -> None:
    assert _event().dedup_key == ("https://tdoffice.thanhhoa.gov.vn/nongcong", "9b1f6c2e")
    later = _event(time=datetime(2024, 1, 1, tzinfo=UTC))
    assert later.dedup_key == _event().dedup_key


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        _event(time=datetime(2023, 11, 29, 9, 15, 42))


def test_a_time_without_offset_is_refused_whatever_its_tzinfo() -> None:
    class Floating(tzinfo):  # a tzinfo that knows no offset: the time is still naive
        def utcoffset(self, dt: datetime | None) -> None:
            return None

    with pytest.raises(ValueError, match="timezone-aware"):
        CloudEvent("i", "s", "t", datetime(2025, 7, 1, tzinfo=Floating()), "u", {})
    with pytest.raises(ValueError, match="timezone-aware"):
        CloudEvent("i", "s", "t", datetime(2025, 7, 1), "u", {})


@given(
    st.text(min_size=1, max_size=20),
    st.text(min_size=1, max_size=20),
    st.datetimes(min_value=datetime(1, 1, 2), timezones=st.sampled_from([UTC, ICT])),
    st.dictionaries(st.text(max_size=8), st.integers() | st.booleans() | st.text(), max_size=4),
)
def test_round_trip_of_arbitrary_events(
    source: str, id_: str, time: datetime, data: dict[str, Any]
) -> None:
    event = _event(source=source, id=id_, time=time, data=data)
    assert CloudEvent.from_dict(event.to_dict()) == event
