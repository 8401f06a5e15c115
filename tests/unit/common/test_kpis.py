"""The KPI catalogue: denominators, numerators and the checks on the file itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.contract import Contract
from services.common.events import CloudEvent
from services.common.kpis import MEMO_LIMIT, CatalogueError, KpiCatalogue

CATALOGUE = KpiCatalogue.load(event_types=Contract.load().event_types)
AT = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)


def event(event_type: str, time: datetime = AT, **data: Any) -> CloudEvent:
    return CloudEvent(
        id="1", source="urn:test", type=event_type, time=time, unit="01843", data=data
    )


def doc(**data: Any) -> CloudEvent:
    return event("vn.egov.document.issued", document_id="d", **data)


def test_the_issue_names_every_kpi_in_the_catalogue() -> None:
    assert set(CATALOGUE.ids) >= {
        "document_signing",
        "document_electronic",
        "dossier_online",
        "dossier_online_payment",
        "dossier_on_time",
        "meeting_online",
        "meeting_paperless",
    }


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"electronic": True, "signed": True, "classified": False}, (1, 1)),
        ({"electronic": True, "signed": False, "classified": False}, (0, 1)),
        ({"electronic": True, "signed": True}, (1, 1)),  # classified defaults to false
        ({"electronic": True, "signed": True, "classified": True}, (0, 0)),
        ({"electronic": False, "signed": False, "classified": False}, (0, 0)),
    ],
)
def test_signing_rate_excludes_secret_and_paper_documents(
    data: dict[str, Any], expected: tuple[int, int]
) -> None:
    assert CATALOGUE.get("document_signing").count(doc(**data)) == expected


def test_electronic_rate_excludes_secret_documents_from_both_sides() -> None:
    kpi = CATALOGUE.get("document_electronic")
    assert kpi.count(doc(electronic=True, signed=True, classified=True)) == (0, 0)
    assert kpi.count(doc(electronic=False, signed=False, classified=False)) == (0, 1)


@pytest.mark.parametrize(
    ("level", "channel", "expected"),
    [("full", "online", (1, 1)), ("full", "counter", (0, 1)), ("partial", "online", (0, 0))],
)
def test_online_dossier_rate_counts_only_full_process_procedures(
    level: str, channel: str, expected: tuple[int, int]
) -> None:
    received = event(
        "vn.egov.dossier.received",
        dossier_id="h",
        procedure_code="1.0",
        service_level=level,
        channel=channel,
    )
    assert CATALOGUE.get("dossier_online").count(received) == expected


@pytest.fixture(scope="module")
def by_due(tmp_path_factory: pytest.TempPathFactory) -> KpiCatalogue:
    """A KPI comparing two time fields (lte_field), as dossier_on_time did before the
    on-time ledger counted it (services/metrics/dossiers.py)."""
    kpi = base_kpi(
        id="resolved_by_due",
        event_type="vn.egov.dossier.resolved",
        numerator={"field": "time", "lte_field": "data.due_at"},
    )
    return KpiCatalogue.load(write(tmp_path_factory.mktemp("by_due"), kpi))


@pytest.mark.parametrize(
    ("due_at", "expected"),
    [("2026-11-23T10:00:00+07:00", (1, 1)), ("2026-11-23T09:59:59+07:00", (0, 1))],
)
def test_lte_field_means_not_after(
    by_due: KpiCatalogue, due_at: str, expected: tuple[int, int]
) -> None:
    # AT is 10:00 in Vietnam: resolving exactly at the due time is on time.
    resolved = event("vn.egov.dossier.resolved", dossier_id="h", due_at=due_at, outcome="approved")
    assert by_due.get("resolved_by_due").count(resolved) == expected


def test_on_time_is_counted_by_the_ledger_not_event_by_event() -> None:
    resolved = event("vn.egov.dossier.resolved", dossier_id="h", outcome="approved")
    assert CATALOGUE.get("dossier_on_time").count(resolved) == (0, 0)


@pytest.mark.parametrize(
    ("kpi_id", "event_type", "flag", "base"),
    [
        ("dossier_digitised", "vn.egov.dossier.received", "digitised", {}),
        ("dossier_population_data", "vn.egov.dossier.received", "population_data", {}),
        (
            "dossier_electronic_result",
            "vn.egov.dossier.resolved",
            "electronic_result",
            {"outcome": "approved"},
        ),
    ],
)
def test_a_dossier_that_does_not_say_leaves_the_rate_of_its_flag(
    kpi_id: str, event_type: str, flag: str, base: dict[str, Any]
) -> None:
    kpi = CATALOGUE.get(kpi_id)
    received = {"procedure_code": "1.001612", "service_level": "full", "channel": "online"}
    data = {"dossier_id": "h", **received, **base}
    assert kpi.count(event(event_type, **data)) == (0, 0)  # an old publisher: not judged
    assert kpi.count(event(event_type, **{**data, flag: True})) == (1, 1)
    assert kpi.count(event(event_type, **{**data, flag: False})) == (0, 1)
    assert {k for k, _, _ in CATALOGUE.counts(event(event_type, **data))} <= {"dossier_online"}


def test_electronic_result_rate_counts_approved_dossiers_only() -> None:
    kpi = CATALOGUE.get("dossier_electronic_result")
    for outcome in ("rejected", "withdrawn", "returned"):
        resolved = event("vn.egov.dossier.resolved", dossier_id="h", outcome=outcome)
        assert kpi.count(resolved) == (0, 0)


def test_satisfaction_rate_is_satisfied_ratings_over_ratings() -> None:
    kpi = CATALOGUE.get("dossier_satisfaction")
    for rating, expected in [("satisfied", (1, 1)), ("not_satisfied", (0, 1))]:
        rated = event("vn.egov.rating.submitted", subject="dossier", subject_id="h", rating=rating)
        assert kpi.count(rated) == expected


def test_hybrid_meetings_count_as_online() -> None:
    kpi = CATALOGUE.get("meeting_online")
    for mode, expected in [("online", (1, 1)), ("hybrid", (1, 1)), ("in_person", (0, 1))]:
        held = event("vn.egov.meeting.held", meeting_id="m", mode=mode, paperless=True)
        assert kpi.count(held) == expected


def test_kpis_are_indexed_by_event_type() -> None:
    ids = {k.id for k in CATALOGUE.for_type("vn.egov.document.issued")}
    assert ids == {"document_signing", "document_electronic"}
    assert CATALOGUE.for_type("vn.egov.unknown") == ()


def write(tmp_path: Path, kpi: dict[str, Any]) -> Path:
    path = tmp_path / "kpis.json"
    path.write_text(json.dumps({"version": 1, "kpis": [kpi]}))
    level_bp = {"province": 5000, "district": 5000, "commune": 5000, "department": 5000}
    default = {"document": None, "issuer": "test", "signed": None, "title_vi": "", "title_en": ""}
    targets = [{"kpi": kpi.get("id"), "valid_from": None, "valid_until": None,
                "target_bp": level_bp, "source": "project-default"}]  # fmt: skip
    (tmp_path / "targets.json").write_text(
        json.dumps({"sources": {"project-default": default}, "targets": targets})
    )
    return path


def base_kpi(**overrides: Any) -> dict[str, Any]:
    kpi: dict[str, Any] = {
        "id": "x",
        "name_vi": "x",
        "name_en": "x",
        "event_type": "vn.egov.meeting.held",
        "denominator": {"all": []},
        "numerator": {"field": "data.paperless", "eq": True},
        "min_volume": 1,
    }
    kpi.update(overrides)
    return kpi


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"numerator": {"field": "data.paperless", "gte": 1}}, "unknown operator"),
        ({"numerator": {"field": "data.paperless", "gt": "1"}}, "gt compares with a number"),
        ({"numerator": {"field": "data.paperless", "gt": True}}, "gt compares with a number"),
        ({"numerator": {"field": "meta.x", "eq": 1}}, "unknown field path"),
        ({"event_type": "vn.egov.nothing"}, "unknown event type"),
        ({"targets": {"province": 0.5}}, "targets are dated data now"),
    ],
)
def test_a_malformed_catalogue_is_refused_with_its_reason(
    tmp_path: Path, overrides: dict[str, Any], message: str
) -> None:
    path = write(tmp_path, base_kpi(**overrides))
    with pytest.raises(CatalogueError, match=message):
        KpiCatalogue.load(path, event_types=Contract.load().event_types)


def test_gt_is_true_of_numbers_above_it_only(tmp_path: Path) -> None:
    path = write(tmp_path, base_kpi(id="x", denominator={"field": "data.sites", "gt": 0}))
    kpi = KpiCatalogue.load(path).get("x")

    def held(sites: object) -> dict[str, object]:
        return event("vn.egov.meeting.held", meeting_id="m", mode="online", paperless=True,
                     sites=sites)  # fmt: skip

    assert [kpi.count(held(v))[1] for v in (2, 1, 0.5, 0, -1, None, "3", True)] == [
        1, 1, 1, 0, 0, 0, 0, 0,
    ]  # fmt: skip


def test_adding_a_kpi_is_a_catalogue_change_only(tmp_path: Path) -> None:
    path = write(
        tmp_path, base_kpi(id="meeting_multi_site", numerator={"field": "data.sites", "in": [2, 3]})
    )
    kpi = KpiCatalogue.load(path).get("meeting_multi_site")
    held = event("vn.egov.meeting.held", meeting_id="m", mode="online", paperless=False, sites=3)
    assert kpi.count(held) == (1, 1)


def direct_counts(catalogue: KpiCatalogue, e: CloudEvent) -> tuple[tuple[str, int, int], ...]:
    """What ``counts`` must equal: every KPI of the type evaluated on its own."""
    pairs = [(kpi.id, *kpi.count(e)) for kpi in catalogue.for_type(e.type)]
    return tuple((kpi, num, den) for kpi, num, den in pairs if den)


FLAGS = st.sampled_from([True, False, None, 1, "true"])


@given(electronic=FLAGS, signed=FLAGS, classified=FLAGS)
def test_memoised_counts_equal_the_kpis_own_for_documents(
    electronic: Any, signed: Any, classified: Any
) -> None:
    data = {"electronic": electronic, "signed": signed, "classified": classified}
    e = doc(**{k: v for k, v in data.items() if v is not None})
    # Twice: the second answer comes from the memo.
    assert CATALOGUE.counts(e) == direct_counts(CATALOGUE, e)
    assert CATALOGUE.counts(e) == direct_counts(CATALOGUE, e)


@given(late_by=st.integers(-3 * 86400, 3 * 86400), offset_h=st.sampled_from([0, 7, -5]))
def test_memoised_lte_field_compares_each_event_own_due_date(
    by_due: KpiCatalogue, late_by: int, offset_h: int
) -> None:
    due = (AT - timedelta(seconds=late_by)).astimezone(timezone(timedelta(hours=offset_h)))
    e = event("vn.egov.dossier.resolved", dossier_id="d", due_at=due.isoformat(), outcome="ok")
    expected = (("resolved_by_due", 1 if late_by <= 0 else 0, 1),)
    assert by_due.counts(e) == direct_counts(by_due, e) == expected


def test_counts_of_unhashable_values_and_past_the_memo_limit_are_still_exact(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, base_kpi(id="by_title", numerator={"field": "data.title", "eq": "x"}))
    catalogue = KpiCatalogue.load(path)
    for n in range(2 * MEMO_LIMIT + 50):  # each even n is a new title: the memo stops growing
        title: Any = "x" if n % 2 else f"t{n}"
        e = event("vn.egov.meeting.held", title=title)
        assert catalogue.counts(e) == (("by_title", n % 2, 1),)
    assert len(catalogue._counters["vn.egov.meeting.held"].memo) == MEMO_LIMIT  # bounded
    listed = event("vn.egov.meeting.held", title=["x"])
    assert catalogue.counts(listed) == (("by_title", 0, 1),)
    assert catalogue.counts(event("vn.egov.unknown")) == ()
