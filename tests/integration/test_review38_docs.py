"""Review 38: do the documented commands and HTTP examples work exactly as written?

Each test was a strict xfail, a defect a user following README.md or docs/*.md met: an
error where the docs promise a message and an exit code, a documented setting that is
silently overwritten, an example that can only answer 404, a panel that says what was
never read; all six are fixed. Only the alerts API test needs a server (the session's
PostgreSQL); an unreachable broker, database or Grafana is a port nobody listens on
(connection refused at once), so every test runs in about a second.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from services import devstack
from services.alerts.app import create_app
from services.alerts.service import AlertsService
from services.alerts.settings import AlertsSettings
from services.cli import build_parser
from services.common.broker import free_port
from services.common.paths import REPO_ROOT
from services.common.units import VN_TZ, UnitRegistry
from services.dashboards.push import PushError, push_all
from services.dashboards.render import DASHBOARDS_DIR
from services.dashboards.settings import GrafanaSettings
from services.ingest.keycli import run_backfill
from services.ingest.settings import IngestSettings
from services.wall.server import build_app
from services.wall.settings import WallSettings
from tests.http_stub import serving

pytestmark = pytest.mark.integration


def _nobody_listens() -> str:
    """``host:port`` of a loopback port with no listener: a connect is refused at once."""
    return f"127.0.0.1:{free_port()}"


# --- egov-pulse grafana push --------------------------------------------------------


def test_push_to_an_unreachable_grafana_is_a_push_error() -> None:
    # docs/dashboards.md, "Commands": `egov-pulse grafana push --url URL ...`; PushError is
    # documented as "Grafana refused or could not be reached; the message says which call
    # and why". A wrong URL or a Grafana that is down is the first thing an operator meets.
    settings = GrafanaSettings(
        grafana_url=f"http://{_nobody_listens()}", grafana_token=None, grafana_folder_uid="r38"
    )
    model = {"uid": "review38", "title": "review 38", "panels": []}
    with pytest.raises(PushError, match="r38"):  # it names the call that failed
        push_all(settings, {"review38.json": model})


def test_the_push_command_says_it_failed(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://{_nobody_listens()}"
    args = build_parser().parse_args(
        ["grafana", "push", "--url", url, "--token", "x", "--dashboards", str(DASHBOARDS_DIR)]
    )
    assert args.handler(args) == 1
    assert "grafana push failed" in capsys.readouterr().err


# --- egov-pulse backfill ------------------------------------------------------------


def _history(folder: Path) -> Path:
    """One valid line (a signed document of today's Xã Thăng Bình, 16342)."""
    event = {
        "specversion": "1.0",
        "id": "review38-1",
        "source": "urn:review38:tdoffice",
        "type": "vn.egov.document.issued",
        "time": datetime(2026, 10, 1, 9, 0, tzinfo=VN_TZ).isoformat(),
        "unit": "16342",
        "data": {"document_id": "VB-1", "electronic": True, "signed": True},
    }
    path = folder / "history.jsonl"
    path.write_text(json.dumps(event) + "\n", encoding="utf-8")
    return path


async def test_backfill_exits_3_when_the_broker_does_not_answer(tmp_path: Path) -> None:
    # docs/ingest.md, "Backfill": "exit 1 if any line was refused, 3 if the broker failed
    # (re-run the file: duplicates count once)". A script must tell "fix the file" from
    # "run it again"; the broker down at the start is the commonest broker failure.
    settings = IngestSettings(
        kafka_bootstrap_servers=_nobody_listens(),
        database_url=SecretStr(f"postgresql://postgres@{_nobody_listens()}/egov_pulse"),
        embedded_broker=True,
        record_signing_key=None,
        kafka_request_timeout_s=3.0,
    )
    # --unbound: no database is needed to start (it warns and goes on), so the broker is
    # the only thing that fails.
    assert await run_backfill(_history(tmp_path), 500, settings, None) == 3


# --- egov-pulse up / make up ----------------------------------------------------------


def test_egov_simulator_rate_reaches_the_simulator_that_up_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # README.md: "Its default rate, 0.25 events/s ... (`SIMULATOR_RATE` in the Makefile,
    # `EGOV_SIMULATOR_RATE`, `egov-pulse simulate --rate`)", next to EGOV_SIMULATOR_PROFILE
    # and EGOV_SIMULATOR_HISTORY_S, which `make up` does pass on to its simulator.
    monkeypatch.setenv("EGOV_SIMULATOR_RATE", "5")
    monkeypatch.setenv("EGOV_SIMULATOR_PROFILE", "flat")
    # A key of our own, so that _child_env writes no key file into var/.
    monkeypatch.setenv("EGOV_RECORD_SIGNING_KEY", secrets.token_hex(32))
    started: list[devstack.StackOptions] = []

    async def run_stack(options: devstack.StackOptions) -> int:
        started.append(options)
        return 0

    monkeypatch.setattr(devstack, "run_stack", run_stack)
    args = build_parser().parse_args(["up"])
    assert args.handler(args) == 0
    (options,) = started
    env = devstack._child_env(options, "127.0.0.1:9092", "postgresql://postgres@127.0.0.1/x")
    assert env["EGOV_SIMULATOR_PROFILE"] == "flat"  # passed on, as documented
    assert float(env["EGOV_SIMULATOR_RATE"]) == 5.0


# --- the documented /wall/export example ----------------------------------------------

EXPORT_EXAMPLE = re.compile(r"/wall/export\?unit=([0-9A-Za-z-]+)")
DOCUMENTED = ("README.md", "docs/wall.md", "docs/exports.md")


def test_documented_wall_export_examples_name_a_unit_of_today() -> None:
    # docs/metrics-api.md: "Only figures of today's era are held and served"; the wall
    # exports what the workers serve, so `/wall/export?unit=404&...` (copied from
    # README.md, docs/wall.md or docs/exports.md, the file names dated 2026-11) is
    # {"error": "unit 404 has no figures on the wall"} with status 404 on any live stack.
    today = {unit.code for unit in UnitRegistry.from_dir().units("2025")}
    found = {
        (doc, code)
        for doc in DOCUMENTED
        for code in EXPORT_EXAMPLE.findall((REPO_ROOT / doc).read_text(encoding="utf-8"))
    }
    assert found, "the examples moved: update DOCUMENTED"
    assert sorted((doc, code) for doc, code in found if code not in today) == []


# --- the wall without an alerts service ------------------------------------------------


def _province_figure(window: str) -> dict[str, Any]:
    """One /v1/kpis item of today's Thanh Hóa (38), below its target, in ``window``."""
    now = datetime.now(VN_TZ)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if window == "month":
        start = start.replace(day=1)
    return {
        "version": 2,
        "kpi": "document_signing",
        "kpi_name_vi": "Tỷ lệ văn bản điện tử được ký số",
        "kpi_name_en": "Digital-signing rate",
        "retired": False,
        "unit": "38",
        "unit_name": "Tỉnh Thanh Hóa",
        "unit_name_en": "Thanh Hoa Province",
        "level": "province",
        "parent": None,
        "province": "38",
        "window": window,
        "period_start": start.isoformat(),
        "numerator": 90,
        "denominator": 100,
        "ratio": 0.9,
        "rate_bp": 9000,
        "target": 1.0,
        "target_bp": 10000,
        "min_volume": 20,
        "meets_target": False,
        "last_event_time": now.isoformat(),
    }


class _Worker(BaseHTTPRequestHandler):
    """A metrics worker answering /v1/kpis (one province figure per window asked) and an
    empty /v1/activity."""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        windows = parse_qs(url.query).get("window", ["day"])
        items = [_province_figure(w) for w in windows] if url.path == "/v1/kpis" else []
        body = json.dumps(
            {
                "generated_at": datetime.now(VN_TZ).isoformat(),
                "snapshot_age_s": 0.1,
                "worker": "review38",
                "partitions": ["egov.documents[0]"],
                "items": items,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def worker_url() -> Iterator[str]:
    with serving(_Worker) as url:
        yield url


@pytest.mark.parametrize("path", ["/wall", "/wall/province?province=38"])
async def test_a_wall_without_alerts_source_never_says_no_open_alerts(
    worker_url: str, path: str
) -> None:
    # docs/wall.md, settings table: `EGOV_ALERTS_URL` ... "empty: no alerts panel"; and
    # "'alerts could not be read' is not the same as 'no alerts'". An IOC that runs the
    # wall without the alerts service must not be told on its wall that nothing is open.
    settings = WallSettings(metrics_urls=[worker_url], alerts_url="", wall_lang="en")
    transport = httpx.ASGITransport(app=build_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://wall") as client:
        page = await client.get(path)
    assert page.status_code == 200
    assert "Digital-signing rate" in page.text  # the figures were read and shown
    assert "No open alerts" not in page.text


# --- operator tokens on GET /v1/targets/effective --------------------------------------


async def test_an_unknown_token_is_refused_on_effective_targets_too(
    database_url: str, tmp_path: Path
) -> None:
    # docs/targets.md, "Operators": "A token that is sent but unknown or revoked is a 401
    # on every request, reads included." An integrator whose token was revoked must learn
    # it from the first request, whichever it is.
    settings = AlertsSettings(
        database_url=SecretStr(database_url),
        metrics_urls=[f"http://{_nobody_listens()}"],
        ingest_url="",
        alert_kafka_enabled=False,
        alert_state_file=tmp_path / "alerts-state.json",
    )
    service = AlertsService(settings)
    await service.connect()
    try:
        transport = httpx.ASGITransport(app=create_app(service, run_loops=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as client:
            unknown = {"authorization": "Bearer egovop_review38_unknown"}
            query = {"unit": "38", "kpi": "document_signing"}
            # The documented behaviour on the other reads, and the endpoint without a token.
            assert (await client.get("/v1/targets", headers=unknown)).status_code == 401
            assert (await client.get("/v1/alerts", headers=unknown)).status_code == 401
            effective = "/v1/targets/effective"
            assert (await client.get(effective, params=query)).status_code == 200
            refused = await client.get(effective, params=query, headers=unknown)
            assert refused.status_code == 401
    finally:
        await service.close()
