"""The benchmark report: ratios filled from the run's references, README section replaced."""

from __future__ import annotations

from pathlib import Path

from bench.common import percentile, row
from bench.report import README_END, README_START, fill_references, fmt, update_readme
from bench.soak import slope_per_hour


def test_rows_naming_a_reference_get_its_value_and_ratio() -> None:
    rows = [
        row("references", "aiokafka-producer", 80_000, "msg/s"),
        row("ingest", "throughput", 20_000, "events/s", reference="aiokafka-producer"),
        row("ingest", "p99", 0.02, "s", reference="unknown-reference"),
    ]
    filled = fill_references(rows)
    assert filled[1]["reference_value"] == 80_000
    assert filled[1]["ratio"] == 0.25
    assert filled[2]["reference_value"] is None and filled[2]["ratio"] is None


def test_rows_measured_on_apache_kafka_take_kafka_references() -> None:
    on_kafka = " [Apache Kafka]"
    rows = [
        row("references", "aiokafka-consumer", 500_000, "msg/s"),
        row("references" + on_kafka, "aiokafka-consumer", 1_000_000, "msg/s"),
        row("metrics", "replay", 100_000, "events/s", reference="aiokafka-consumer"),
        row("metrics" + on_kafka, "replay", 100_000, "events/s", reference="aiokafka-consumer"),
    ]
    filled = fill_references(rows)
    assert filled[2]["reference_value"] == 500_000 and filled[2]["ratio"] == 0.2
    assert filled[3]["reference_value"] == 1_000_000 and filled[3]["ratio"] == 0.1


def test_row_computes_its_ratio_and_none_without_reference() -> None:
    assert row("x", "y", 5, "s", reference="r", reference_value=10)["ratio"] == 0.5
    assert row("x", "y", 5, "s", reference="r", reference_value=0)["ratio"] is None


def test_readme_markers_are_appended_once_then_replaced(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# title\n\ntext\n")
    update_readme(readme, f"{README_START}\nfirst\n{README_END}")
    update_readme(readme, f"{README_START}\nsecond\n{README_END}")
    text = readme.read_text()
    assert text.startswith("# title\n\ntext\n")
    assert text.count(README_START) == 1 and "second" in text and "first" not in text


def test_figures_are_formatted_for_readers() -> None:
    assert fmt(None) == "—"
    assert fmt(87_123.4) == "87,123"
    assert fmt(1.50) == "1.5"
    assert fmt(0.01234) == "0.0123"


def test_percentile_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile([], 99) == 0.0


def test_memory_slope_is_per_hour() -> None:
    minutes = [0.0, 10.0, 20.0, 30.0]
    assert slope_per_hour(minutes, [100.0, 100.0, 100.0, 100.0]) == 0.0
    assert round(slope_per_hour(minutes, [100.0, 101.0, 102.0, 103.0]), 6) == 6.0
