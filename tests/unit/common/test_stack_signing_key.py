"""`make up` keeps its record signing key in var/ (issue 15): strong, private, the same
key on every start, so records a run left in Apache Kafka still verify after the next."""

from __future__ import annotations

import stat
from pathlib import Path

from services.common.settings import signing_key_problem
from services.devstack import stack_signing_key


def test_made_on_the_first_start_strong_and_private(tmp_path: Path) -> None:
    path = tmp_path / "var" / "record-signing.key"
    key = stack_signing_key(path)
    assert signing_key_problem(key, required=True) is None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == key


def test_the_same_key_on_the_next_start(tmp_path: Path) -> None:
    path = tmp_path / "record-signing.key"
    assert stack_signing_key(path) == stack_signing_key(path)


def test_a_damaged_file_gets_a_new_key(tmp_path: Path) -> None:
    path = tmp_path / "record-signing.key"
    path.write_text("short\n")
    key = stack_signing_key(path)
    assert key != "short" and signing_key_problem(key, required=True) is None
