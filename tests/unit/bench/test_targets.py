"""The report's targets table (issue 18): rows of one run in, each target judged per broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.common import KAFKA_SUFFIX, Row, row
from bench.report import (
    MET,
    NOT_MEASURED,
    NOT_MET,
    TARGETS,
    Figure,
    Outcome,
    Run,
    Target,
    judge,
    judge_all,
    readme_section,
    render,
    targets_section,
)

SPEED = Target(
    "one event per message",
    Figure("metrics", "one event per message"),
    Figure("references", "faust-noop"),
    at_least=4.0,
)
REPLAY = Target("backlog replay", Figure("metrics", "backlog replay"), at_least=0.4)
LIVE = Target("live p99", Figure("metrics", "live p99"), under=1.0, unit="s")


def a_run(kafka: bool = True) -> list[Row]:
    """Every row the issue's targets read, on tansu and (with ``kafka``) on Apache Kafka;
    on Kafka the figures are slower, and the peers module did not run there."""
    rows = [
        row("references", "faust-noop", 10_000, "msg/s"),
        row("metrics", "one event per message", 45_000, "events/s"),
        row(
            "metrics",
            "backlog replay",
            500_000,
            "events/s",
            reference="raw aiokafka consumer, same topics (ceiling)",
            reference_value=1_000_000,
        ),
        row(
            "metrics",
            "counting pipeline in-process vs ceiling",
            800_000,
            "events/s",
            reference="orjson decode-and-dict (ceiling)",
            reference_value=1_000_000,
        ),
        row("metrics", "worker RSS, all units populated", 250, "MiB"),
        row("metrics", "live p99 ingest 202 -> /metrics", 0.4, "s"),
        row("metrics", "failover after SIGKILL", 8.4, "s", reference="issue 4 target"),
        row("peers", "ours: document_signing throughput", 45_000, "events/s"),
        row("peers", "quix: document_signing throughput", 30_000, "events/s"),
    ]
    if kafka:
        rows += [
            row("references" + KAFKA_SUFFIX, "faust-noop", 20_000, "msg/s"),
            row("metrics" + KAFKA_SUFFIX, "one event per message", 45_000, "events/s"),
            row("metrics" + KAFKA_SUFFIX, "worker RSS, all units populated", 290, "MiB"),
            row("metrics" + KAFKA_SUFFIX, "failover after SIGKILL", 16, "s"),
        ]
    return rows


def verdicts(rows: list[Row]) -> dict[tuple[str, str], str]:
    return {(v.broker, v.target.name): v.status for v in judge_all(rows)}


def test_every_target_met_on_tansu_is_said_met() -> None:
    on_tansu = {name: status for (broker, name), status in verdicts(a_run()).items()}
    assert len(on_tansu) == len(TARGETS)
    assert set(verdicts(a_run(kafka=False)).values()) == {MET}


def test_a_ratio_across_modules_takes_the_reference_of_the_same_broker() -> None:
    rows = a_run()
    tansu, kafka = judge(SPEED, rows, "tansu"), judge(SPEED, rows, "Apache Kafka")
    assert (tansu.ratio, tansu.status) == (4.5, MET)  # 45,000 / tansu's faust-noop 10,000
    assert (kafka.ratio, kafka.status) == (2.25, NOT_MET)  # / Kafka's faust-noop 20,000
    assert kafka.reference == "references: faust-noop"
    assert kafka.measured is not None and kafka.measured["value"] == 20_000


def test_a_ratio_against_the_reference_its_row_carries() -> None:
    verdict = judge(REPLAY, a_run(), "tansu")
    assert (verdict.ratio, verdict.status) == (0.5, MET)
    assert verdict.reference == "raw aiokafka consumer, same topics (ceiling)"


def test_the_target_is_the_bound_a_ratio_just_under_it_is_not_met() -> None:
    rows = [
        row("references", "faust-noop", 10_000, "msg/s"),
        row("metrics", "one event per message", 39_999, "events/s"),
    ]
    assert judge(SPEED, rows, "tansu").status == NOT_MET
    rows[1] = row("metrics", "one event per message", 40_000, "events/s")
    assert judge(SPEED, rows, "tansu").status == MET
    rows.append(row("metrics", "live p99", 1.0, "s"))
    assert judge(LIVE, rows, "tansu").status == NOT_MET  # under 1 s: 1 s is not under


def test_a_ratio_is_shown_cut_not_rounded_so_it_never_looks_met_when_it_is_not() -> None:
    rows = [
        row("references", "faust-noop", 10_000, "msg/s"),
        row("metrics", "one event per message", 39_999, "events/s"),
    ]
    line = next(line for line in targets_section(rows).splitlines() if "faust-noop" in line)
    assert "| 3.999 |" in line and NOT_MET in line


def test_a_missing_row_or_reference_is_not_measured_and_named() -> None:
    rows = [r for r in a_run() if r["metric"] != "quix: document_signing throughput"]
    rows = [r for r in rows if not r["metric"].startswith("live p99")]
    peers = judge(TARGETS[0], rows, "tansu")
    assert peers.status == NOT_MEASURED and peers.ratio is None
    assert peers.missing == "no row `peers: quix: document_signing throughput`"
    live = next(v for v in judge_all(rows) if v.target.name.startswith("live p99"))
    assert live.status == NOT_MEASURED
    assert live.missing == "no row `metrics: live p99 ingest 202 -> /metrics`"
    carried = [row("metrics", "backlog replay", 500_000, "events/s", reference="ceiling")]
    assert judge(REPLAY, carried, "tansu").status == NOT_MEASURED  # its value never came


def test_rows_missing_on_one_broker_only_leave_that_broker_not_measured() -> None:
    on_kafka = {name: s for (broker, name), s in verdicts(a_run()).items() if broker != "tansu"}
    assert on_kafka == {
        "one event per message, peers benchmark": NOT_MEASURED,  # peers not run on Kafka
        "one event per message": NOT_MET,
        "backlog replay": NOT_MEASURED,
        "in-process counting": NOT_MEASURED,
        "worker RSS at 10,000 units": NOT_MET,  # 290 MiB is over 300 MB (286.1 MiB)
        "live p99, ingest's 202 to /metrics": NOT_MEASURED,
        "failover after SIGKILL": NOT_MET,
    }


def test_rows_are_matched_by_module_and_metric_whatever_their_order_case_and_spacing() -> None:
    rows = a_run(kafka=False)[::-1]
    rows = [Row(**{**r, "metric": "  ".join(r["metric"].upper().split())}) for r in rows]
    assert set(verdicts(rows).values()) == {MET}
    # A second peers KPI or a Kafka peers pass adds rows; the signing rows still match.
    rows.append(row("peers", "ours: dossier_rollup throughput", 1, "events/s"))
    rows.append(row("peers" + KAFKA_SUFFIX, "ours: document_signing throughput", 1, "events/s"))
    assert judge(TARGETS[0], rows, "tansu").status == MET
    # Ours' other rates of that KPI are not the target's row: the name is whole.
    only_others = [r for r in rows if r["metric"] != "OURS:  DOCUMENT_SIGNING  THROUGHPUT"]
    only_others.append(row("peers", "ours: document_signing throughput to /v1/kpis", 1, "x"))
    assert judge(TARGETS[0], only_others, "tansu").status == NOT_MEASURED


def test_the_table_says_per_broker_how_many_are_met_and_which_broker_did_not_run() -> None:
    both = targets_section(a_run())
    assert "tansu: 7 of 7 met, 0 not measured." in both
    assert "Apache Kafka: 0 of 7 met, 4 not measured." in both
    alone = targets_section(a_run(kafka=False))
    assert "Not run on Apache Kafka" in alone and "| Apache Kafka |" not in alone
    assert targets_section([]) == "No figures, so no target measured."


def test_the_rss_limit_is_the_issues_300_mb_in_the_rows_mebibytes() -> None:
    line = next(line for line in targets_section(a_run()).splitlines() if "RSS" in line)
    assert "< 300 MB (286.1 MiB)" in line and "250 MiB" in line


def test_a_limit_is_not_judged_on_a_row_in_another_unit() -> None:
    verdict = judge(LIVE, [row("metrics", "live p99", 400, "ms")], "tansu")
    assert verdict.status == NOT_MEASURED
    assert verdict.missing == "the row is in ms, the target in s"


def test_a_target_is_a_ratio_or_a_limit_never_both_or_neither() -> None:
    with pytest.raises(ValueError, match="ratio"):
        Target("both", Figure("m", "x"), at_least=1.0, under=2.0)
    with pytest.raises(ValueError, match="ratio"):
        Target("neither", Figure("m", "x"))


def test_the_report_and_the_readme_show_the_targets_after_the_figures() -> None:
    run = Run(
        "quick", "make bench", "2026-12-04 08:30", 200.0, {}, [Outcome("m", "ok", 1)], a_run()
    )
    report = render(run, [])
    assert report.index("## Figures") < report.index("## Targets (issue 18)")
    assert report.index("## Targets (issue 18)") < report.index("## Modules")
    readme = readme_section(run, Path("/repo/bench/results/x/report.md"))
    assert "tansu: 7 of 7 met" in readme
