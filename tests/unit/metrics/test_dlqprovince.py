"""The province label of a dead letter (services/metrics/dlqprovince.py, review 81)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from prometheus_client import CollectorRegistry

from services.metrics.dlqprovince import LOOKED_INTO_BYTES, UNKNOWN, DeadLetterProvinces
from services.metrics.exposition import PipelineMetrics
from tests.unit.metrics.helpers import as_bytes, decoder, document

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
BEFORE_REFORM = datetime(2025, 3, 3, 3, 0, tzinfo=UTC)


def province(key: bytes | None, value: bytes | None) -> str:
    return DeadLetterProvinces(decoder()).of(key, value, NOW)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (b"19", "19"),  # Thái Nguyên, today
        (b"06", "06"),  # Bắc Kạn, a province before the 2025 reform (history keyed by it)
        (b"38", "38"),
    ],
)
def test_a_key_the_registry_knows_as_a_province_is_the_label(key: bytes, expected: str) -> None:
    assert province(key, b"{not json") == expected


@pytest.mark.parametrize("key", [None, b"", b"01843", b"99", b"ev-123", b"\xff\xfe", b"1" * 2000])
def test_any_other_key_falls_back_to_the_events_unit(key: bytes | None) -> None:
    assert province(key, as_bytes(document("01843", NOW))) == "19"


def test_the_unit_resolves_at_the_events_time() -> None:
    # 01843 was Phường Phùng Chí Kiên of Bắc Kạn (06) before the reform.
    assert province(None, as_bytes(document("01843", BEFORE_REFORM))) == "06"


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"{not json",
        b"[]",
        b'"text"',
        as_bytes(document("01843", NOW), document("01843", NOW, "e2")),  # a batch
        orjson.dumps({"unit": 1843}),
        orjson.dumps({"unit": "99999"}),  # unit-unknown
        orjson.dumps({"unit": "01843", "time": "yesterday"}),  # unreadable time: the clock's
        b'{"unit": "01843", "pad": "' + b"x" * LOOKED_INTO_BYTES + b'"}',
    ],
)
def test_a_dead_letter_that_says_no_province_is_unknown(value: bytes | None) -> None:
    expected = "19" if value == orjson.dumps({"unit": "01843", "time": "yesterday"}) else UNKNOWN
    assert province(b"not-a-province", value) == expected


def test_the_counter_says_so_in_its_help() -> None:
    registry = CollectorRegistry()
    PipelineMetrics(registry).dead_lettered.labels("egov.documents", "schema-violation", "").inc()
    family = next(m for m in registry.collect() if m.name == "egov_events_dead_lettered")
    assert "province" in family.documentation and "unknown" in family.documentation
    value = registry.get_sample_value(
        "egov_events_dead_lettered_total",
        {"topic": "egov.documents", "reason": "schema-violation", "province": ""},
    )
    assert value == 1
