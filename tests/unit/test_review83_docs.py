"""Review 83: the docs today's commits (d284f46..fdd9bd2) added or changed, read against
the code as it is now. Each strict xfail is a statement in README.md, docs/*.md or a
deploy file's comment that is false, or a behaviour added today that no doc states; the
test asserts what the fixed doc or code would make true. The passing tests pin a few
statements checked and found right.

1. docs/ingest.md, "Overload and slow clients" (and README's settings table): after
   SIGTERM ingest gives requests ``EGOV_SHUTDOWN_GRACE_S`` (15 s), "below an
   orchestrator's usual 30 s before SIGKILL", then answers the rest 503
   ``shutting-down``. The shipped orchestrator is docker-compose.yml, whose ``ingest``
   has no ``stop_grace_period``: Docker's default, 10 s, kills ingest 5 s before its
   grace ends, so no 503 ``shutting-down`` is sent and the producer is never stopped
   (the metrics workers have ``stop_grace_period: 30s``; ingest does not).
2. docs/security.md, "A hostile operator": "The command line (``keys``, ``operators``,
   ``targets``) prints what it was given back to the terminal only escaped". ``operators
   create NAME`` and ``operators revoke NAME`` print the name as given
   (services/alerts/cli.py ``_operators``): a line break in it is a line of its own.
3. Same statement, ``keys``: ``keys sources N --sources PREFIXES`` takes a prefix holding
   a line break (services/ingest/keys.py ``check_sources`` refuses only spaces and
   empties) and prints it raw, as ``keys list`` does with every stored prefix
   (services/ingest/keycli.py ``_sources``, ``_list``).
4. docs/security.md: "when PostgreSQL does not answer it names the host:port of
   ``DATABASE_URL``, never its user or password" (services/common/pgconnect.py says the
   same). ``DatabaseDown`` scrubs the password only; asyncpg's authentication errors
   name the user (``password authentication failed for user "alice"``), and the line
   printed carries it.
5. docs/alerts.md, *Ingest away*: the pipeline is blind while the service "cannot read
   its ``/metrics``, ``EGOV_INGEST_URL``". An empty ``EGOV_INGEST_URL`` (allowed: "empty
   still turns off ... ``EGOV_INGEST_URL``") turns this off as well
   (services/alerts/pipeline.py ``IngestWatch.blind``: ingest not watched is never
   blind), so every unit pages UnitSilent through an ingest outage again; neither the
   section nor the setting's docstring (services/alerts/settings.py, "feeds
   IngestRejectionsHigh") says so.

All five fixed 2026-12-06: docker-compose.yml gives ingest a 30 s stop grace and the docs
say it must exceed EGOV_SHUTDOWN_GRACE_S; ``operators`` echoes the name escaped; ``keys``
refuses control characters in a source prefix and lists escaped; ``DatabaseDown`` masks
the role PostgreSQL names; the docs say an empty ``EGOV_INGEST_URL`` turns *Ingest away*
off.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import pytest
import yaml

if TYPE_CHECKING:
    import asyncpg

# The docs as review 69 reads them, and its helpers: one reading of the same files.
from tests.unit.test_review69_docs import ALERTS_MD, README, REPO, _flat, _section

INGEST_MD = (REPO / "docs" / "ingest.md").read_text("utf-8")
SECURITY_MD = (REPO / "docs" / "security.md").read_text("utf-8")
TARGETS_MD = (REPO / "docs" / "targets.md").read_text("utf-8")
COMPOSE = REPO / "docker-compose.yml"

DOCKER_STOP_GRACE_S = 10.0
"""What docker-compose waits after SIGTERM before SIGKILL when a service sets no
``stop_grace_period`` (Docker's default)."""


def _seconds(text: str) -> float:
    """A compose duration (``30s``, ``1m30s``, ``500ms``) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", text)
    assert parts, text
    return sum(float(n) * units[u] for n, u in parts)


# --- 1. ingest's stop grace against the shipped orchestrator's -------------------------


def test_ingest_md_and_readme_state_the_grace_against_the_containers_stop_grace() -> None:
    stop = _flat(_section(INGEST_MD, "## Overload and slow clients"))
    assert "below the container's stop grace before SIGKILL, which must be longer" in stop
    assert "below the container's stop grace: 30 s in docker-compose.yml" in _flat(README)


def test_compose_gives_ingest_longer_than_its_shutdown_grace() -> None:
    from services.ingest.settings import IngestSettings

    grace = IngestSettings.model_fields["shutdown_grace_s"].default
    services = yaml.safe_load(COMPOSE.read_text("utf-8"))["services"]
    given = services["ingest"].get("stop_grace_period")
    stop_s = DOCKER_STOP_GRACE_S if given is None else _seconds(str(given))
    # The grace, then the producer's stop and the process's exit, before SIGKILL.
    assert stop_s > grace, f"ingest is SIGKILLed {stop_s:g} s after SIGTERM; its grace is {grace} s"


# --- 2. operators create/revoke echo the name as given ----------------------------------


def _printed_by_operators(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], action: str, name: str
) -> str:
    from services.alerts import cli

    def no_database(work: Any) -> Any:
        return "egop_token-shown-once" if action == "create" else None

    monkeypatch.setattr(cli, "_with_db", no_database)
    args = argparse.Namespace(action=action, name=name, provinces="19", national=False)
    assert cli._operators(args) == 0
    return capsys.readouterr().out


def test_security_md_says_the_command_line_echoes_only_escaped() -> None:
    said = _flat(SECURITY_MD)
    assert (
        "The command line (`keys`, `operators`, `targets`) prints what it was given back to "
        "the terminal only escaped"
    ) in said


@pytest.mark.parametrize("action", ["create", "revoke"])
def test_operators_echo_a_name_escaped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], action: str
) -> None:
    out = _printed_by_operators(monkeypatch, capsys, action, "trực ban\nforged\trow")
    assert "trực ban\nforged" not in out, out
    assert "trực ban\\nforged\\trow" in out, out


# --- 3. keys take and print a source prefix with a line break ---------------------------


def test_keys_sources_never_echo_a_line_break_raw(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from services.ingest import keycli

    async def bound(conn: object, name: str, sources: list[str]) -> bool:
        return True

    monkeypatch.setattr(keycli, "bind_sources", bound)
    code = asyncio.run(
        keycli._sources(
            cast("asyncpg.Connection", object()), "tdoffice-38", ["tdoffice/38\nforged"]
        )
    )
    out = capsys.readouterr()
    # Refused (one line on stderr, exit 2, as a prefix with a space), or printed escaped.
    assert code == 2 or "tdoffice/38\nforged" not in out.out, (code, out.out)


# --- 4. PostgreSQL's refusal names the user ---------------------------------------------


def test_database_down_names_host_port_and_hides_the_password() -> None:
    from services.common.pgconnect import DatabaseDown

    down = DatabaseDown(
        "postgresql://alice:s3cret-pw@db.example:5433/egov",
        ConnectionRefusedError(111, "Connect call failed"),
    )
    assert "db.example:5433" in down.refusal()
    assert "s3cret-pw" not in down.refusal()


def test_database_down_never_names_the_user() -> None:
    import asyncpg

    from services.common.pgconnect import DatabaseDown

    assert "never its user or password" in _flat(SECURITY_MD)
    cause = asyncpg.InvalidPasswordError('password authentication failed for user "alice"')
    down = DatabaseDown("postgresql://alice:s3cret-pw@db.example:5433/egov", cause)
    assert "alice" not in down.refusal(), down.refusal()


# --- 5. an empty EGOV_INGEST_URL turns Ingest away off ----------------------------------


def test_an_unwatched_ingest_never_blinds_the_pipeline() -> None:
    from services.alerts.pipeline import IngestWatch

    watch, start = IngestWatch(), datetime(2026, 12, 7, 1, tzinfo=UTC)
    # Not watched (EGOV_INGEST_URL empty): neither down nor read, for as long as it lasts.
    assert not any(watch.blind(False, None, start + timedelta(minutes=m)) for m in range(0, 600))


def test_alerts_md_ingest_away_says_an_empty_ingest_url_turns_it_off() -> None:
    start = ALERTS_MD.index("*Ingest away*")
    section = _flat(ALERTS_MD[start : ALERTS_MD.index("*A province gone quiet*", start)])
    assert re.search(r"EGOV_INGEST_URL`?[^.]*\b(empty|unset)\b", section), section[:400]


# --- statements checked and found right -------------------------------------------------


def test_targets_md_quotes_the_refusal_of_a_district_override() -> None:
    from services.alerts.api import KnownIds
    from services.alerts.http import ApiError

    known = KnownIds.load()
    with pytest.raises(ApiError) as refused:
        known.scope({"province": "19", "level": "district"})
    assert f"`{refused.value}`" in _flat(TARGETS_MD), str(refused.value)
    # An override stored for districts before the reform can still be unset.
    assert known.scope({"province": "19", "level": "district"}, new=False).level == "district"


def test_readme_settings_added_today_match_their_defaults() -> None:
    from services.common.settings import CommonSettings
    from services.ingest.settings import IngestSettings

    fields = {**CommonSettings.model_fields, **IngestSettings.model_fields}
    rows = {
        "`EGOV_HEADER_TIMEOUT_S`, `EGOV_MAX_HEADER_BYTES` | 10, 32768": (
            fields["header_timeout_s"].default == 10.0
            and fields["max_header_bytes"].default == 32768
        ),
        "`EGOV_MAX_INFLIGHT_BYTES` | 8388608": fields["max_inflight_bytes"].default == 8388608,
        "`EGOV_SHUTDOWN_GRACE_S` | 15": fields["shutdown_grace_s"].default == 15,
        "`EGOV_DEAD_LETTER_RETENTION_DAYS` | 90": (
            fields["dead_letter_retention_days"].default == 90
        ),
    }
    for row, right in rows.items():
        assert row in README, row
        assert right, row


def test_dead_letters_commands_take_the_options_ingest_md_lists() -> None:
    from services.cli import build_parser

    parser = build_parser()
    listed = parser.parse_args(
        "dead-letters list --since 6h --reason r --publisher - --province 19 "
        "--source-topic egov.documents --json".split()
    )
    assert listed.json and listed.publisher == "-"
    replayed = parser.parse_args("dead-letters replay --reason r --since 7d --dry-run".split())
    assert replayed.dry_run
    with pytest.raises(SystemExit):  # --reason is required: replay what you fixed
        parser.parse_args("dead-letters replay --since 7d".split())


def test_ingest_md_lists_the_metrics_ingest_added_today() -> None:
    from prometheus_client import CollectorRegistry

    from services.ingest.telemetry import IngestMetrics

    registry = CollectorRegistry()
    IngestMetrics(registry)
    names = {m.name for m in registry.collect()}
    assert {"egov_ingest_inflight_bytes", "egov_ingest_connections_refused"} <= names
    metrics = _flat(_section(INGEST_MD, "## Metrics"))
    assert "`egov_ingest_inflight_bytes`" in metrics
    assert "`egov_ingest_connections_refused_total{reason}`" in metrics
