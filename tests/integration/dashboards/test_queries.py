"""Every panel's PromQL parses and evaluates in a real Prometheus loaded with the repo's rules.

These tests need only Prometheus: every query and variable parses and evaluates, and every
recording rule a dashboard names is one that Prometheus loaded. That every panel also
returns data, from a real pipeline fed known events, is test_panels_return_data.py.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.dashboards.prometheus import (
    Prometheus,
    grafana_regex,
    panel_queries,
    query_result_lines,
    running_prometheus,
    substitute,
    variable_queries,
)

pytestmark = pytest.mark.integration

RECORDED = re.compile(
    r"\b(?:unit|unit_group|unit_indicator|province|national|kpi):egov_[a-z_]+:[a-z0-9]+\b"
)


@pytest.fixture
def bare_prometheus(tmp_path: Path) -> Iterator[Prometheus]:
    with running_prometheus(tmp_path, {"prometheus": []}) as prometheus:
        yield prometheus


def test_every_query_parses_and_every_recording_rule_it_names_is_loaded(
    bare_prometheus: Prometheus,
) -> None:
    deadline = time.monotonic() + 15
    loaded = bare_prometheus.rule_names()
    while not loaded and time.monotonic() < deadline:
        time.sleep(0.2)
        loaded = bare_prometheus.rule_names()
    queries = panel_queries()
    assert len(queries) > 40
    for q in queries:
        bare_prometheus.query(q.concrete)  # fails with Prometheus's parse error
        named = set(RECORDED.findall(q.expr))
        assert named <= loaded, f"{q.dashboard} / {q.panel}: no rule records {named - loaded}"
    for _, inner, regex in variable_queries():
        bare_prometheus.query(substitute(inner))
        grafana_regex(regex)


def test_the_variable_regex_picks_name_and_code_from_query_result() -> None:
    line = query_result_lines(
        [
            {
                "metric": {
                    "__name__": "unit:egov_unit_province:info",
                    "level": "commune",
                    "name": "Phường Bắc Kạn",
                    "parent": "19",
                    "province": "19",
                    "unit": "01843",
                },
                "value": [1, "1"],
            }
        ]
    )[0]
    for _, _, regex in variable_queries():
        match = grafana_regex(regex).search(line)
        assert match and match["text"] == "Phường Bắc Kạn" and match["value"] == "01843"
