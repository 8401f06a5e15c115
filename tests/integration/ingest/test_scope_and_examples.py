"""Scope across the unit hierarchy and its 2025 reform; the contract's invalid examples."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.common.settings import CommonSettings
from services.ingest.problems import PROBLEM_BASE
from tests.integration.ingest.harness import (
    CONTRACT,
    HAC_THANH,
    HAM_RONG,
    NONG_CONG_TOWN_2024,
    REGISTRY,
    Ingest,
    event,
    ids,
    ingest_settings,
    running_ingest,
    topic_events,
)

pytestmark = pytest.mark.integration

DAYS_2024 = datetime(2025, 6, 20, 9, tzinfo=UTC)  # before the reform, within a long horizon
WHOLE_INTO_HAM_RONG = "14755"  # crosswalk: 14755 -> 14758 merged
PARTLY_INTO_HAC_THANH = "16435"  # crosswalk: 16435 -> 14797 partial


async def test_province_key_publishes_for_all_its_communes(ingest: Ingest) -> None:
    batch = [event(HAM_RONG), event(HAC_THANH), event("38")]
    assert (await ingest.post(batch, key="province")).status_code == 202
    assert ids(await topic_events(ingest.settings)) == ids(batch)


async def test_commune_key_publishes_for_itself_only(ingest: Ingest) -> None:
    own = event(HAM_RONG)
    assert (await ingest.post(own, key="commune")).status_code == 202
    assert (await ingest.post(event(HAC_THANH), key="commune")).status_code == 403
    assert (await ingest.post(event("38"), key="commune")).status_code == 403
    assert ids(await topic_events(ingest.settings)) == ids([own])


async def test_pre_reform_district_key_covers_its_2024_communes_only(
    common_settings: CommonSettings, database_url: str
) -> None:
    settings = ingest_settings(common_settings, database_url, counting_grace_days=3650)
    async with running_ingest(settings) as ingest:
        old = event(NONG_CONG_TOWN_2024, at=DAYS_2024)
        assert (await ingest.post(old, key="district-2024")).status_code == 202
        # After 2025-07-01 the district no longer exists: it scopes nothing then.
        response = await ingest.post(event(HAM_RONG), key="district-2024")
        assert response.status_code == 403
        # Bắc Kạn (06) merged whole into Thái Nguyên (19) in 2025: today's Thái Nguyên key
        # backfills its communes' 2024 events (review 59; until 2026-12-05 a 403) ...
        bac_kan_district = REGISTRY.children("06", "2024")[0].code
        commune = REGISTRY.children(bac_kan_district, "2024")[0].code
        merged = event(commune, at=DAYS_2024)
        response = await ingest.post(merged, key="thai-nguyen")
        assert response.status_code == 202, response.text
        # ... and no 2024 event of Thanh Hóa's, which went into no unit of 19.
        response = await ingest.post(event(NONG_CONG_TOWN_2024, at=DAYS_2024), key="thai-nguyen")
        assert response.status_code == 403, response.text
        # A commune key: a ward merged whole into Hàm Rồng is its own before the reform; a
        # ward only partly merged into its sibling Hạc Thành (16435) is not.
        whole = event(WHOLE_INTO_HAM_RONG, at=DAYS_2024)
        assert (await ingest.post(whole, key="commune")).status_code == 202
        partial = event(PARTLY_INTO_HAC_THANH, at=DAYS_2024)
        response = await ingest.post(partial, key="commune")
        assert response.status_code == 403 and "unit-out-of-scope" in response.text
        assert ids(await topic_events(settings)) == ids([old, merged, whole])


def _invalid_examples() -> list[tuple[str, Path, dict[str, Any]]]:
    return [
        (event_type, path, case)
        for event_type in sorted(CONTRACT.event_types)
        for path, case in CONTRACT.examples(event_type, "invalid")
    ]


async def test_every_invalid_example_is_refused_with_its_pointer(ingest: Ingest) -> None:
    cases = _invalid_examples()
    for _, path, case in cases:
        response = await ingest.post(case["event"])
        assert response.status_code == 422, (path.name, response.text)
        body = response.json()
        assert body["type"] == PROBLEM_BASE + "invalid-events"
        pointers = {e["pointer"] for e in body["errors"]}
        assert case["expect"]["pointer"] in pointers, (path.name, body["errors"])
    assert len(cases) >= 25
    assert await topic_events(ingest.settings) == []
