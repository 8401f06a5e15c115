"""Figures whose KPI the catalogue no longer has are served as retired: /v1/kpis answers,
and /metrics is complete (issue 14).

A KPI removed or renamed in data/kpis.json keeps its stored figures in PostgreSQL; a
worker loads them with the rest. They are served as they were counted, marked retired,
with no target (nothing to judge them by), never a 500 nor a scrape cut short.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import orjson

from services.common.figures import parse_figures
from services.common.tally import Deltas
from services.common.targets import Override, Scope
from services.metrics import api
from services.metrics.figures import Figures, PartitionFigures
from services.metrics.kpitext import KpiText
from services.metrics.periods import Periods
from services.metrics.targets import Targets
from tests.unit.metrics.helpers import catalogue, registry
from tests.unit.metrics.test_exposition import key, scrape
from tests.unit.metrics.test_figures import c

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
TP = ("egov.documents", 0)
RETIRED = "document_signing_2019"  # as if data/kpis.json had dropped or renamed it


def with_a_retired_kpi() -> Figures:
    live = c(NOW)
    retired = dataclasses.replace(live, counts=((RETIRED, 1, 1),))
    half = dataclasses.replace(live, counts=((RETIRED, 0, 1),))
    figures = Figures()
    figures.assign(TP, PartitionFigures())
    figures.apply(TP, Deltas.of([live, live, retired, half]), Periods.at(NOW))
    return figures


def test_kpis_answer_the_retired_kpi_marked_and_unjudged() -> None:
    assert RETIRED not in catalogue().ids
    query = api.KpiQuery.parse({"window": ["day"]}, catalogue())
    items = api.kpi_items(
        query, with_a_retired_kpi(), registry(), Targets(catalogue()), Periods.at(NOW)
    )
    by_kpi = {(i["kpi"], i["unit"]): i for i in items}
    item = by_kpi[(RETIRED, "01843")]
    assert item["retired"] is True
    assert (item["numerator"], item["denominator"], item["ratio"]) == (1, 2, 0.5)
    assert item["target"] is None and item["meets_target"] is None
    assert item["kpi_name_en"] == RETIRED and item["unit_name"] == "Phường Bắc Kạn"
    # Nothing valid was lost: the live KPI is served in full beside it.
    live = by_kpi[("document_signing", "01843")]
    assert live["retired"] is False and (live["numerator"], live["target"]) == (2, 1.0)
    # The alerts and the wall read these answers: a retired item is left out, not an error.
    figures = parse_figures(orjson.dumps({"items": items}))
    assert {f.kpi for f in figures} == {"document_signing"}


def test_metrics_is_complete_with_a_retired_kpi() -> None:
    figures = with_a_retired_kpi()
    text = KpiText(figures, registry(), Targets(catalogue()), lambda: NOW).render()
    assert text.endswith("\n") and "# TYPE egov_unit_last_event_timestamp_seconds" in text
    samples = scrape(figures, Targets(catalogue()))
    for unit in ("01843", "19"):
        k = key(kpi=RETIRED, unit=unit, window="day")
        assert (samples["egov_kpi_numerator"][k], samples["egov_kpi_denominator"][k]) == (1, 2)
        assert samples["egov_kpi_ratio"][k] == 0.5
        assert key(kpi=RETIRED, unit=unit) not in samples["egov_kpi_target_ratio"]
        assert samples["egov_kpi_target_ratio"][key(kpi="document_signing", unit=unit)]
    assert samples["egov_kpi_retired_info"] == {key(kpi=RETIRED): 1}
    # Every family after the KPI series is still written (the scrape was not cut).
    assert samples["egov_unit_info"] and samples["egov_unit_last_event_timestamp_seconds"]


def test_an_override_does_not_revive_a_retired_kpi() -> None:
    targets = Targets(catalogue(), registry())
    targets.overrides = [
        Override(Scope(unit="01843"), RETIRED, 9000),
        Override(Scope(unit="01843"), "document_signing", 5000),
    ]
    unit = registry().get("01843", "2025")
    assert targets.retired(RETIRED) and targets.target(unit, RETIRED) is None
    assert targets.target(unit, "document_signing") == 0.5
