"""The /v1/kpis items a worker writes are the typed Figure the alerts and the wall read."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from services.common.figures import ITEM_VERSION, parse_figures
from services.common.tally import Deltas
from services.metrics import api
from services.metrics.figures import Figures, PartitionFigures
from services.metrics.periods import Periods
from services.metrics.targets import Targets
from tests.unit.metrics.helpers import catalogue, registry
from tests.unit.metrics.test_figures import c

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
TP = ("egov.documents", 0)


def items() -> list[dict[str, object]]:
    figures = Figures()
    figures.assign(TP, PartitionFigures())
    figures.apply(TP, Deltas.of([c(NOW), c(NOW), c(NOW, 0)]), Periods.at(NOW))
    query = api.KpiQuery.parse({"unit": ["01843"], "window": ["day"]}, catalogue())
    return api.kpi_items(query, figures, registry(), Targets(catalogue()), Periods.at(NOW))


def test_items_are_written_as_version_2_with_basis_points() -> None:
    (item,) = items()
    assert item["version"] == ITEM_VERSION == 2
    # 2 of 3 signed: 66.67 % shown, the target in basis points beside its ratio.
    assert (item["numerator"], item["denominator"], item["rate_bp"]) == (2, 3, 6667)
    assert (item["target"], item["target_bp"]) == (1.0, 10_000)


def test_what_a_worker_writes_the_alerts_and_the_wall_read_back_unchanged() -> None:
    written = items()
    (figure,) = parse_figures(orjson.dumps({"items": written}))
    assert figure.to_json() == written[0]
    assert (figure.unit_name, figure.province, figure.target_bp) == ("Phường Bắc Kạn", "19", 10_000)
