"""Default targets as dated, cited data (data/targets.json): what the file says, and what
the loader refuses."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.common.kpis import KpiCatalogue
from services.common.targetdata import LEVELS, PROJECT_DEFAULT, TargetData, TargetDataError

DATA = TargetData.load()
CATALOGUE = KpiCatalogue.load()


def test_every_kpi_has_exactly_one_default_on_every_day_since_2018() -> None:
    day = date(2018, 1, 1)
    while day <= date(2031, 12, 31):
        for kpi in CATALOGUE.kpis:
            found = [e for e in DATA.schedule(kpi.id) if e.valid_on(day)]
            assert len(found) == 1, (kpi.id, day)
        day += timedelta(days=30)


def test_signing_follows_the_national_aim_of_every_document_signed() -> None:
    signing = CATALOGUE.get("document_signing")
    assert {signing.target_bp(level, date(2026, 12, 4)) for level in LEVELS} == {10_000}
    source = signing.default_on(date(2026, 12, 4)).source  # type: ignore[union-attr]
    assert source.national and "02/CT-TTg" in (source.document or "")
    # The catalogue's former 98/95 % stays for figures dated before the national aim.
    assert signing.target_bp("commune", date(2020, 1, 31)) == 9500
    assert signing.target_bp("commune", date(2020, 2, 1)) == 10_000


def test_a_dated_default_switches_on_its_day() -> None:
    online = CATALOGUE.get("dossier_online")
    assert online.target_bp("commune", date(2021, 6, 14)) == 2000  # Resolution 17/NQ-CP
    assert online.target_bp("commune", date(2021, 6, 15)) == 8000  # Decision 942/QĐ-TTg
    exchange = CATALOGUE.get("document_electronic")
    assert exchange.target_bp("commune", date(2019, 3, 6)) == 8500
    assert exchange.target_bp("commune", date(2019, 3, 7)) == 9000


def test_kpis_without_a_national_target_say_so() -> None:
    for kpi in ("dossier_online_payment", "dossier_on_time", "meeting_online", "meeting_paperless"):
        [entry] = DATA.schedule(kpi)
        assert entry.source.id == PROJECT_DEFAULT and not entry.source.national
        assert entry.source.document is None


def test_every_entry_of_the_file_explains_itself() -> None:
    raw = json.loads(Path("data/targets.json").read_text())
    for entry in raw["targets"]:
        assert entry.get("why") or entry.get("note"), entry["kpi"]
        if entry["valid_until"] is None:  # the entry in force now says what it replaced
            assert entry.get("was") and entry.get("why"), entry["kpi"]
    for sid, source in raw["sources"].items():
        assert source["says"], sid


def write(tmp_path: Path, *entries: dict[str, Any]) -> Path:
    path = tmp_path / "targets.json"
    default = {"document": None, "issuer": "x", "signed": None, "title_vi": "", "title_en": ""}
    path.write_text(json.dumps({"sources": {PROJECT_DEFAULT: default}, "targets": entries}))
    return path


def entry(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "kpi": "x", "valid_from": None, "valid_until": None, "source": PROJECT_DEFAULT,
        "target_bp": dict.fromkeys(LEVELS, 9000),
    }  # fmt: skip
    return base | overrides


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([entry(target_bp=dict.fromkeys(LEVELS, 0.9))], "basis points"),
        ([entry(target_bp=dict.fromkeys(LEVELS, 10_001))], "basis points"),
        ([entry(target_bp={"province": 9000})], "missing 'district'"),
        ([entry(source="qd-0-2099")], "unknown source"),
        ([entry(valid_from="2026-13-01")], "not a date"),
        ([entry(valid_from="2026-02-01", valid_until="2026-01-01")], "before"),
        ([entry(valid_until="2026-01-31"), entry(valid_from="2026-01-31")], "overlap"),
        ([entry(), entry(valid_from="2026-02-01")], "overlap"),
    ],
)
def test_a_malformed_target_file_is_refused_with_its_reason(
    tmp_path: Path, entries: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(TargetDataError, match=message):
        TargetData.load(write(tmp_path, *entries))


def test_adjacent_entries_are_accepted(tmp_path: Path) -> None:
    data = TargetData.load(
        write(tmp_path, entry(valid_until="2026-01-31"), entry(valid_from="2026-02-01"))
    )
    assert [e.valid_from for e in data.schedule("x")] == [None, date(2026, 2, 1)]
