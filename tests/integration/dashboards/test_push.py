"""``egov-pulse grafana push`` against Grafana's recorded HTTP API (see recorded_grafana)."""

from __future__ import annotations

import argparse
import json

import pytest

from services.common.broker import free_port
from services.dashboards import cli
from services.dashboards.render import DASHBOARDS_DIR
from tests.integration.dashboards.recorded_grafana import (
    FOLDER,
    FOLDER_NOT_FOUND,
    INVALID_TOKEN,
    NO_ANSWER,
    RecordedGrafana,
    dashboard_saved,
    serving,
)

UIDS = [  # file order
    "egov-pipeline-health",
    "egov-province-overview",
    "egov-rankings",
    "egov-scorecard-766",
    "egov-unit-detail",
]
TOKEN = "glsa_recorded_test_token_0001"


def push(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["grafana", "push", *argv])
    code: int = args.handler(args)
    return code


def committed(uid: str) -> dict[str, object]:
    for path in DASHBOARDS_DIR.glob("*.json"):
        model: dict[str, object] = json.loads(path.read_text("utf-8"))
        if model["uid"] == uid:
            return model
    raise AssertionError(uid)


def saved_all() -> dict[tuple[str, str], list[tuple[int, object]]]:
    return {("POST", "/api/dashboards/db"): [dashboard_saved(uid) for uid in UIDS]}


def test_push_creates_the_folder_and_upserts_every_dashboard(
    capsys: pytest.CaptureFixture[str],
) -> None:
    routes = {
        ("GET", "/api/folders/egov-pulse"): [FOLDER_NOT_FOUND],
        ("POST", "/api/folders"): [FOLDER],
        **saved_all(),
    }
    with serving(RecordedGrafana(routes)) as grafana:
        assert push("--url", grafana.url, "--token", TOKEN) == 0

    calls = [(r.method, r.path) for r in grafana.requests]
    assert calls == [
        ("GET", "/api/folders/egov-pulse"),
        ("POST", "/api/folders"),
        *[("POST", "/api/dashboards/db")] * len(UIDS),
    ]
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in grafana.requests)
    assert grafana.requests[1].body == {"title": "egov-pulse", "uid": "egov-pulse"}
    pushed = [r.body for r in grafana.requests[2:]]
    assert [body["dashboard"]["uid"] for body in pushed] == UIDS
    for body in pushed:
        assert body["overwrite"] is True
        assert body["folderUid"] == "egov-pulse"
        assert "id" not in body["dashboard"], "an id would pin the dashboard to one Grafana"
        assert body["dashboard"] == committed(body["dashboard"]["uid"])
    out = capsys.readouterr().out
    assert all(f"{uid} version 1 /d/{uid}/{uid}" in out for uid in UIDS)


def test_push_reads_the_token_from_the_environment_and_keeps_an_existing_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GRAFANA_TOKEN", TOKEN)
    routes = {("GET", "/api/folders/ioc-wall"): [FOLDER], **saved_all()}
    with serving(RecordedGrafana(routes)) as grafana:
        monkeypatch.setenv("GRAFANA_URL", grafana.url)
        assert push("--folder", "ioc-wall") == 0

    assert ("POST", "/api/folders") not in [(r.method, r.path) for r in grafana.requests]
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in grafana.requests)
    assert [r.body["folderUid"] for r in grafana.requests[1:]] == ["ioc-wall"] * len(UIDS)


def test_a_refused_dashboard_is_reported_and_those_before_it_stay_pushed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    routes = {
        ("GET", "/api/folders/egov-pulse"): [FOLDER],
        ("POST", "/api/dashboards/db"): [dashboard_saved(UIDS[0]), INVALID_TOKEN],
    }
    with serving(RecordedGrafana(routes)) as grafana:
        assert push("--url", grafana.url, "--token", "expired") == 1

    err = capsys.readouterr().err
    assert "grafana push failed" in err and repr(UIDS[1]) in err and "401" in err
    dashboards = [r.body["dashboard"]["uid"] for r in grafana.requests[1:]]
    assert dashboards == UIDS[:2], "the push stops at the first refusal"


def test_an_unreadable_folder_stops_before_any_dashboard(
    capsys: pytest.CaptureFixture[str],
) -> None:
    routes = {("GET", "/api/folders/egov-pulse"): [INVALID_TOKEN]}
    with serving(RecordedGrafana(routes)) as grafana:
        assert push("--url", grafana.url, "--token", "expired") == 1

    assert "folder 'egov-pulse'" in capsys.readouterr().err
    assert [(r.method, r.path) for r in grafana.requests] == [("GET", "/api/folders/egov-pulse")]


def test_an_unreachable_grafana_is_reported_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"  # connection refused at once
    assert push("--url", nobody, "--token", TOKEN) == 1

    err = capsys.readouterr().err
    assert "grafana push failed: folder 'egov-pulse': Grafana could not be reached" in err
    assert "Traceback" not in err


def test_a_grafana_that_stops_answering_is_reported_and_those_before_it_stay_pushed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EGOV_GRAFANA_TIMEOUT_S", "0.5")
    routes = {
        ("GET", "/api/folders/egov-pulse"): [FOLDER],
        ("POST", "/api/dashboards/db"): [dashboard_saved(UIDS[0]), NO_ANSWER],
    }
    with serving(RecordedGrafana(routes, stall_s=2.0)) as grafana:
        assert push("--url", grafana.url, "--token", TOKEN) == 1

    err = capsys.readouterr().err
    assert f"grafana push failed: dashboard {UIDS[1]!r}: Grafana did not answer" in err
    dashboards = [r.body["dashboard"]["uid"] for r in grafana.requests[1:]]
    assert dashboards == UIDS[:2], "the push stops at the first failure, the first one stays"
