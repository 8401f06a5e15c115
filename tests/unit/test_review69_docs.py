"""Review 69: the docs today's commits (0bf7c9e..4e7f90c) added or changed, read against
the code as it is now. Each test was a strict xfail (all fixed 2026-12-06): a statement in
README.md, docs/*.md or schemas/CONTRACT.md that was false, stale or missing, asserting
what the fixed doc says.

1. docs/wall.md, "Silent units": the never-heard rule is "its peer rule at the default
   `EGOV_ALERT_SILENT_PEER_SHARE`, `PEER_SHARE` in services/wall/overview.py". Since
   488fa89 the wall reads ``EGOV_WALL_SILENT_PEER_SHARE`` (else the pager's
   ``EGOV_ALERT_SILENT_PEER_SHARE``), not a copy of the default.
2. docs/wall.md, Tests: test_never_heard.py checks "a province of 92 communes under 50 ms
   a page". The file times nothing.
3. README.md, ``make test``: the Kafka run is "`EGOV_TEST_BROKER=kafka .venv/bin/pytest -m
   uses_broker`"; since 0ce385d it is ``-m 'uses_broker or beside_kafka'``
   (tests/both_brokers.py ``KAFKA_RUN``): the command quoted leaves out the alerts,
   dashboards and wall integration suites and test_deploy.py, which now run only there.
   (Since 2026-12-06 those run in the third run, and the Kafka run is ``-m uses_broker``
   again: the test checks the README quotes whichever the code has.)
4. schemas/CONTRACT.md §4: "4xx: the request is wrong ... Do not retry unchanged; except
   429". The new 408 ``body-too-slow`` (a stalled upload; its detail says "send the
   request again") is a 4xx an integrator is told not to retry.
5. docs/metrics.md, Settings: ``EGOV_METRICS_METADATA_MAX_AGE_S`` (added today) is not in
   the settings list.
6. docs/metrics.md: each ``data.*`` path is "checked against its event type's schemas in
   `schemas/events`"; since 2d932f9 it is checked against the contract the service loads
   (``EGOV_SCHEMAS_DIR``/events), a setting no doc names.
7. docs/metrics.md, "No poison batch": "~0.08 µs a record (... 1.03 M against 0.93-0.95 M
   single-event records/s)". Those figures give 0.08-0.10 µs.
8. docs/alerts.md, working time: a year the file does not list gets "lunar Tết, the Hùng
   Kings' day, 1/1, 30/4, 1/5, 2/9 and their substitutes". The ``holidays`` library the
   code uses also gives the day next to 2/9 and Vietnam Culture Day (24/11): 2028-09-01
   and 2028-11-24 are days off.
9. docs/runbooks.md, Restore: "Stop the metrics workers and the alerts service, restore
   (`pg_restore --clean --if-exists ...`)". Ingest stays up and looks keys up in
   ``ingest_api_keys``, which pg_restore drops, creates empty and then fills, each
   step in a transaction of its own. In between, live publishers get 401 or 503.
10. docs/runbooks.md, Restore: it warns only about alerts. Keys revoked (and operators,
    overrides changed) after the backup come back as they were then: a revoked key is
    accepted again.
11. docs/runbooks.md, Back up: `pg_dump ... "$DATABASE_URL"` "from a host that can reach
    it". In the shipped topology (docker-compose.yml) PostgreSQL publishes no port, its
    DATABASE_URL names the compose host ``postgres``, and the egov image has no pg_dump:
    no command given works there.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text("utf-8")
WALL_MD = (REPO / "docs" / "wall.md").read_text("utf-8")
ALERTS_MD = (REPO / "docs" / "alerts.md").read_text("utf-8")
METRICS_MD = (REPO / "docs" / "metrics.md").read_text("utf-8")
RUNBOOKS_MD = (REPO / "docs" / "runbooks.md").read_text("utf-8")
CONTRACT_MD = (REPO / "schemas" / "CONTRACT.md").read_text("utf-8")


def _flat(text: str) -> str:
    """Markdown prose with its line breaks and runs of spaces as single spaces."""
    return re.sub(r"\s+", " ", text)


def _section(text: str, heading: str) -> str:
    """From ``heading`` to the next heading of the same or a higher level."""
    start = text.index(heading)
    level = len(heading) - len(heading.lstrip("#"))
    rest = text[start + len(heading) :]
    ends = [m.start() for m in re.finditer(rf"^#{{1,{level}}} ", rest, re.M)]
    return heading + (rest[: ends[0]] if ends else rest)


# --- 1. docs/wall.md: the never-heard units' peer share -----------------------------


def test_wall_md_never_heard_rule_names_the_wall_s_peer_share_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.wall.settings import WallSettings

    # The code: the pager's setting, not its default, decides (0.9 here, not 0.5).
    monkeypatch.setenv("EGOV_ALERT_SILENT_PEER_SHARE", "0.9")
    monkeypatch.delenv("EGOV_WALL_SILENT_PEER_SHARE", raising=False)
    assert WallSettings().wall_silent_peer_share == 0.9
    flat = _flat(WALL_MD)
    start = flat.index("A unit that never sent anything has no figure")
    paragraph = flat[start : flat.index("its UnitSilent fired and the wall listed", start)]
    assert "`PEER_SHARE` in services/wall/overview.py" not in paragraph
    assert "EGOV_WALL_SILENT_PEER_SHARE" in paragraph


# --- 2. docs/wall.md: a timing the test does not check ---------------------------------


def test_wall_md_claims_no_timing_test_never_heard_does_not_make() -> None:
    test_file = (REPO / "tests" / "unit" / "wall" / "test_never_heard.py").read_text("utf-8")
    times = any(w in test_file for w in ("perf_counter", "monotonic", "time.time", "timeit"))
    assert times or "under 50 ms" not in _flat(WALL_MD)


# --- 3. README.md: the Kafka run's command -------------------------------------------


def test_readme_quotes_the_kafka_run_s_marker_expression() -> None:
    from tests.both_brokers import ALONE_RUN, KAFKA_RUN

    flat = _flat(README)
    assert f"EGOV_TEST_BROKER=kafka .venv/bin/pytest -m {KAFKA_RUN}`" in flat
    assert f"`-m '{ALONE_RUN}'`" in flat
    assert "beside_kafka" not in flat


# --- 4. schemas/CONTRACT.md: a 4xx that should be retried ----------------------------


def test_contract_says_a_408_is_retried() -> None:
    from services.ingest import problems

    assert "send the request again" in problems.body_too_slow(30.0).detail
    section = _section(CONTRACT_MD, "## 4. Sending over HTTP")
    assert "408" in section


# --- 5. docs/metrics.md: the settings list --------------------------------------------


def test_metrics_md_settings_list_the_metadata_max_age() -> None:
    from services.metrics.settings import MetricsSettings

    assert MetricsSettings.model_fields["metrics_metadata_max_age_s"].default == 30.0
    assert "EGOV_METRICS_METADATA_MAX_AGE_S" in _section(METRICS_MD, "## Settings")


# --- 6. docs/metrics.md: which schemas the catalogue is checked against -------------


def test_metrics_md_catalogue_check_names_the_schemas_setting() -> None:
    from services.metrics.settings import MetricsSettings

    assert "schemas_dir" in MetricsSettings.model_fields
    flat = _flat(METRICS_MD)
    start = flat.index("A broken catalogue stops the services")
    bullet = flat[start : flat.index("Event time decides the window", start)]
    assert "EGOV_SCHEMAS_DIR" in bullet


# --- 7. docs/metrics.md: the unpacking adapter's cost ---------------------------------


def test_metrics_md_unpacking_cost_matches_its_own_figures() -> None:
    low = 1e6 / 0.95e6 - 1e6 / 1.03e6
    high = 1e6 / 0.93e6 - 1e6 / 1.03e6
    assert round(low, 2) == 0.08 and round(high, 2) == 0.10
    flat = _flat(METRICS_MD)
    assert "1.03 M against 0.93-0.95 M" in flat
    assert "costs ~0.08 µs a record" not in flat


# --- 8. docs/alerts.md: the law's days off --------------------------------------------


def test_alerts_md_lists_every_law_day_off_the_fallback_gives() -> None:
    from services.common.calendar import HOLIDAYS_FILE, load_calendar

    calendar = load_calendar(HOLIDAYS_FILE, today=date(2026, 12, 6))
    assert not calendar.is_working_day(date(2028, 11, 24))  # a Friday
    assert not calendar.is_working_day(date(2028, 9, 1))  # a Friday
    flat = _flat(ALERTS_MD)
    start = flat.index("A year the file does not list")
    sentence = flat[start : flat.index("from the `holidays` library", start)]
    assert "24/11" in sentence
    assert "1/9" in sentence or "3/9" in sentence or "adjacent" in sentence


# --- 9-11. docs/runbooks.md: backups ---------------------------------------------------


def _backups() -> str:
    return _flat(_section(RUNBOOKS_MD, "## Backups (PostgreSQL)"))


def test_runbook_restore_stops_ingest_or_restores_in_one_transaction() -> None:
    text = _backups()
    restore = text[text.index("**Restore.**") :]
    stop = restore[: restore.index("pg_restore")]
    assert "ingest" in stop or "--single-transaction" in restore


def test_runbook_restore_warns_revoked_keys_come_back() -> None:
    text = _backups()
    restore = text[text.index("**Restore.**") :]
    assert "revoked" in restore or "revoke" in restore


def test_runbook_backup_works_in_the_compose_topology() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text("utf-8"))
    postgres = compose["services"]["postgres"]
    assert "ports" not in postgres and postgres["image"].startswith("postgres:")
    assert "@postgres:5432/" in (REPO / "docker-compose.yml").read_text("utf-8")
    assert "docker compose exec" in _backups()
