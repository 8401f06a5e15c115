"""The province overview cites what each default target rests on, as the wall does."""

from __future__ import annotations

import dataclasses
from datetime import date
from types import SimpleNamespace

from services.common.kpis import KpiCatalogue
from services.common.rates import format_target
from services.dashboards import overview
from services.dashboards.render import build_all


def test_every_default_target_is_cited_with_its_days() -> None:
    catalogue = KpiCatalogue.load()
    board = build_all(catalogue)[overview.FILE]
    (panel,) = [p for p in board["panels"] if p.get("type") == "text"]
    content = panel["options"]["content"]
    rows = [line for line in content.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) - 1 == sum(len(k.schedule) for k in catalogue.kpis)
    signing = catalogue.get("document_signing")
    today = signing.default_on(date(2026, 12, 5))
    assert today is not None and today.source.document is not None
    # Directive 02/CT-TTg's 100 % from 1 February 2020, beside the KPI's name.
    assert any(
        signing.name_vi in row
        and format_target(today.target_bp["province"], "vi") in row
        and "từ 01/02/2020" in row
        and "02/CT-TTg" in row
        for row in rows
    ), rows
    # A target no document sets says so, never reads as a national one.
    assert any("Mặc định của dự án" in row for row in rows)


def test_a_pipe_in_a_source_does_not_break_the_table() -> None:
    catalogue = KpiCatalogue.load()
    kpi = catalogue.kpis[0]
    dated = kpi.schedule[-1]
    odd = dataclasses.replace(dated, source=dataclasses.replace(dated.source, document="A | B"))
    patched = dataclasses.replace(kpi, schedule=(odd,))
    text = overview.target_bases_markdown(SimpleNamespace(kpis=(patched,)))  # type: ignore[arg-type]
    (row,) = [line for line in text.splitlines()[2:] if line]
    assert row.count("|") == 5 and "A / B" in row
