"""The peer comparison's plain KPI computation: dedup, today only, rolled up the hierarchy."""

from __future__ import annotations

from datetime import datetime, timedelta

from bench.peers.kpi import SigningKpi, differences, reference_figures
from services.common.units import VN_TZ

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=VN_TZ)
HAM_RONG, THANH_HOA = "14758", "38"


def doc(i: int, signed: bool = True, at: datetime = NOW, **data: object) -> dict[str, object]:
    return {
        "id": f"e{i}",
        "source": "https://tdoffice.thanhhoa.gov.vn/x",
        "type": "vn.egov.document.issued",
        "time": at.isoformat(),
        "unit": HAM_RONG,
        "data": {"document_id": str(i), "electronic": True, "signed": signed, **data},
    }


def test_duplicates_count_once_other_days_not_at_all_and_ancestors_too() -> None:
    events = [
        doc(1),
        doc(1),  # a re-send
        doc(2, signed=False),
        doc(3, at=NOW - timedelta(days=1)),  # yesterday
        doc(4, electronic=False),  # outside the denominator
    ]
    figures = reference_figures(events, SigningKpi(NOW.date()))
    assert figures[HAM_RONG] == [1, 2]
    assert figures[THANH_HOA] == [1, 2]


def test_differences_name_each_unit_that_disagrees() -> None:
    assert differences({"a": [1, 2]}, {"a": [1, 2]}) == []
    assert differences({"a": [1, 2]}, {"a": [1, 3], "b": [0, 1]}) == [
        "a: expected 1/2, got 1/3",
        "b: expected 0/0, got 0/1",
    ]
