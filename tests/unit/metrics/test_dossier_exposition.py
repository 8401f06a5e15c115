"""The on-time ledger's four counts on /metrics (egov_dossiers) and on the /v1/kpis item."""

from __future__ import annotations

from datetime import UTC, date, datetime

import orjson

from services.common.figures import DossierCounts, parse_figures
from services.metrics import api
from services.metrics.dossiers import Tick, deltas_of
from services.metrics.figures import Figures, PartitionFigures
from services.metrics.periods import Periods
from services.metrics.targets import Targets
from tests.unit.metrics.helpers import catalogue, registry
from tests.unit.metrics.test_exposition import key, scrape

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # 10:00 in Vietnam
TP = ("egov.dossiers", 0)
CHAIN = ("01843", "19")


def ledger_figures() -> Figures:
    """Two early, one on time, one open overdue today; one late yesterday (history)."""
    today, yesterday = date(2026, 11, 23), date(2026, 11, 22)
    epoch = NOW.timestamp()
    ticks = [
        Tick("early", CHAIN, today, epoch),
        Tick("early", CHAIN, today, epoch),
        Tick("on_time", CHAIN, today, epoch),
        Tick("open_overdue", CHAIN, today, epoch),
        Tick("late", CHAIN, yesterday, epoch - 86400),
    ]
    figures = Figures()
    figures.assign(TP, PartitionFigures())
    figures.apply(TP, deltas_of(ticks), Periods.at(NOW))
    return figures


def test_egov_dossiers_has_the_four_counts_per_unit_and_window() -> None:
    samples = scrape(ledger_figures(), Targets(catalogue()))
    dossiers = samples["egov_dossiers"]
    for unit in CHAIN:
        day = {o: dossiers[key(unit=unit, window="day", outcome=o)] for o in OUTCOME_NAMES}
        month = {o: dossiers[key(unit=unit, window="month", outcome=o)] for o in OUTCOME_NAMES}
        assert day == {"early": 2, "on_time": 1, "late": 0, "open_overdue": 1}
        assert month == {"early": 2, "on_time": 1, "late": 1, "open_overdue": 1}
        # The rate itself: (early + on time) / all four.
        rate = key(kpi="dossier_on_time", unit=unit, window="month")
        assert samples["egov_kpi_numerator"][rate] == 3
        assert samples["egov_kpi_denominator"][rate] == 5
    # The counts are never read as KPI series of their own.
    kpis = {dict(k).get("kpi") for k in samples["egov_kpi_denominator"]}
    assert kpis == {"dossier_on_time"}
    assert not samples.get("egov_kpi_retired_info")


OUTCOME_NAMES = ("early", "on_time", "late", "open_overdue")


def test_the_on_time_item_carries_its_counts_and_reads_back() -> None:
    query = api.KpiQuery.parse({"window": ["day", "month"]}, catalogue())
    items = api.kpi_items(
        query, ledger_figures(), registry(), Targets(catalogue()), Periods.at(NOW)
    )
    commune = {i["window"]: i for i in items if i["unit"] == "01843"}
    assert commune["day"]["dossiers"] == {"early": 2, "on_time": 1, "late": 0, "open_overdue": 1}
    assert commune["month"]["dossiers"] == {"early": 2, "on_time": 1, "late": 1, "open_overdue": 1}
    assert (commune["month"]["numerator"], commune["month"]["denominator"]) == (3, 5)
    [parsed] = [
        f
        for f in parse_figures(orjson.dumps({"items": items}))
        if (f.unit, f.window) == ("01843", "month")
    ]
    assert parsed.dossiers == DossierCounts(2, 1, 1, 1)
