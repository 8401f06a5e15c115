"""A key's scope across the 2025 reform (review 59): before 2025-07-01 a key of today's
unit also covers the former units the crosswalk says went whole into it (the units whose
days /v1/kpis/history restates on it), and nothing only partly merged. Real data."""

from __future__ import annotations

import copy
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from services.common.contract import Contract
from services.common.paths import UNITS_DIR
from services.common.units import VN_TZ, UnitRegistry
from services.ingest.keys import ApiKey, scope_violations
from services.ingest.validation import EventValidator, Limits
from services.metrics.eras import PREVIOUS_ERA, Crosswalk, Lineage

CONTRACT = Contract.load()
REGISTRY = UnitRegistry.from_dir()
CROSSWALK = Crosswalk.from_dir(UNITS_DIR)
BEFORE = datetime(2025, 5, 20, 9, tzinfo=VN_TZ)
AFTER = datetime(2025, 7, 2, 9, tzinfo=VN_TZ)
THAI_NGUYEN, BAC_KAN = "19", "06"
SONG_CAU = "01837"  # Phường Sông Cầu (Bắc Kạn, 2024) -> 01843 Phường Bắc Kạn, merged
PHAN_DINH_PHUNG, GIA_SANG, TRUNG_VUONG = "05443", "05461", "05437"
"""Today's Phường Phan Đình Phùng; Phường Gia Sàng, only partly merged into it; a ward
merged into it whole (05437 and 05443 were wards of thành phố Thái Nguyên, 164)."""


def key(*units: str) -> ApiKey:
    return ApiKey("0123456789ab", "portal", frozenset(units), CONTRACT.event_types, b"",
                  sources=("https:",))  # fmt: skip


def event(unit: str, at: datetime) -> dict[str, Any]:
    example = copy.deepcopy(CONTRACT.examples("vn.egov.document.issued", "valid")[0][1])
    example.update(id=str(uuid.uuid4()), unit=unit, time=at.isoformat())
    return example


def refused(scope: ApiKey, *events: dict[str, Any]) -> list[tuple[int, str]]:
    validator = EventValidator(CONTRACT, REGISTRY, Limits(timedelta(minutes=5), None))
    records, errors = validator.check(list(events), datetime(2025, 8, 2, tzinfo=VN_TZ))
    assert errors == []
    return [(e.index, e.code) for e in scope_violations(scope, records, REGISTRY)]


def test_a_province_key_backfills_the_province_merged_whole_into_it() -> None:
    batch = [event(SONG_CAU, BEFORE), event("05443", BEFORE), event(SONG_CAU, AFTER)]
    assert refused(key(THAI_NGUYEN), *batch) == []
    # A department of old Bắc Kạn went where its province went.
    assert key(THAI_NGUYEN).allows_unit(REGISTRY, "06-SNV", BEFORE)
    assert key("19-SNV").allows_unit(REGISTRY, "06-SNV", BEFORE)
    assert not key("19-SYT").allows_unit(REGISTRY, "06-SNV", BEFORE)


def test_a_partly_merged_predecessor_stays_out_of_scope_with_the_clear_error() -> None:
    ward = key(PHAN_DINH_PHUNG)
    assert ward.allows_unit(REGISTRY, TRUNG_VUONG, BEFORE)  # merged whole into 05443
    batch = [event(TRUNG_VUONG, BEFORE), event(GIA_SANG, BEFORE)]
    assert refused(ward, *batch) == [(1, "unit-out-of-scope")]
    validator = EventValidator(CONTRACT, REGISTRY, Limits(timedelta(minutes=5), None))
    records, _ = validator.check([event(GIA_SANG, BEFORE)], datetime(2025, 8, 2, tzinfo=VN_TZ))
    (error,) = scope_violations(ward, records, REGISTRY)
    assert error.pointer == "/unit" and f"unit {GIA_SANG} (its units: 05443)" in error.reason


def test_a_province_merger_does_not_widen_a_commune_key_to_the_old_province() -> None:
    # 01843 Phường Bắc Kạn holds Sông Cầu whole, not the rest of old Bắc Kạn.
    others = [
        u.code
        for u in REGISTRY.units("2024")
        if u.level == "commune" and REGISTRY.is_within(u.code, BAC_KAN, BEFORE)
        and not REGISTRY.is_within(u.code, "01843", AFTER)
    ]  # fmt: skip
    assert others
    commune = key("01843")
    assert commune.allows_unit(REGISTRY, SONG_CAU, BEFORE)
    assert not any(commune.allows_unit(REGISTRY, code, BEFORE) for code in others)
    assert not commune.allows_unit(REGISTRY, BAC_KAN, BEFORE)


def test_events_after_the_reform_are_judged_as_before_review_59() -> None:
    # An old code sent after the reform still means its successor, and only that.
    assert key(THAI_NGUYEN).allows_unit(REGISTRY, SONG_CAU, AFTER)  # -> 01843, in 19
    assert key("01843").allows_unit(REGISTRY, SONG_CAU, AFTER)
    assert not key("38").allows_unit(REGISTRY, SONG_CAU, AFTER)
    # A key of the dissolved province covers its own past and nothing of today's 19.
    old = key(BAC_KAN)
    assert old.allows_unit(REGISTRY, SONG_CAU, BEFORE)
    assert not old.allows_unit(REGISTRY, SONG_CAU, AFTER)
    assert not old.allows_unit(REGISTRY, "05443", BEFORE)
    # And today's province key gives nothing before the reform to another province.
    assert not key(THAI_NGUYEN).allows_unit(REGISTRY, "16342", BEFORE)


@pytest.mark.parametrize("unit", [THAI_NGUYEN, "38", PHAN_DINH_PHUNG, "01843", "19-SNV"])
def test_a_key_covers_exactly_what_history_restates_on_its_unit(unit: str) -> None:
    """The same notion as services/metrics/eras.py: every ``whole`` predecessor (and what
    lay under it) is covered; a ``left_out`` one only if it lay under the unit then."""
    lineage = Lineage.of(unit, REGISTRY, CROSSWALK)
    assert lineage is not None
    scope = key(unit)
    for code in lineage.whole:
        assert scope.allows_unit(REGISTRY, code, BEFORE), code
    for code in lineage.left_out:
        assert scope.allows_unit(REGISTRY, code, BEFORE) == REGISTRY.is_within(
            code, unit, BEFORE
        ), code


def test_no_province_key_covers_more_than_the_crosswalks_whole_mergers() -> None:
    """Every 2024-era unit a key of today's province covers before the reform lay then
    under that code, or it (or a unit above it then) went whole into a unit of that
    province by a crosswalk row: never a unit only partly merged into it from elsewhere."""
    provinces = [u.code for u in REGISTRY.units("2025") if u.level == "province"]
    successors: dict[str, list[tuple[str, str]]] = {}
    for new in (u.code for u in REGISTRY.units("2025")):
        for p in CROSSWALK.predecessors(new):
            successors.setdefault(p.code, []).append((new, p.match))
    checked = 0
    for unit in REGISTRY.units(PREVIOUS_ERA):
        chain = [u.code for u in REGISTRY.resolve(unit.code, BEFORE).chain]
        went_whole = {
            REGISTRY.resolve(new, AFTER).province.code
            for code in chain
            for new, match in successors.get(code, ())
            if match != "partial"
        }
        covered = {p for p in provinces if key(p).allows_unit(REGISTRY, unit.code, BEFORE)}
        expected = went_whole | {p for p in provinces if p in chain}
        assert covered == expected, unit.code
        checked += 1
    assert checked > 10_000
