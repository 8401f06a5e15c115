"""The runner: which modules run in which mode, and a failing module reported, not fatal."""

from __future__ import annotations

import json
from pathlib import Path

from bench.__main__ import parse, run_child, run_module, selected


def test_quick_mode_skips_the_soak_and_only_narrows() -> None:
    assert "soak" not in selected(parse(["--mode", "quick"]))
    assert selected(parse(["--mode", "full"]))[-1] == "soak"
    assert selected(parse(["--only", "peers"])) == ["peers"]
    assert selected(parse(["--only", "soak"])) == ["soak"]  # explicit: even in quick mode


def test_a_module_that_raises_leaves_its_traceback_for_the_report(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    assert run_child("no_such_module", "quick", out) == 1
    assert "ModuleNotFoundError" in json.loads(out.read_text())["error"]


def test_a_module_not_written_yet_is_reported_missing(tmp_path: Path) -> None:
    outcome, rows = run_module("no_such_module", parse([]), tmp_path)
    assert (outcome.status, rows) == ("missing", [])
