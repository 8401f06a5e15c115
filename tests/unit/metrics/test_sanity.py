"""The sense check of a signed summary (services/metrics/sanity.py): what ingest makes
passes; what only a stolen key or a bug could make is named."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from services.common.summaries import SummaryReader
from services.metrics import sanity
from services.metrics.decoding import RecordDecoder
from tests.unit.metrics.helpers import catalogue, contract, registry
from tests.unit.metrics.test_summaries import communes_events, ingest_records

BOUNDS = sanity.SummaryBounds(
    {kpi.id: kpi.event_type for kpi in catalogue().kpis},
    frozenset(contract().event_types),
    RecordDecoder(contract(), registry()).knows_unit,
)


def summary_and_size() -> tuple[dict[str, Any], int]:
    (record,) = ingest_records(communes_events(4))
    raw = dict(record.headers)["egov_summary"]
    assert isinstance(raw, bytes)
    return orjson.loads(raw), len(record.value or b"")


def problem(change: Callable[[dict[str, Any]], Any] = lambda s: None, size: int = 0) -> str | None:
    summary, value_size = summary_and_size()
    change(summary)
    read = SummaryReader().read(orjson.dumps(summary))
    return sanity.problem(read, size or value_size, BOUNDS)


def test_what_ingest_makes_is_sound() -> None:
    assert problem() is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda s: s.update(u=["99999,99"] * len(s["u"])), "unknown units"),
        (lambda s: s.update(y=["vn.egov.document.forged"] * len(s["y"])), "unknown event types"),
        (lambda s: s.update(c=["document_signing:2:2"] * len(s["c"])), "counts 2/2"),
        (lambda s: s.update(c=["document_signing:1:0"] * len(s["c"])), "counts 1/0"),
        (lambda s: s.update(c=["no_such_kpi:0:1"] * len(s["c"])), "unknown KPI"),
    ],
)
def test_nonsense_is_named(change: Callable[[dict[str, Any]], Any], expected: str) -> None:
    found = problem(change)
    assert found is not None and expected in found


def test_more_events_than_the_record_can_hold() -> None:
    found = problem(size=4 * sanity.MIN_EVENT_BYTES - 1)
    assert found is not None and "4 events claimed" in found
    assert problem(size=4 * sanity.MIN_EVENT_BYTES) is None


def test_the_smallest_valid_event_is_larger_than_the_bound() -> None:
    """The bound never refuses a real record: no event the contract accepts is smaller."""
    smallest = {
        "specversion": "1.0",
        "id": "1",
        "source": "u:",
        "type": "vn.egov.meeting.held",
        "time": "2026-01-01T00:00:00Z",
        "unit": "01",
        "data": {},
    }
    assert len(orjson.dumps(smallest)) > sanity.MIN_EVENT_BYTES


def test_a_chain_is_looked_up_once_and_a_stranger_always() -> None:
    """Known chains are remembered (the registry does not change); unknown ones never."""
    asked: list[str] = []

    def knows(code: str) -> bool:
        asked.append(code)
        return code != "99999"

    bounds = sanity.SummaryBounds(BOUNDS.kpis, BOUNDS.types, knows)
    summary, size = summary_and_size()
    read = SummaryReader().read(orjson.dumps(summary))
    assert sanity.problem(read, size, bounds) is None
    first = len(asked)
    assert first > 0 and sanity.problem(read, size, bounds) is None
    assert len(asked) == first
    summary["u"] = ["99999,19"] * len(summary["u"])
    strange = SummaryReader().read(orjson.dumps(summary))
    for _ in range(2):
        found = sanity.problem(strange, size, bounds)
        assert found is not None and "unknown units" in found


def test_dossier_facts_that_are_not_one_per_dossier_event_are_named() -> None:
    from tests.unit.metrics.test_summaries import dossier_events

    (record,) = ingest_records(dossier_events())
    summary = orjson.loads(dict(record.headers)["egov_summary"])
    size = len(record.value or b"")
    assert sanity.problem(SummaryReader().read(orjson.dumps(summary)), size, BOUNDS) is None
    summary["f"]["d"][0] = ""
    found = sanity.problem(SummaryReader().read(orjson.dumps(summary)), size, BOUNDS)
    assert found is not None and "dossier" in found
    # Version 1 carried no facts: not a problem there.
    del summary["f"]
    v1 = SummaryReader().read(orjson.dumps(summary), version=1)
    assert sanity.problem(v1, size, BOUNDS, version=1) is None
