"""The unit data build: reproducible from the shared dataset, and its name matching."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.paths import REPO_ROOT, UNITS_DIR
from services.common.unitdata import build
from services.common.unitnames import name_key, parse_mentions

SOURCE = REPO_ROOT.parent / "shared" / "data" / "vn-units"
FILES = (
    "units-2024.csv",
    "units-2025.csv",
    "crosswalk-2025.csv",
    "crosswalk-report.md",
    "departments.csv",
    "README.md",
    "LICENSE",
)


@pytest.mark.skipif(not SOURCE.is_dir(), reason=f"shared dataset absent: {SOURCE}")
def test_build_is_byte_identical_to_committed(tmp_path: Path) -> None:
    report = build(SOURCE, tmp_path)
    assert set(report.files) == set(FILES)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (UNITS_DIR / name).read_bytes(), name


@pytest.mark.skipif(not SOURCE.is_dir(), reason=f"shared dataset absent: {SOURCE}")
def test_build_counts(tmp_path: Path) -> None:
    report = build(SOURCE, tmp_path)
    assert report.units_2024 == {"province": 63, "district": 696, "commune": 10035}
    assert report.units_2025 == {"province": 34, "commune": 3321}
    assert report.departments == {"2024": 63 * 12, "2025": 34 * 12}
    provinces = report.crosswalk["province:merged"] + report.crosswalk["province:unchanged"]
    assert provinces == 63


def test_committed_files_are_compact() -> None:
    assert sum((UNITS_DIR / name).stat().st_size for name in FILES) < 3_000_000


def test_name_key_normalises_tone_placement_and_case() -> None:
    assert name_key("Hoà Bình") == name_key("hòa bình")
    assert name_key("Thuỵ Hương") == name_key("Thụy Hương")
    assert name_key("Phường 01") == name_key("phường 1")
    assert name_key("Bà Rịa - Vũng Tàu") == name_key("Bà Rịa Vũng Tàu")
    assert name_key("Tân Hà") != name_key("Tân Hạ")


def test_parse_mentions_brackets_and_partial() -> None:
    text = (
        "Xã Tả Lủng (huyện Đồng Văn), Thị trấn Phố Bảng và một phần diện tích TN, "
        "quy mô dân số của các phường Phường Kim Mã (phần còn lại sau khi sáp nhập vào "
        "phường Ba Đình, phường Ngọc Hà)"
    )
    first, second, third = parse_mentions(text)
    assert (first.kind, first.name, first.qualifiers, first.partial) == (
        "xã",
        "tả lủng",
        ("huyện Đồng Văn",),
        False,
    )
    assert (second.kind, second.name, second.partial) == ("thị trấn", "phố bảng", False)
    assert (third.name, third.partial) == ("kim mã", True)
    assert third.targets == ("Ba Đình", "Ngọc Hà")
