"""``egov-pulse up`` (so ``make up``) hands the simulator the rate the user chose:
``--simulator-rate`` first, else ``EGOV_SIMULATOR_RATE``, else the simulator's default."""

from __future__ import annotations

import pytest

from services import devstack
from services.cli import build_parser


def started_with(monkeypatch: pytest.MonkeyPatch, *argv: str) -> devstack.StackOptions | int:
    started: list[devstack.StackOptions] = []

    async def run_stack(options: devstack.StackOptions) -> int:
        started.append(options)
        return 0

    monkeypatch.setattr(devstack, "run_stack", run_stack)
    args = build_parser().parse_args(["up", *argv])
    code: int = args.handler(args)
    return started[0] if started else code


def child_rate(options: devstack.StackOptions | int, monkeypatch: pytest.MonkeyPatch) -> float:
    assert isinstance(options, devstack.StackOptions)
    monkeypatch.setenv("EGOV_RECORD_SIGNING_KEY", "0" * 64)  # no key file written to var/
    env = devstack._child_env(options, "127.0.0.1:9092", "postgresql://postgres@127.0.0.1/x")
    return float(env["EGOV_SIMULATOR_RATE"])


def test_the_default_is_the_simulators(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EGOV_SIMULATOR_RATE", raising=False)
    assert child_rate(started_with(monkeypatch), monkeypatch) == 0.25


def test_egov_simulator_rate_is_kept_without_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EGOV_SIMULATOR_RATE", "5")
    options = started_with(monkeypatch)
    assert child_rate(options, monkeypatch) == 5.0
    assert "simulator                 5 events/s" in devstack._banner(
        options,  # type: ignore[arg-type]
        "127.0.0.1:9092",
        "postgresql://egov@127.0.0.1/egov",
    )


def test_the_flag_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EGOV_SIMULATOR_RATE", "5")
    assert child_rate(started_with(monkeypatch, "--simulator-rate", "50"), monkeypatch) == 50.0


def test_a_refused_rate_stops_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EGOV_SIMULATOR_RATE", "0")
    assert started_with(monkeypatch) == 2
    assert "up: the simulator's settings are refused" in capsys.readouterr().err
    assert started_with(monkeypatch, "--simulator-rate", "0.5") != 2, "the flag wins here too"


def test_without_the_simulator_its_settings_are_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EGOV_SIMULATOR_RATE", "0")
    options = started_with(monkeypatch, "--simulator", "off")
    assert isinstance(options, devstack.StackOptions) and not options.simulator
