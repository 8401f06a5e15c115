"""Review 53 (fixed 2026-12-05): `make up` as a new user reads README.md, with its
Prometheus and Alertmanager. Running `egov-pulse up` for ten minutes showed:

- EgovAcceptedNotCounted never evaluated: increase() drops the metric name, and a
  worker's processed, duplicate and too-late counters of one type collided in one
  vector ("vector cannot contain metrics with the same labelset", every 30 s). The
  promtool tests put each counter on another instance, which hid it.
- On-call was paged for every province within two minutes: the simulator's normal units
  publish realistic electronic-result (60-90 %) and population-data (50-80 %) rates, and
  the targets of both are project defaults of 100 % (data/targets.json), which no
  authority set. Such a target now gives at most a warning (a ticket), never a page.
- The banner's Prometheus link answered 404 on Debian's Prometheus (no React UI): it is
  the root now (tests/integration/test_make_up.py follows it).
"""

# ruff: noqa: E501  (promtool test input: one series per line, as promtool reads it)

from __future__ import annotations

import subprocess
from datetime import date
from pathlib import Path

from services.alerts.conditions import below_target_severity
from services.common.figures import Figure, TargetBasis
from services.common.targetdata import TargetData
from services.simulator.profiles import NORMAL_RANGES
from tests.binaries import require

REPO = Path(__file__).resolve().parents[2]

ACCEPTED_NOT_COUNTED_TEST = """
rule_files:
  - {rules}
evaluation_interval: 30s
tests:
  - name: one worker, as `make up` and production run it, stops counting
    interval: 1m
    input_series:
      - series: 'egov_ingest_events_total{{job="ingest",outcome="accepted",type="vn.egov.document.issued"}}'
        values: '0+10x40'
      # What a real worker exports: every counter of the family with the same labels
      # (job, instance, type). It counted for 10 minutes, then stopped.
      - series: 'egov_events_processed_total{{job="metrics",instance="127.0.0.1:8081",type="vn.egov.document.issued"}}'
        values: '0+10x10 100x30'
      - series: 'egov_events_duplicate_total{{job="metrics",instance="127.0.0.1:8081",type="vn.egov.document.issued"}}'
        values: '0+1x10 10x30'
      - series: 'egov_events_too_late_total{{job="metrics",instance="127.0.0.1:8081",type="vn.egov.document.issued"}}'
        values: '0x40'
    alert_rule_test:
      - eval_time: 8m
        alertname: EgovAcceptedNotCounted
        exp_alerts: []
      - eval_time: 35m
        alertname: EgovAcceptedNotCounted
        exp_alerts:
          - exp_labels:
              severity: critical
              service: pipeline
            exp_annotations:
              summary_vi: "Ingest đã nhận 100 bản tin trong 10 phút qua nhưng không bản tin nào được đếm."
              summary_en: "Ingest accepted 100 events over the last 10 min and none was counted."
              runbook: docs/runbooks.md#egovacceptednotcounted
"""


def test_accepted_not_counted_fires_for_a_worker_exporting_every_counter(
    tmp_path: Path,
) -> None:
    promtool = require("promtool")
    test_file = tmp_path / "accepted-not-counted.test.yml"
    rules = REPO / "deploy/prometheus/rules/egov-health.yml"
    test_file.write_text(ACCEPTED_NOT_COUNTED_TEST.format(rules=rules), "utf-8")
    result = subprocess.run(
        [str(promtool), "test", "rules", str(test_file)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _figure(kpi: str, rate: float, target_bp: int, basis: TargetBasis) -> Figure:
    """A province-sized figure at ``rate``: thousands of dossiers, far above any minimum."""
    denominator = 10_000
    return Figure(
        kpi=kpi, unit="19", window="month", numerator=round(rate * denominator),
        denominator=denominator, target_bp=target_bp, min_volume=30, target_basis=basis,
    )  # fmt: skip


def test_a_normal_simulated_unit_is_never_paged_on_a_target_no_authority_set() -> None:
    """Every normal range's lowest rate, against today's default target of its KPI: a
    project default gives at most a warning; a cited target still pages."""
    targets = TargetData.load()
    today = date.today()
    judged = 0
    for kpi, (low, _high) in NORMAL_RANGES.items():
        entry = targets.default(kpi, today)
        if entry is None:
            continue  # a rate that is not a KPI (document_classified, dossier_full_share)
        basis = TargetBasis("default", entry.source.id)
        for level, target_bp in entry.target_bp.items():
            severity = below_target_severity(_figure(kpi, low, target_bp, basis))
            if not entry.source.national:
                assert severity != "critical", (kpi, level, low, target_bp)
            judged += 1
    assert judged
    # The same gap against a target an authority set (or a province's override) pages.
    cited = TargetBasis("default", "ct-02-2019-vpcp-2020")
    assert below_target_severity(_figure("document_signing", 0.8, 10_000, cited)) == "critical"
    override = TargetBasis("province")
    assert (
        below_target_severity(_figure("dossier_electronic_result", 0.6, 10_000, override))
        == "critical"
    )
