"""The exported series, read back with Prometheus' own text parser; and the JSON API items."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.common.tally import Deltas
from services.common.targets import Override, Scope
from services.metrics import api
from services.metrics.exposition import LAG_BUCKETS, LagHistogram, PipelineMetrics
from services.metrics.figures import Figures, PartitionFigures
from services.metrics.kpitext import KpiText
from services.metrics.periods import Periods
from services.metrics.targets import Targets
from tests.unit.metrics.helpers import catalogue, contract, registry
from tests.unit.metrics.test_figures import c

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
TP = ("egov.documents", 0)


def scrape(figures: Figures, targets: Targets, now: datetime = NOW) -> dict[str, dict]:  # type: ignore[type-arg]
    reg = CollectorRegistry()
    PipelineMetrics(reg, sorted(contract().event_types))
    text = KpiText(figures, registry(), targets, lambda: now).render()
    text += generate_latest(reg).decode()
    samples: dict[str, dict] = {}  # type: ignore[type-arg]
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return samples


def populated() -> Figures:
    figures = Figures()
    figures.assign(TP, PartitionFigures())
    figures.apply(TP, Deltas.of([c(NOW), c(NOW), c(NOW, 0)]), Periods.at(NOW))
    return figures


def key(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def test_kpi_series_for_every_window_unit_and_ancestor() -> None:
    samples = scrape(populated(), Targets(catalogue()))
    for unit in ("01843", "19"):
        for window in ("1h", "day", "month", "year"):
            k = key(kpi="document_signing", unit=unit, window=window)
            assert samples["egov_kpi_numerator"][k] == 2
            assert samples["egov_kpi_denominator"][k] == 3
            assert abs(samples["egov_kpi_ratio"][k] - 2 / 3) < 1e-9
        total = key(kpi="document_signing", unit=unit)
        assert samples["egov_kpi_numerator_total"][total] == 2
        assert samples["egov_kpi_denominator_total"][total] == 3
    # data/targets.json: every signable document signed, at every level (docs/targets.md)
    assert samples["egov_kpi_target_ratio"][key(kpi="document_signing", unit="01843")] == 1.0
    assert samples["egov_kpi_target_ratio"][key(kpi="document_signing", unit="19")] == 1.0
    info = samples["egov_unit_info"]
    assert info[key(unit="01843", name="Phường Bắc Kạn", level="commune", parent="19")] == 1
    assert (
        samples["egov_unit_last_event_timestamp_seconds"][key(unit="19", family="documents")]
        == NOW.timestamp()
    )


def test_counters_known_in_advance_are_exported_as_zero() -> None:
    samples = scrape(Figures(), Targets(catalogue()))
    for event_type in contract().event_types:
        assert samples["egov_events_processed_total"][key(type=event_type)] == 0
        assert samples["egov_events_too_late_total"][key(type=event_type)] == 0
    assert "egov_kpi_ratio" not in samples  # nothing owned, nothing exported


def test_no_ratio_without_denominator_after_midnight() -> None:
    after_midnight = datetime(2026, 11, 23, 17, 0, 5, tzinfo=UTC)
    samples = scrape(populated(), Targets(catalogue()), after_midnight)
    day = key(kpi="document_signing", unit="19", window="day")
    assert samples["egov_kpi_denominator"][day] == 0
    assert day not in samples.get("egov_kpi_ratio", {})
    assert samples["egov_kpi_denominator"][key(kpi="document_signing", unit="19", window="month")]


def test_an_override_beats_the_catalogue_target() -> None:
    targets = Targets(catalogue(), registry())
    province = Override(Scope(province="19"), "document_signing", 5000)
    targets.overrides = [province, Override(Scope(unit="19"), "document_signing", 7000)]
    samples = scrape(populated(), targets)
    assert samples["egov_kpi_target_ratio"][key(kpi="document_signing", unit="19")] == 0.7
    targets.overrides = [province]
    samples = scrape(populated(), targets)
    assert samples["egov_kpi_target_ratio"][key(kpi="document_signing", unit="19")] == 0.5


def test_json_items_carry_names_targets_and_volume_rule() -> None:
    query = api.KpiQuery.parse({"unit": ["01843"], "window": ["day", "1h"]}, catalogue())
    items = api.kpi_items(query, populated(), registry(), Targets(catalogue()), Periods.at(NOW))
    assert [i["window"] for i in items] == ["day", "1h"]
    item = items[0]
    assert item["unit_name"] == "Phường Bắc Kạn" and item["province"] == "19"
    assert (item["numerator"], item["denominator"], item["target"]) == (2, 3, 1.0)
    assert item["meets_target"] is None  # 3 documents is below min_volume (20)
    assert item["period_start"] == "2026-11-23T00:00:00+07:00"
    provinces = api.KpiQuery.parse({"level": ["province"]}, catalogue())
    items = api.kpi_items(provinces, populated(), registry(), Targets(catalogue()), Periods.at(NOW))
    assert {i["unit"] for i in items} == {"19"}


def test_a_bad_window_is_refused_clearly() -> None:
    try:
        api.KpiQuery.parse({"window": ["week"]}, catalogue())
    except api.QueryError as exc:
        assert "week" in str(exc)
    else:
        raise AssertionError("a week window was accepted")


@given(
    st.lists(st.floats(min_value=0, max_value=5000, allow_nan=False) | st.sampled_from(LAG_BUCKETS))
)
def test_lag_histogram_buckets_as_prometheus_client_does(values: list[float]) -> None:
    ours = LagHistogram("egov_test_lag_seconds", "test", LAG_BUCKETS)
    ours.observe_many(values[: len(values) // 2])
    ours.observe_many(values[len(values) // 2 :])  # two flushes add up
    registry = CollectorRegistry()
    theirs = Histogram("egov_test_lag_seconds", "test", buckets=LAG_BUCKETS, registry=registry)
    for value in values:
        theirs.observe(value)
    expected = {
        (s.name, s.labels.get("le")): s.value
        for metric in registry.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }
    got = {
        (s.name, s.labels.get("le")): s.value
        for metric in ours.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value), key


def test_a_scrape_in_pieces_is_one_snapshot_of_the_figures() -> None:
    figures = populated()
    text = KpiText(figures, registry(), Targets(catalogue()), lambda: NOW)
    whole = text.render()
    pieces = text.chunks(size=200)
    first = next(pieces)
    # A flush lands while the scrape is being sent: what is sent is still the snapshot.
    figures.apply(TP, Deltas.of([c(NOW), c(NOW, 0)]), Periods.at(NOW))
    rest = list(pieces)
    assert len(rest) > 3  # pieces of about 200 bytes
    assert b"".join([first, *rest]).decode() == whole
    assert text.render() != whole  # the next scrape shows the flush
