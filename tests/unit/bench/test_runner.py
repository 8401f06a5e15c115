"""The runner: which modules run in which mode, and a failing module reported, not fatal."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from bench.__main__ import parse, run_child, run_module, selected
from bench.common import REPO


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


def test_a_module_stopped_for_its_budget_leaves_through_its_with_blocks(tmp_path: Path) -> None:
    """The runner SIGTERMs a module over its budget; what the module started in a session
    of its own (a broker, a PostgreSQL) is stopped by the module's own ``with`` blocks."""
    left = tmp_path / "left"
    script = f"""
import os, signal, time
from bench.__main__ import stop_cleanly_on_sigterm
stop_cleanly_on_sigterm()
try:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)
finally:
    open({str(left)!r}, "w").write("cleaned up")
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, timeout=30)
    assert done.returncode == 128 + signal.SIGTERM
    assert left.read_text() == "cleaned up"
