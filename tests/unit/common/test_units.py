"""The dated unit registry: eras, reused codes, the crosswalk, scopes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.common.units import (
    REFORM_DATE,
    AmbiguousUnit,
    CrosswalkLink,
    Resolution,
    Unit,
    UnitError,
    UnitRegistry,
    UnknownUnit,
    era_at,
)

VN = timezone(timedelta(hours=7))
BEFORE = datetime(2024, 11, 29, 9, 0, tzinfo=VN)
AFTER = datetime(2026, 3, 1, 9, 0, tzinfo=VN)


@pytest.fixture(scope="module")
def registry() -> UnitRegistry:
    return UnitRegistry.from_dir()


# ------------------------------------------------------------------ eras


def test_era_before_local_midnight() -> None:
    assert era_at(datetime(2025, 6, 30, 23, 30, tzinfo=VN)) == "2024"


def test_era_after_local_midnight() -> None:
    assert era_at(datetime(2025, 7, 1, 0, 30, tzinfo=VN)) == "2025"


def test_era_utc_trap() -> None:
    # 2025-06-30T17:30Z is 00:30 on 1 July in Vietnam: already the new hierarchy.
    assert era_at(datetime(2025, 6, 30, 17, 30, tzinfo=UTC)) == "2025"
    assert era_at(datetime(2025, 6, 30, 16, 59, tzinfo=UTC)) == "2024"


def test_era_refuses_naive() -> None:
    with pytest.raises(ValueError, match="naive"):
        era_at(datetime(2025, 7, 1, 12, 0))


def test_reform_date() -> None:
    assert REFORM_DATE.isoformat() == "2025-07-01"


# ------------------------------------------------------------------ counts


def _count(registry: UnitRegistry, era: str, level: str) -> int:
    return sum(1 for u in registry.units(era) if u.level == level)  # type: ignore[arg-type]


def test_counts_2024(registry: UnitRegistry) -> None:
    assert _count(registry, "2024", "province") == 63
    assert _count(registry, "2024", "district") == 696
    assert _count(registry, "2024", "commune") == 10035


def test_counts_2025(registry: UnitRegistry) -> None:
    assert _count(registry, "2025", "province") == 34
    assert _count(registry, "2025", "commune") == 3321
    assert _count(registry, "2025", "district") == 0


# ------------------------------------------------------------------ resolution


def test_reused_code_before_reform(registry: UnitRegistry) -> None:
    res = registry.resolve("16342", BEFORE)
    assert res.unit.full_name == "Xã Thăng Long"
    assert [u.code for u in res.chain] == ["16342", "404", "38"]
    assert res.chain[1].name == "Nông Cống"
    assert res.province.code == "38"
    assert not res.via_crosswalk


def test_reused_code_after_reform(registry: UnitRegistry) -> None:
    res = registry.resolve("16342", AFTER)
    assert res.unit.full_name == "Xã Thăng Bình"
    assert [u.code for u in res.chain] == ["16342", "38"]
    assert res.unit.era == "2025"
    assert not res.via_crosswalk


def test_old_thang_binh_after_reform_goes_to_new_one(registry: UnitRegistry) -> None:
    res = registry.resolve("16351", AFTER)
    assert res.unit.code == "16342"
    assert res.via_crosswalk


def _code_of(registry: UnitRegistry, full_name: str, district: str) -> str:
    (unit,) = [u for u in registry.children(district, "2024") if u.full_name == full_name]
    return unit.code


def test_song_cau_via_crosswalk(registry: UnitRegistry) -> None:
    old = registry.resolve(_song_cau(registry), BEFORE)
    assert old.province.code == "06"
    res = registry.resolve(old.unit.code, AFTER)
    assert res.via_crosswalk
    assert res.original_code == old.unit.code
    assert (res.unit.code, res.unit.full_name) == ("01843", "Phường Bắc Kạn")
    assert res.province.code == "19"
    assert [u.code for u in res.chain] == ["01843", "19"]


def _song_cau(registry: UnitRegistry) -> str:
    (bac_kan_city,) = [u for u in registry.children("06", "2024") if u.name == "Bắc Kạn"]
    return _code_of(registry, "Phường Sông Cầu", bac_kan_city.code)


def test_duc_van_via_crosswalk(registry: UnitRegistry) -> None:
    (ngan_son,) = [u for u in registry.children("06", "2024") if u.name == "Ngân Sơn"]
    code = _code_of(registry, "Xã Đức Vân", ngan_son.code)
    res = registry.resolve(code, AFTER)
    assert (res.unit.code, res.province.code, res.via_crosswalk) == ("01954", "19", True)


def test_province_crosswalk(registry: UnitRegistry) -> None:
    assert registry.resolve("06", AFTER).unit.code == "19"
    assert registry.resolve("67", AFTER).unit.code == "68"
    assert registry.resolve("06", BEFORE).unit.name == "Bắc Kạn"
    thanh_hoa = registry.resolve("38", AFTER)
    assert (thanh_hoa.unit.code, thanh_hoa.via_crosswalk) == ("38", False)


def test_district_after_reform_refused(registry: UnitRegistry) -> None:
    assert registry.resolve("404", BEFORE).unit.full_name == "Huyện Nông Cống"
    with pytest.raises(UnknownUnit, match="district") as info:
        registry.resolve("404", AFTER)
    assert info.value.code == "404"
    assert "abolished" in info.value.reason


def test_split_commune_is_ambiguous(registry: UnitRegistry) -> None:
    split = _split_commune(registry)
    with pytest.raises(AmbiguousUnit) as info:
        registry.resolve(split, AFTER)
    assert len(info.value.candidates) > 1
    assert all(registry.get(c, "2025").level == "commune" for c in info.value.candidates)
    assert isinstance(info.value, UnitError)
    assert registry.resolve(split, BEFORE).unit.code == split


def _split_commune(registry: UnitRegistry) -> str:
    for unit in registry.units("2024"):
        if unit.level != "commune":
            continue
        try:
            registry.resolve(unit.code, AFTER)
        except AmbiguousUnit as exc:
            if len(exc.candidates) > 1:
                return unit.code
        except UnknownUnit:
            continue
    raise AssertionError("no split commune in the data")


def test_unknown_code(registry: UnitRegistry) -> None:
    for at in (BEFORE, AFTER):
        with pytest.raises(UnknownUnit):
            registry.resolve("99999", at)


def test_errors_are_fresh_each_time(registry: UnitRegistry) -> None:
    errors = []
    for _ in range(2):
        with pytest.raises(UnknownUnit) as info:
            registry.resolve("404", AFTER)
        errors.append(info.value)
    assert errors[0] is not errors[1]


def test_resolution_is_cached(registry: UnitRegistry) -> None:
    assert registry.resolve("01843", AFTER) is registry.resolve("01843", AFTER)


# ------------------------------------------------------------------ departments


def test_department_2025(registry: UnitRegistry) -> None:
    res = registry.resolve("19-STTTT", AFTER)
    assert res.unit.level == "department"
    assert res.unit.full_name == "Sở Thông tin và Truyền thông tỉnh Thái Nguyên"
    assert [u.code for u in res.chain] == ["19-STTTT", "19"]


def test_department_2024_belongs_to_old_province(registry: UnitRegistry) -> None:
    # a surviving province's department: its own, under the old (smaller) Thái Nguyên
    res = registry.resolve("19-STTTT", BEFORE)
    assert res.province.era == "2024"
    assert res.province.code == "19"
    assert [u.code for u in res.chain] == ["19-STTTT", "19"]
    assert not res.via_crosswalk
    after = registry.resolve("19-STTTT", AFTER)
    assert [u.code for u in after.chain] == ["19-STTTT", "19"] and not after.via_crosswalk


@pytest.mark.parametrize(
    ("code", "province", "name"),
    [
        ("06-STTTT", "06", "Sở Thông tin và Truyền thông tỉnh Bắc Kạn"),
        ("67-SNV", "67", "Sở Nội vụ tỉnh Đắk Nông"),
    ],
)
def test_department_of_a_dissolved_province_exists_before_the_reform(
    registry: UnitRegistry, code: str, province: str, name: str
) -> None:
    res = registry.resolve(code, BEFORE)
    assert (res.unit.level, res.unit.era, res.unit.full_name) == ("department", "2024", name)
    assert [u.code for u in res.chain] == [code, province]
    assert not res.via_crosswalk
    assert code in {u.code for u in registry.children(province, "2024")}
    assert registry.is_within(code, province, BEFORE)


@pytest.mark.parametrize(("code", "successor"), [("06-STTTT", "19-STTTT"), ("67-SNV", "68-SNV")])
def test_department_of_a_dissolved_province_is_crosswalked_after_the_reform(
    registry: UnitRegistry, code: str, successor: str
) -> None:
    res = registry.resolve(code, AFTER)
    assert res.via_crosswalk and res.original_code == code
    assert res.unit is registry.get(successor, "2025")
    assert [u.code for u in res.chain] == [successor, successor.split("-")[0]]
    assert registry.is_within(code, successor.split("-")[0], AFTER)
    with pytest.raises(KeyError):
        registry.get(code, "2025")


def test_department_2024_is_named_after_the_province_of_its_era(registry: UnitRegistry) -> None:
    # code 80 was Long An until 2025-06-30 and is Tây Ninh since: a reused code means
    # today's department after the reform, and the old Tây Ninh's (72) goes there.
    assert registry.get("80-STTTT", "2024").full_name.endswith("tỉnh Long An")
    assert registry.get("80-STTTT", "2025").full_name.endswith("tỉnh Tây Ninh")
    assert not registry.resolve("80-STTTT", AFTER).via_crosswalk
    assert registry.resolve("72-STTTT", AFTER).unit.code == "80-STTTT"


def test_every_old_province_has_the_standard_departments(registry: UnitRegistry) -> None:
    for era, provinces in (("2024", 63), ("2025", 34)):
        departments = [u for u in registry.units(era) if u.level == "department"]
        assert len(departments) == provinces * 12
        for unit in departments:
            assert registry.get(unit.parent or "", era).level == "province"
            assert unit.code.startswith(f"{unit.parent}-")
    # every 2024-era department has exactly one successor after the reform
    for unit in registry.units("2024"):
        if unit.level == "department":
            assert registry.resolve(unit.code, AFTER).unit.level == "department"


def test_retired_department_without_a_successor_department_is_unknown() -> None:
    units = [
        _unit("01", "province", None, "2024"),
        _unit("02", "province", None, "2024"),
        _unit("01-SNV", "department", "01", "2024"),
        _unit("02-SNV", "department", "02", "2024"),
        _unit("02-SYT", "department", "02", "2024"),
        _unit("01", "province", None, "2025"),
        _unit("01-SNV", "department", "01", "2025"),
    ]
    links = [
        CrosswalkLink("01", "province", "01", "unchanged"),
        CrosswalkLink("02", "province", "01", "merged"),
    ]
    registry = UnitRegistry(units, links)
    assert registry.resolve("02-SNV", AFTER).unit.code == "01-SNV"
    with pytest.raises(UnknownUnit):
        registry.resolve("02-SYT", AFTER)  # no department of that kind in 01


# ------------------------------------------------------------------ navigation


def test_get_and_children(registry: UnitRegistry) -> None:
    assert registry.get("404", "2024").name == "Nông Cống"
    with pytest.raises(KeyError):
        registry.get("404", "2025")
    nong_cong = registry.children("404", "2024")
    assert len(nong_cong) == 29
    assert "Thăng Long" in {u.name for u in nong_cong}
    assert all(u.level == "commune" for u in registry.children("19", "2025") if u.code.isdigit())


def test_is_within(registry: UnitRegistry) -> None:
    assert registry.is_within("16342", "404", BEFORE)
    assert registry.is_within("16342", "38", BEFORE)
    assert registry.is_within("16342", "38", AFTER)
    assert not registry.is_within("16342", "404", AFTER)
    assert registry.is_within("38", "38", AFTER)
    assert registry.is_within(_song_cau(registry), "19", AFTER)
    assert not registry.is_within(_song_cau(registry), "19", BEFORE)
    assert registry.is_within("19-SYT", "19", AFTER)
    assert not registry.is_within("404", "38", AFTER)
    assert not registry.is_within("99999", "38", AFTER)


def test_is_within_today_adds_only_the_predecessors_merged_whole(registry: UnitRegistry) -> None:
    """Review 59: before the reform, today's unit also holds what went whole into it."""
    song_cau = _song_cau(registry)
    assert registry.is_within_today(song_cau, "19", BEFORE)  # 06 merged into 19
    assert registry.is_within_today("06", "19", BEFORE)
    assert registry.is_within_today("05437", "05443", BEFORE)  # ward merged whole
    assert not registry.is_within_today("05461", "05443", BEFORE)  # only partly merged
    assert not registry.is_within_today("164", "05443", BEFORE)  # districts: no successor
    assert not registry.is_within_today("19", "06", BEFORE)  # never the other way round
    # After the reform it is is_within: the 2025 hierarchy already holds everything.
    assert not registry.is_within_today("16342", "404", AFTER)
    assert registry.is_within_today(song_cau, "19", AFTER)


# ------------------------------------------------------------------ synthetic registry


def _unit(code: str, level: str, parent: str | None, era: str) -> Unit:
    return Unit(code, level, code, code, code, code, parent, era)  # type: ignore[arg-type]


def test_partial_with_one_candidate_is_ambiguous() -> None:
    units = [
        _unit("01", "province", None, "2024"),
        _unit("001", "district", "01", "2024"),
        _unit("00001", "commune", "001", "2024"),
        _unit("01", "province", None, "2025"),
        _unit("00002", "commune", "01", "2025"),
    ]
    links = [CrosswalkLink("00001", "commune", "00002", "partial")]
    registry = UnitRegistry(units, links)
    with pytest.raises(AmbiguousUnit) as info:
        registry.resolve("00001", AFTER)
    assert info.value.candidates == ("00002",)


def test_resolution_province_property() -> None:
    prov = _unit("01", "province", None, "2025")
    res = Resolution(prov, (prov,), "01", via_crosswalk=False)
    assert res.province is prov
