"""The metrics workers' effective targets: the day's default, the operator's overrides."""

from __future__ import annotations

from datetime import date

from services.common.targets import Override, Scope
from services.metrics.targets import Targets
from tests.unit.metrics.helpers import catalogue, registry


def test_the_served_target_is_the_one_of_the_day() -> None:
    today = [date(2021, 6, 14)]
    targets = Targets(catalogue(), registry(), lambda: today[0])
    commune = registry().get("01843", "2025")
    assert targets.target(commune, "dossier_online") == 0.2
    today[0] = date(2021, 6, 15)
    assert targets.target(commune, "dossier_online") == 0.8
    assert targets.target(commune, "dossier_online", date(2021, 6, 14)) == 0.2


def test_a_province_override_reaches_its_units_through_the_registry() -> None:
    targets = Targets(catalogue(), registry(), lambda: date(2026, 12, 4))
    targets.overrides = [Override(Scope(province="19", level="commune"), "meeting_online", 7000)]
    assert targets.target(registry().get("01843", "2025"), "meeting_online") == 0.7
    assert targets.target(registry().get("14758", "2025"), "meeting_online") == 0.9
    assert targets.target(registry().get("19", "2025"), "meeting_online") == 0.9
    found = targets.effective(registry().get("01843", "2025"), "meeting_online")
    assert found is not None and found.origin == "province_level"
