"""The /v1/kpis items a worker writes are the typed Figure the alerts and the wall read."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from services.common.citations import cite
from services.common.figures import ITEM_VERSION, parse_figures
from services.common.tally import Deltas
from services.common.targets import Override, Scope
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


def test_each_item_cites_what_its_target_rests_on() -> None:
    """The catalogue's default for the day names its document (document_signing's 100 %
    rests on Directive 02/CT-TTg from 1 February 2020); an override names its scope and
    reason instead; both read back from the wire, and are cited in words."""
    (item,) = items()
    assert item["target_basis"] == {
        "origin": "default",
        "source": "ct-02-2019-vpcp-2020",
        "valid_from": "2020-02-01",
        "valid_until": None,
        "reason": None,
    }
    (figure,) = parse_figures(orjson.dumps({"items": [item]}))
    assert "02/CT-TTg" in cite(figure.target_basis, "vi")
    assert "02/CT-TTg" in cite(figure.target_basis, "en")
    targets = Targets(catalogue())
    targets.overrides = [
        Override(Scope(province="19"), "document_signing", 9_500, reason="Kế hoạch 12/KH-UBND")
    ]
    figures = Figures()
    figures.assign(TP, PartitionFigures())
    figures.apply(TP, Deltas.of([c(NOW)]), Periods.at(NOW))
    query = api.KpiQuery.parse({"unit": ["01843"], "window": ["day"]}, catalogue())
    (item,) = api.kpi_items(query, figures, registry(), targets, Periods.at(NOW))
    assert item["target_bp"] == 9_500
    basis = item["target_basis"]
    assert isinstance(basis, dict) and basis["origin"] == "province" and basis["source"] is None
    (figure,) = parse_figures(orjson.dumps({"items": [item]}))
    assert cite(figure.target_basis, "vi") == "Mục tiêu của tỉnh: Kế hoạch 12/KH-UBND"


def test_an_item_from_an_older_worker_or_with_a_basis_unread_keeps_its_figure() -> None:
    (item,) = items()
    for basis in (
        None,
        "default",
        {"origin": 5},
        {"origin": "default", "valid_from": "x"},
        {"origin": "default", "reason": ["a list"]},  # unhashable: refused the answer once
        {"origin": {"an": "object"}},
    ):
        (figure,) = parse_figures(orjson.dumps({"items": [{**item, "target_basis": basis}]}))
        assert figure.target_basis is None and figure.target_bp == 10_000
    older = {k: v for k, v in item.items() if k != "target_basis"}
    (figure,) = parse_figures(orjson.dumps({"items": [older]}))
    assert figure.target_basis is None and cite(figure.target_basis, "vi") == ""
