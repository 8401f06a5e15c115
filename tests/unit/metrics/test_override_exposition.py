"""An operator's target is exported with what it rests on, so Grafana never shows it bare.

The wall and the files cite every target (stop 28); Grafana read the targets in force
from ``egov_kpi_target_ratio`` and showed an override's value with nothing saying who
set it or why. ``egov_kpi_target_override_ratio`` lists the overrides in force today,
one series each, cited as the wall cites them.
"""

from __future__ import annotations

from datetime import date

from services.common.targets import Override, Scope
from services.metrics.targets import Targets
from tests.unit.metrics.helpers import catalogue, registry
from tests.unit.metrics.test_exposition import key, populated, scrape

FAMILY = "egov_kpi_target_override_ratio"
TODAY = date(2026, 11, 23)  # NOW in Vietnam (10:00); the scrape judges by its own clock


def overrides(*given: Override) -> Targets:
    targets = Targets(catalogue(), registry(), today=lambda: TODAY)
    targets.overrides = list(given)
    return targets


def test_each_override_in_force_is_exported_with_its_basis() -> None:
    targets = overrides(
        Override(Scope(unit="01843"), "document_signing", 9_500, date(2026, 11, 1),
                 reason='Kế hoạch 12/KH-UBND "ký số 95 %"\nđợt 2'),
        Override(Scope(province="19", level="commune"), "dossier_online", 8_000),
        Override(Scope(province="19"), "meeting_online", 6_000, date(2026, 10, 1),
                 date(2026, 12, 31), reason="Nghị quyết HĐND tỉnh"),
    )  # fmt: skip
    samples = scrape(populated(), targets)[FAMILY]
    assert samples == {
        key(kpi="document_signing", scope="unit", province="19", level="commune",
            unit="01843", basis='Mục tiêu riêng đặt cho đơn vị: Kế hoạch 12/KH-UBND '
            '"ký số 95 %"\nđợt 2 (áp dụng từ 01/11/2026)'): 0.95,
        key(kpi="dossier_online", scope="province_level", province="19", level="commune",
            unit="", basis="Mục tiêu của tỉnh cho cấp đơn vị này"): 0.8,
        key(kpi="meeting_online", scope="province", province="19", level="", unit="",
            basis="Mục tiêu của tỉnh: Nghị quyết HĐND tỉnh (áp dụng từ 01/10/2026 đến "
            "31/12/2026)"): 0.6,
    }  # fmt: skip


def test_only_what_applies_today_and_to_a_live_kpi() -> None:
    targets = overrides(
        # Ended yesterday, starts tomorrow: not in force.
        Override(Scope(province="19"), "document_signing", 9_000, None, date(2026, 11, 22)),
        Override(Scope(province="19"), "dossier_online", 9_000, date(2026, 11, 24)),
        # Two for one scope: the latest started applies, and only it is listed.
        Override(Scope(unit="01843"), "meeting_online", 5_000, date(2026, 1, 1)),
        Override(Scope(unit="01843"), "meeting_online", 7_000, date(2026, 11, 1)),
        # A KPI the catalogue no longer has: an override does not revive it.
        Override(Scope(unit="01843"), "document_signing_2019", 9_000),
    )
    samples = scrape(populated(), targets)[FAMILY]
    assert [(dict(k)["kpi"], v) for k, v in samples.items()] == [("meeting_online", 0.7)]


def test_none_in_force_writes_the_family_empty() -> None:
    samples = scrape(populated(), overrides())
    assert FAMILY not in samples
    assert samples["egov_kpi_target_ratio"][key(kpi="document_signing", unit="01843")] == 1.0


def test_an_override_for_a_unit_the_registry_does_not_know_keeps_its_code() -> None:
    targets = overrides(Override(Scope(unit="99999"), "document_signing", 9_000))
    (labels,) = scrape(populated(), targets)[FAMILY]
    assert dict(labels) | {"basis": ""} == {
        "kpi": "document_signing", "scope": "unit", "province": "", "level": "",
        "unit": "99999", "basis": "",
    }  # fmt: skip


def test_an_override_does_not_make_its_unit_a_series_of_this_worker() -> None:
    # Phường Đức Xuân has no figures here: its override is listed, its unit_info is not
    # (every worker lists the overrides; a unit's info comes from the one owning it).
    targets = overrides(Override(Scope(unit="01840"), "document_signing", 9_000))
    samples = scrape(populated(), targets)
    (labels,) = samples[FAMILY]
    assert dict(labels)["province"] == "19" and dict(labels)["unit"] == "01840"
    assert {dict(k)["unit"] for k in samples["egov_unit_info"]} == {"01843", "19"}
