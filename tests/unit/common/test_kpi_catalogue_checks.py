"""The KPI catalogue's checks of its own file: every fault a CatalogueError naming the
file, the KPI and the fault, and each ``data.*`` path checked against the contract's
schemas (review 63: a typo loaded silently and paged for every unit)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.common.contract import Contract
from services.common.kpis import CatalogueError, KpiCatalogue
from services.common.paths import SCHEMAS_DIR
from tests.unit.common.test_kpis import base_kpi, write

EVENT_TYPES = Contract.load().event_types


def load(path: Path, schemas_dir: Path = SCHEMAS_DIR) -> KpiCatalogue:
    return KpiCatalogue.load(path, event_types=EVENT_TYPES, schemas_dir=schemas_dir)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"numerator": {"field": "data.paperless", "in": 5}}, "in takes a list of values"),
        ({"numerator": {"field": "data.mode", "not_in": [["online"]]}}, "not lists or objects"),
        ({"numerator": {"all": {"field": "data.paperless", "eq": True}}}, "all takes a list"),
        ({"numerator": {"any": [], "not": {"all": []}}}, "any takes a list of conditions"),
        ({"numerator": {"not": {"all": []}, "all": []}}, "all takes a list of conditions"),
        ({"denominator": ["data.paperless"]}, "denominator: a condition is an object"),
        ({"numerator": {"field": 5, "eq": True}}, "a field is a path, not 5"),
        ({"numerator": {"field": "time", "lte_field": 3}}, "lte_field takes a field path"),
        ({"min_volume": "twenty"}, "'min_volume' must be a whole number"),
        ({"min_volume": True}, "'min_volume' must be a whole number"),
        ({"min_volume": -1}, "'min_volume' must be a whole number"),
        ({"name_en": None}, "'name_en' must be a non-empty string"),
        ({"numerator": None}, "numerator: a condition is an object"),
    ],
)
def test_a_malformed_kpi_names_the_file_the_kpi_and_the_fault(
    tmp_path: Path, overrides: dict[str, Any], message: str
) -> None:
    path = write(tmp_path, base_kpi(id="meeting_x", **overrides))
    with pytest.raises(CatalogueError, match=message) as caught:
        load(path)
    assert str(caught.value).startswith(f"{path}: KPI 'meeting_x'")


def test_a_missing_key_names_the_kpi(tmp_path: Path) -> None:
    kpi = base_kpi(id="meeting_x")
    del kpi["numerator"]
    with pytest.raises(CatalogueError, match=r"kpis\.json: KPI 'meeting_x': missing 'numerator'"):
        load(write(tmp_path, kpi))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"kpis": [', "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        ("[]", "an object whose 'kpis' is a list"),
        ('{"kpis": {}}', "an object whose 'kpis' is a list"),
        ('{"kpis": [7]}', "KPI number 1 in 'kpis' is not an object"),
    ],
)
def test_a_file_that_is_no_catalogue_names_the_file(
    tmp_path: Path, text: str | bytes, message: str
) -> None:
    path = write(tmp_path, base_kpi())
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(CatalogueError, match=message) as caught:
        KpiCatalogue.load(path)
    assert str(caught.value).startswith(str(path))


def test_a_missing_file_is_a_catalogue_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match=r"cannot read the KPI catalogue"):
        KpiCatalogue.load(tmp_path / "kpis.json")


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ({"field": "data.paperles", "eq": True}, r"'data.paperles' is not a field of its schema"),
        ({"field": "data.signed", "eq": True}, r"'data.signed' is not a field"),  # documents'
        ({"field": "data.paperless", "eq": "true"}, r"'data.paperless' is boolean.*eq 'true'"),
        ({"field": "data.mode", "in": ["online", 1]}, r"'data.mode' is string.*in 1 never"),
        ({"field": "data.sites", "ne": "2"}, r"'data.sites' is integer.*ne '2'"),
        ({"field": "data.paperless", "gt": 0}, r"boolean in the schema: not a number"),
        ({"field": "data.title", "lte_field": "data.sites"}, r"'data.sites' is integer"),
        ({"field": "time", "lte_field": "data.due"}, r"'data.due' is not a field"),
        ({"not": {"any": [{"field": "data.x", "eq": 1}]}}, r"'data.x' is not a field"),
    ],
)
def test_a_condition_the_schema_cannot_meet_is_refused(
    tmp_path: Path, condition: dict[str, Any], message: str
) -> None:
    path = write(tmp_path, base_kpi(id="meeting_x", numerator=condition))
    with pytest.raises(CatalogueError, match=message) as caught:
        load(path)
    said = str(caught.value)
    assert said.startswith(f"{path}: KPI 'meeting_x' numerator, of vn.egov.meeting.held: ")


@pytest.mark.parametrize(
    "condition",
    [
        {"field": "data.sites", "gt": 1},
        {"field": "data.sites", "in": [2, 3]},
        {"field": "data.mode", "eq": None},  # null: the field is absent
        {"field": "data.title", "ne": "x"},
        {"field": "time", "eq": "2026-01-01T00:00:00Z"},  # no schema for the envelope here
    ],
)
def test_a_condition_the_schema_can_meet_loads(tmp_path: Path, condition: dict[str, Any]) -> None:
    assert load(write(tmp_path, base_kpi(numerator=condition))).ids == ("x",)


def test_a_field_of_any_version_of_the_type_is_a_field(tmp_path: Path) -> None:
    """electronic_result is v2's only: v1's events are still counted, v2's carry it."""
    condition = {"field": "data.electronic_result", "eq": True}
    kpi = base_kpi(event_type="vn.egov.dossier.resolved", numerator=condition)
    assert load(write(tmp_path, kpi)).get("x").reads == ("data.electronic_result",)


def test_without_the_contract_the_fields_are_not_checked(tmp_path: Path) -> None:
    path = write(tmp_path, base_kpi(numerator={"field": "data.paperles", "eq": True}))
    assert KpiCatalogue.load(path).ids == ("x",)


def test_a_schema_open_to_other_fields_checks_none(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    (schemas / "events").mkdir(parents=True)
    source = SCHEMAS_DIR / "events" / "vn.egov.meeting.held.v1.schema.json"
    schema = json.loads(source.read_text())
    schema["additionalProperties"] = True
    (schemas / "events" / source.name).write_text(json.dumps(schema))
    path = write(tmp_path, base_kpi(numerator={"field": "data.extra", "eq": True}))
    assert load(path, schemas).ids == ("x",)
    assert load(path, tmp_path / "elsewhere").ids == ("x",)  # no schema found: no check


def test_the_shipped_catalogue_meets_its_schemas() -> None:
    assert len(KpiCatalogue.load(event_types=EVENT_TYPES).ids) >= 11
