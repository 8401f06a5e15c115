"""Review 61 (fixed 2026-12-05): a key's unit scope across the 2025 reform (e517824,
``is_within_today``), tried as a hostile or careless publisher would. Real data
(data/units/). Each test was a strict xfail:

- an island district without communes (Bạch Long Vĩ, Côn Đảo, ...) had no crosswalk row,
  so today's đặc khu key was refused every pre-reform event it backfilled; the district
  now has its own ``merged`` row (services/common/unitdata.py, migration 0021);
- the unit-out-of-scope reason gave the date in the event's own offset, not the Vietnam
  date the era was judged by.

Held: commune keys do not widen to neighbours, cached decisions never leak between keys,
the reform instant is judged in Vietnam time on every path.
"""

from __future__ import annotations

import copy
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from services.common.contract import Contract
from services.common.units import VN_TZ, UnitRegistry
from services.ingest.keys import ApiKey, scope_violations
from services.ingest.validation import EventValidator, Limits

CONTRACT = Contract.load()
REGISTRY = UnitRegistry.from_dir()
NOW = datetime(2025, 8, 2, tzinfo=VN_TZ)
BEFORE = "2025-05-20T09:00:00+07:00"


def key(*units: str) -> ApiKey:
    return ApiKey("0123456789ab", "portal", frozenset(units), CONTRACT.event_types, b"",
                  sources=("https:",))  # fmt: skip


def event(unit: str, time: str) -> dict[str, Any]:
    example = copy.deepcopy(CONTRACT.examples("vn.egov.document.issued", "valid")[0][1])
    example.update(id=str(uuid.uuid4()), unit=unit, time=time)
    return example


def refusals(scope: ApiKey, *events: dict[str, Any]) -> list[Any]:
    validator = EventValidator(CONTRACT, REGISTRY, Limits(timedelta(minutes=5), None))
    records, errors = validator.check(list(events), NOW)
    assert errors == []
    return scope_violations(scope, records, REGISTRY)


# The island districts that had no communes and became a đặc khu whole
# (data/units/crosswalk-report.md, "Whole districts named as predecessors").
ISLAND_DISTRICTS = [
    ("318", "11948"),  # Huyện Bạch Long Vĩ -> Đặc khu Bạch Long Vĩ
    ("471", "19742"),  # Huyện Cồn Cỏ -> Đặc khu Cồn Cỏ
    ("498", "20333"),  # Huyện Hoàng Sa -> Đặc khu Hoàng Sa
    ("536", "21548"),  # Huyện Lý Sơn -> Đặc khu Lý Sơn
    ("755", "26732"),  # Huyện Côn Đảo -> Đặc khu Côn Đảo
]


@pytest.mark.parametrize(("district", "dac_khu"), ISLAND_DISTRICTS)
def test_a_dac_khu_key_backfills_the_island_district_it_replaced(
    district: str, dac_khu: str
) -> None:
    former = REGISTRY.get(district, "2024")
    assert former.level == "district" and REGISTRY.children(district, "2024") == []
    assert REGISTRY.get(dac_khu, "2025").full_name.startswith("Đặc khu")
    # Its province's key of today covers it (the province went whole): the đặc khu's does not.
    province = REGISTRY.resolve(dac_khu, NOW).province.code
    assert refusals(key(province), event(district, BEFORE)) == []
    assert refusals(key(dac_khu), event(district, BEFORE)) == []


def test_a_refusal_at_the_reform_names_the_vietnam_date_it_was_judged_by() -> None:
    # 17:30Z is 00:30 on 2025-07-01 in Vietnam: after the reform, so the dissolved Bắc Kạn's
    # key no longer covers Phường Sông Cầu (01837, now in 01843 of Thái Nguyên).
    assert refusals(key("06"), event("01837", "2025-06-30T16:30:00Z")) == []
    (error,) = refusals(key("06"), event("01837", "2025-06-30T17:30:00Z"))
    assert error.code == "unit-out-of-scope"
    assert "2025-07-01" in error.reason and "2025-06-30" not in error.reason
