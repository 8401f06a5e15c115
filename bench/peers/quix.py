"""The peer's side of the comparison: bench/peers/quix_app.py run over one KPI's topic.

Quix runs in its own virtualenv (``.venv/peer``, made here when missing) because
quixstreams 3.28.1 pins ``pydantic-settings<2.16`` and ``pydantic<2.14`` while this
project pins pydantic-settings 2.16.3.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Final

from bench.common import REPO, Row, row, rss_bytes
from bench.peers.kpi import Figures, differences

PEER_VENV: Final = REPO / ".venv" / "peer"
PEER_PYTHON: Final = PEER_VENV / "bin" / "python"
PEER_REQUIREMENTS: Final = REPO / "bench" / "peers" / "requirements.txt"
VERSION: Final = "Quix Streams 3.28.1"


def ensure_peer_venv() -> Path:
    """The peer's virtualenv, created from bench/peers/requirements.txt when missing."""
    if not PEER_PYTHON.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        pip = [str(PEER_VENV / "bin" / "pip"), "install", "-q", "-r", str(PEER_REQUIREMENTS)]
        subprocess.run(pip, check=True, timeout=600)
    return PEER_PYTHON


def run_quix(
    bootstrap: str,
    broker: str,
    topic: str,
    kpi: str,
    expected: int,
    day: str,
    timeout_s: float,
) -> dict[str, Any]:
    """Run the Quix app until it has read ``expected`` messages of ``kpi``'s topic; its
    figures and timing."""
    python = ensure_peer_venv()
    with tempfile.TemporaryDirectory(prefix="bench-quix-") as tmp:
        out = Path(tmp) / "quix.json"
        log = Path(tmp) / "quix.log"
        group = f"bench-quix-{uuid.uuid4().hex[:6]}"
        cmd = [str(python), str(REPO / "bench/peers/quix_app.py"), bootstrap, broker, topic]
        cmd += [group, kpi, str(expected), day, str(out)]
        started = time.perf_counter()
        peak = 0
        with log.open("wb") as sink:
            proc = subprocess.Popen(cmd, cwd=tmp, stdout=sink, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + timeout_s
                while proc.poll() is None and time.monotonic() < deadline:
                    peak = max(peak, rss_bytes(proc.pid) or 0)
                    time.sleep(0.2)
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
        if not out.exists():
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"Quix app gave no figures (exit {proc.returncode}):\n{tail}")
        result: dict[str, Any] = json.loads(out.read_text())
        result["wall_seconds"] = time.perf_counter() - started
        result["peak_rss_mib"] = peak / 2**20
        return result


def quix_rows(
    quix: dict[str, Any] | Exception,
    kpi: str,
    expected: Figures,
    base_note: str,
    bench: str = "peers",
) -> list[Row]:
    """The peer's rows for one KPI: equal figures first, then its speed and memory."""
    equal = f"quix: {kpi} figures equal to reference"
    if isinstance(quix, Exception):
        return [row(bench, equal, 0, "bool", notes=f"Quix did not finish: {quix}"[:400])]
    wrong = differences(expected, quix["figures"])
    if wrong:
        note = f"Quix differs from the reference: {'; '.join(wrong[:5])}"
        return [row(bench, equal, 0, "bool", notes=note)]
    return [
        row(bench, equal, 1, "bool", notes=base_note),
        row(
            bench,
            f"quix: {kpi} throughput",
            round(quix["rate"]),
            "events/s",
            reference="faust-windowed-table",
            notes=f"{VERSION}, RocksDB state, at-least-once; started on the filled topic; "
            "from its first event consumed to its last counted in its state, over all but "
            "the first (start-up and publishing outside)",
        ),
        row(
            bench,
            f"quix: {kpi} wall time incl. start-up",
            round(quix["wall_seconds"], 1),
            "s",
            notes="process start to the last event counted",
        ),
        row(bench, f"quix: {kpi} peak RSS", round(quix["peak_rss_mib"], 1), "MiB"),
    ]
