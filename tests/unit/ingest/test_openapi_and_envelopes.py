"""The committed OpenAPI file is the generated one; malformed envelopes never crash validation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.contract import Contract
from services.common.units import UnitRegistry
from services.ingest.openapi import COMMITTED, render
from services.ingest.problems import Problem
from services.ingest.validation import BATCH, SINGLE, EventValidator, Limits, decode_body

CONTRACT = Contract.load()
VALIDATOR = EventValidator(
    CONTRACT, UnitRegistry.from_dir(), Limits(timedelta(minutes=5), timedelta(days=30))
)
NOW = datetime(2026, 1, 10, 12, tzinfo=UTC)


def test_committed_openapi_is_generated_from_schemas() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render(), (
        "regenerate: python -m services.ingest.openapi > services/ingest/openapi.json"
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
envelope_fields = st.fixed_dictionaries(
    {},
    optional={
        "specversion": st.sampled_from(["1.0", "0.3", 1]) | json_values,
        "id": st.text(max_size=5) | json_values,
        "source": st.sampled_from(["urn:egov:38:x", ""]) | json_values,
        "type": st.sampled_from(sorted(CONTRACT.event_types)) | json_values,
        "time": st.sampled_from(["2026-01-10T10:00:00+07:00", "2026-13-40T99:00:00Z", "now"])
        | json_values,
        "unit": st.sampled_from(["38", "14758", "404", "99999", ""]) | json_values,
        "dataschema": json_values,
        "data": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(events=st.lists(envelope_fields | json_values, min_size=1, max_size=5))
def test_malformed_envelopes_are_refused_never_crash(events: list[Any]) -> None:
    records, errors = VALIDATOR.check(events, NOW)
    refused = {e.index for e in errors}
    assert refused | {r.index for r in records} == set(range(len(events)))
    assert not refused & {r.index for r in records}
    assert all(e.pointer == "" or e.pointer.startswith("/") for e in errors)


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()),
    batch=st.booleans(),
)
def test_any_body_decodes_or_is_a_4xx_problem(body: bytes, batch: bool) -> None:
    try:
        events = decode_body(body, BATCH if batch else SINGLE, 1000)
    except Problem as problem:
        assert 400 <= problem.status < 500
        return
    VALIDATOR.check(events, NOW)
