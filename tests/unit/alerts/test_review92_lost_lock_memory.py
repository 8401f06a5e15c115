"""Review 92: what a term that lost the alerts lock remembered of silence, merged with
PostgreSQL's memory at the next load (services/alerts/silence_memory.py ``merged``), and
the role each service exports (``egov_alerts_active``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry

from services.alerts.conditions import Blind
from services.alerts.directory import UnitDirectory
from services.alerts.service import AlertsService
from services.alerts.settings import AlertsSettings
from services.alerts.silence_memory import Heard, SilenceMemory, merged
from services.common.calendar import HOLIDAYS_FILE, load_calendar

T0 = datetime(2026, 12, 14, 2, 0, tzinfo=UTC)
WRITTEN = Blind(T0, T0 + timedelta(minutes=3), frozenset({"c1"}))
"""A worker outage's span the last flush wrote to PostgreSQL."""
UNWRITTEN = Blind(T0 + timedelta(minutes=10), T0 + timedelta(minutes=11))
"""One that ended after the last flush: in the lost term's memory only."""
QUIET = Blind(T0, T0 + timedelta(minutes=5), frozenset({"19"}), "19", "documents")


def heard(quiet: bool) -> dict[tuple[str, str], Heard]:
    return {("19", "documents"): Heard(T0, 3600.0, quiet)}


def test_a_span_not_yet_flushed_joins_what_postgresql_holds() -> None:
    stored = SilenceMemory((WRITTEN,), (QUIET,), heard(True), T0 + timedelta(minutes=8))
    term = SilenceMemory((WRITTEN, UNWRITTEN), (QUIET,), heard(False), T0 + timedelta(minutes=11))
    both = merged(stored, term)
    assert both is not None
    assert both.blind == (WRITTEN, UNWRITTEN)  # each once: the flushed one is in both
    assert both.quiet == (QUIET,)
    assert both.heard == heard(False) and both.until == T0 + timedelta(minutes=11)


def test_spans_decoded_from_postgresql_are_the_same_spans_not_duplicates() -> None:
    term = SilenceMemory((WRITTEN, UNWRITTEN), (QUIET,), {}, T0 + timedelta(minutes=11))
    stored = SilenceMemory.decode(SilenceMemory((WRITTEN,), (QUIET,), {}, T0).encode())
    both = merged(stored, term)
    assert both is not None
    assert both.blind == (WRITTEN, UNWRITTEN) and both.quiet == (QUIET,)


def test_the_later_memory_gives_the_provinces_state_whichever_side_it_is() -> None:
    # Another service held the lock meanwhile and wrote a newer memory than our term's.
    newer = SilenceMemory((WRITTEN,), (), heard(True), T0 + timedelta(hours=1))
    older = SilenceMemory((UNWRITTEN,), (), heard(False), T0 + timedelta(minutes=11))
    for first, second in ((newer, older), (older, newer)):
        both = merged(first, second)
        assert both is not None
        assert set(both.blind) == {WRITTEN, UNWRITTEN}
        assert both.heard == heard(True) and both.until == newer.until
    undated = SilenceMemory((UNWRITTEN,), (), heard(False), None)
    for first, second in ((undated, newer), (newer, undated)):
        both = merged(first, second)
        assert both is not None and set(both.blind) == {WRITTEN, UNWRITTEN}
        assert both.heard == heard(True) and both.until == newer.until


def test_nothing_to_merge_is_what_there_is() -> None:
    memory = SilenceMemory((WRITTEN,), (), {}, T0)
    assert merged(None, None) is None
    assert merged(memory, None) is memory and merged(None, memory) is memory


def test_the_role_is_exported_as_egov_alerts_active(tmp_path: Path) -> None:
    svc = AlertsService(
        AlertsSettings(alert_state_file=tmp_path / "state.json"),
        directory=UnitDirectory([]),
        calendar=load_calendar(HOLIDAYS_FILE),
        families={},
    )
    registry: CollectorRegistry = svc.metrics_registry
    assert registry.get_sample_value("egov_alerts_active") == 0.0
    svc.role = "active"
    assert registry.get_sample_value("egov_alerts_active") == 1.0
    svc.role = "standby"
    assert registry.get_sample_value("egov_alerts_active") == 0.0
