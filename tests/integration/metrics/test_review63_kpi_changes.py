"""Review 63: the KPI catalogue changing over time, as a province's owners change it.

An operator edits data/kpis.json (a definition changed, a KPI added), restarts the
workers and re-runs `egov-pulse backfill FILE` of the same history to recompute, as
DOMAIN.md plans for ("recomputing a year of a province's history after a KPI definition
changes"). And a catalogue that is invalid must stop the services with a clear error.

The repository's catalogue is never edited: a copy is written under tmp_path and the
subprocesses load it through a ``sitecustomize`` that points
``services.common.paths.KPI_CATALOGUE`` at it before anything imports the catalogue.
"""

from __future__ import annotations

import asyncio
import copy
import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from services.common.broker import free_port
from services.common.contract import Contract
from services.common.kafka import ensure_topics
from services.common.kpis import CatalogueError, KpiCatalogue
from services.common.paths import KPI_CATALOGUE
from services.common.settings import CommonSettings
from services.metrics.periods import VN_TZ, local_day
from tests.integration.metrics.harness import (
    WorkerProcess,
    document,
    publish,
    stored_figure,
    workers,
)
from tests.integration.processes import service_env

pytestmark = pytest.mark.integration
UNIT, PROVINCE = "01843", "19"  # Phường Bắc Kạn -> Thái Nguyên (the 2025 hierarchy)
SIGNED, UNSIGNED = 6, 4  # electronic documents of the backfilled day, signed or not
ADDED = "document_electronic_signed"  # a KPI added by the edit

SITECUSTOMIZE = """
import os
from pathlib import Path
if os.environ.get("REVIEW63_KPI_CATALOGUE"):
    import services.common.paths as _paths
    _paths.KPI_CATALOGUE = Path(os.environ["REVIEW63_KPI_CATALOGUE"])
"""


def base_catalogue() -> dict[str, Any]:
    return json.loads(KPI_CATALOGUE.read_text())


def write_catalogue(
    directory: Path, catalogue: dict[str, Any] | str, extra_targets: dict[str, str] | None = None
) -> Path:
    """The catalogue (and a targets.json beside it) in ``directory``; ``extra_targets``
    gives a new KPI the default targets of an existing one."""
    directory.mkdir(parents=True, exist_ok=True)
    targets = json.loads(KPI_CATALOGUE.with_name("targets.json").read_text())
    for new, like in (extra_targets or {}).items():
        targets["targets"] += [
            {**copy.deepcopy(t), "kpi": new} for t in targets["targets"] if t["kpi"] == like
        ]
    (directory / "targets.json").write_text(json.dumps(targets, ensure_ascii=False))
    path = directory / "kpis.json"
    text = catalogue if isinstance(catalogue, str) else json.dumps(catalogue, ensure_ascii=False)
    path.write_text(text)
    return path


