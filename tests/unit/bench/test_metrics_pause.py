"""The metrics benchmark pauses its worker while it fills the topic, and lets it go on."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from bench.metrics import Harness


def state(pid: int) -> str:
    # The field after the command's closing parenthesis: R, S, T (stopped) ...
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def settled(pid: int, want: str) -> str:
    for _ in range(100):
        if (now := state(pid)) == want:
            break
        time.sleep(0.01)
    return now


def test_the_worker_is_stopped_inside_the_block_and_goes_on_after_it_even_on_error() -> None:
    h = Harness("127.0.0.1:1", "")
    h.proc = subprocess.Popen(["sleep", "30"])
    try:
        with pytest.raises(RuntimeError), h.paused():
            assert settled(h.proc.pid, "T") == "T"
            raise RuntimeError("publishing failed")
        assert settled(h.proc.pid, "S") == "S"
    finally:
        h.proc.kill()
        h.proc.wait()