def catalogue_env(tmp_path: Path, path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return {"PYTHONPATH": f"{site}:{Path.cwd()}", "REVIEW63_KPI_CATALOGUE": str(path)}


def edited_catalogue() -> dict[str, Any]:
    """The owners' edit: the electronic exchange rate now counts a document as exchanged
    electronically only when it was also signed (a definition change, same id), and a
    new KPI is added."""
    raw = base_catalogue()
    (electronic,) = [k for k in raw["kpis"] if k["id"] == "document_electronic"]
    electronic["numerator"] = {
        "all": [{"field": "data.electronic", "eq": True}, {"field": "data.signed", "eq": True}]
    }
    (signing,) = [k for k in raw["kpis"] if k["id"] == "document_signing"]
    raw["kpis"].append({**copy.deepcopy(signing), "id": ADDED, "name_en": "Signed share (new)"})
    raw["version"] = raw.get("version", 1) + 1
    return raw


def run_backfill(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "backfill", str(path), "--unbound"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def total(worker: WorkerProcess, name: str) -> float:
    return sum(value for _, value in worker.samples(name))


def wait_for(what: str, condition: Callable[[], bool], worker: WorkerProcess) -> None:
    deadline = time.monotonic() + 90
    while not condition():
        assert time.monotonic() < deadline, f"{what}\n{worker.tail()}"
        time.sleep(0.3)


def recompute_after_edit(
    settings: CommonSettings, database_url: str, tmp_path: Path
) -> tuple[str, subprocess.CompletedProcess[str], dict[str, tuple[int, int]]]:
    """Backfill a day under the shipped catalogue, edit the catalogue, restart the worker
    and re-run the same file to recompute. Returns the day, the re-run's output and the
    province's stored figures of the day per KPI afterwards."""
    asyncio.run(ensure_topics(settings))
    old_day = local_day(datetime.now(UTC)) - timedelta(days=100)
    at = datetime(old_day.year, old_day.month, old_day.day, 10, tzinfo=VN_TZ)
    events = []
    for i in range(SIGNED + UNSIGNED):
        event = document(f"r63-{i}", UNIT, at + timedelta(minutes=i))
        event["data"]["signed"] = i < SIGNED
        events.append(event)
    history = tmp_path / "history.jsonl"
    history.write_text("".join(orjson.dumps(e).decode() + "\n" for e in events))
    before = catalogue_env(tmp_path, write_catalogue(tmp_path / "v1", base_catalogue()))
    after = catalogue_env(
        tmp_path, write_catalogue(tmp_path / "v2", edited_catalogue(), {ADDED: "document_signing"})
    )
    env = service_env(settings, database_url)
    for name in "ab":
        (tmp_path / name).mkdir()
    with workers(settings, database_url, tmp_path / "a", 1, **before) as (worker,):
        first = run_backfill(history, {**env, **before})
        assert first.returncode == 0, first.stdout + first.stderr
        wait_for(
            "the first backfill was not counted",
            lambda: total(worker, "egov_events_processed_total") == len(events),
            worker,
        )
    day = old_day.isoformat()
    # Counted under the shipped definition: every electronic document is exchanged.
    assert asyncio.run(stored_figure(database_url, "document_electronic", PROVINCE, day)) == (
        10,
        10,
    )
    with workers(settings, database_url, tmp_path / "b", 1, **after) as (worker,):
        again = run_backfill(history, {**env, **after})
        assert again.returncode == 0, again.stdout + again.stderr
        wait_for(
            "the re-run was not read",
            lambda: (
                total(worker, "egov_events_processed_total")
                + total(worker, "egov_events_duplicate_total")
                >= len(events)
            ),
            worker,
        )
        # The restarted worker did load the edit: a live event of today counts for ADDED.
        live = document("r63-live", UNIT)
        asyncio.run(publish(settings, [(PROVINCE.encode(), orjson.dumps(live))]))
        today = local_day(datetime.now(UTC)).isoformat()
        wait_for(
            "the restarted worker did not count the added KPI",
            lambda: asyncio.run(stored_figure(database_url, ADDED, PROVINCE, today)) == (1, 1),
            worker,
        )
    figures = {
        kpi: asyncio.run(stored_figure(database_url, kpi, PROVINCE, day))
        for kpi in ("document_electronic", ADDED, "document_signing")
    }
    return day, again, figures


@pytest.mark.xfail(
    strict=True,
    reason=(
        "A documented limit (docs/ingest.md, backfill): "
        "review 63: re-running `egov-pulse backfill` of the same history after a KPI's "
        "definition changed recounts nothing: dedup keys are per event (metrics_seen_events), "
        "not per KPI definition, so every event is a duplicate and kpi_daily keeps the "
        "old-definition figure (10/10 instead of 6/10) for good; there is no way to recompute"
    ),
)
def test_a_backfill_rerun_after_a_definition_change_recomputes_the_figure(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    _, _, figures = recompute_after_edit(common_settings, database_url, tmp_path)
    assert figures["document_signing"] == (SIGNED, SIGNED + UNSIGNED)  # untouched KPI
    assert figures["document_electronic"] == (SIGNED, SIGNED + UNSIGNED)


@pytest.mark.xfail(
    strict=True,
    reason=(
        "A documented limit (docs/ingest.md, backfill): "
        "review 63: a KPI added to the catalogue never gets the history a backfill re-run "
        "publishes: the events' dedup keys were stored by the first run, so the added KPI's "
        "kpi_daily stays empty for every past day (0/0) and /v1/kpis/history shows no history"
    ),
)
def test_a_backfill_rerun_gives_an_added_kpi_its_history(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    _, _, figures = recompute_after_edit(common_settings, database_url, tmp_path)
    assert figures[ADDED] == (SIGNED, SIGNED + UNSIGNED)


def test_a_backfill_rerun_tells_the_operator_nothing_is_recounted(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    _, again, figures = recompute_after_edit(common_settings, database_url, tmp_path)
    recomputed = figures["document_electronic"] == (SIGNED, SIGNED + UNSIGNED)
    said = again.stdout + again.stderr
    told = any(w in said.lower() for w in ("already counted", "not recounted", "duplicate"))
    assert recomputed or told, said


# --- an invalid catalogue: a clear error at start, naming the KPI and the problem -------


def _load(tmp_path: Path, mutate: Callable[[dict[str, Any]], None]) -> KpiCatalogue:
    raw = base_catalogue()
    mutate(raw)
    path = write_catalogue(tmp_path / "bad", raw)
    return KpiCatalogue.load(path, event_types=Contract.load().event_types)


def _numerator(value: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def mutate(raw: dict[str, Any]) -> None:
        raw["kpis"][0]["numerator"] = value

    return mutate


def test_a_catalogue_that_is_not_json_is_a_catalogue_error_naming_the_file(
    tmp_path: Path,
) -> None:
    text = KPI_CATALOGUE.read_text().replace('"version": 1,', '"version": 1', 1)
    path = write_catalogue(tmp_path / "bad", text)
    with pytest.raises(CatalogueError, match=r"kpis\.json"):
        KpiCatalogue.load(path)


@pytest.mark.parametrize(
    "mutate",
    [
        _numerator({"field": "data.signed", "in": 5}),
        _numerator({"all": {"field": "data.signed", "eq": True}}),
        lambda raw: raw["kpis"][0].update(min_volume="twenty"),
        lambda raw: raw.pop("kpis"),
    ],
    ids=["in-not-a-list", "all-not-a-list", "min-volume-not-a-number", "no-kpis"],
)
def test_a_malformed_kpi_is_a_catalogue_error(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], None]
) -> None:
    with pytest.raises(CatalogueError, match=r"document_signing|kpis"):
        _load(tmp_path, mutate)


def test_a_worker_refuses_a_catalogue_reading_a_field_its_event_type_lacks(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    raw = base_catalogue()
    raw["kpis"][0]["numerator"] = {"field": "data.sigend", "eq": True}
    path = write_catalogue(tmp_path / "typo", raw)
    env = {
        **service_env(common_settings, database_url),
        **catalogue_env(tmp_path, path),
        "EGOV_METRICS_APP_ID": "r63-typo",
        "EGOV_METRICS_DATA_DIR": str(tmp_path / "w"),
    }
    port = free_port()
    env["EGOV_METRICS_WEB_PORT"] = str(port)
    log = tmp_path / "typo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "metrics"], env=env, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 60
        answered = False
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                answered = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).is_success
            except httpx.TransportError:
                answered = False
            if answered:
                break
            time.sleep(0.3)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    output = log.read_text(errors="replace")
    assert not answered, "the worker started on a catalogue reading data.sigend"
    assert proc.returncode != 0 and "sigend" in output, output[-3000:]


# --- a KPI retired while its alert fires ------------------------------------------------


def test_an_alert_of_a_retired_kpi_resolves() -> None:
    from itertools import count

    from services.alerts.directory import UnitDirectory
    from services.alerts.evaluation import Evaluator, Observation
    from services.alerts.lifecycle import AlertBook
    from services.alerts.model import State
    from services.alerts.settings import AlertsSettings
    from services.common.calendar import WorkingCalendar
    from services.common.figures import Figure
    from services.common.rates import to_bp

    old_kpi, kept = "document_signing_v1", "document_signing"
    monday = datetime(2026, 11, 23, 10, tzinfo=VN_TZ)

    def figure(kpi: str, num: int) -> Figure:
        return Figure(kpi, "c1", "year", num, 100, to_bp(0.95), 20, "Xã Một", province="19")

    def evaluator(families: dict[str, str]) -> Evaluator:
        settings = AlertsSettings(alert_for_s=0, alert_burn_enabled=False)
        return Evaluator(settings, WorkingCalendar(always=True), UnitDirectory([]), families)

    ids = count()
    book = AlertBook(new_id=lambda: f"id{next(ids)}")
    before = evaluator({old_kpi: "documents", kept: "documents"})
    plan = before.plan(book.open, monday)
    assert "year" in plan.windows
    seen = Observation(plan, [figure(old_kpi, 50), figure(kept, 99)], True)
    book.observe(before.verdicts(seen, book.open, {}, monday), monday)
    (alert,) = book.open.values()
    assert alert.state is State.FIRING and alert.key.kpi == old_kpi
    # The owners retire the KPI and restart: its figure is served as retired (no target),
    # which the alerts leave out; every worker answered.
    after = evaluator({kept: "documents"})
    later = monday + timedelta(hours=1)
    plan = after.plan(book.open, later)
    assert "year" in plan.windows
    seen = Observation(plan, [figure(kept, 99)], True)
    book.observe(after.verdicts(seen, book.open, {}, later), later)
    still = [a for a in book.open.values() if a.key.kpi == old_kpi and a.state is State.FIRING]
    assert still == [], "the retired KPI's year alert still pages"
