"""Review 44 (fixed 2026-12-05): `make up`'s ports, as the Makefile runs it (pure logic,
nothing started)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from services import devstack
from services.common import cli


def _make_up_options(*args: str) -> devstack.StackOptions:
    """The StackOptions `make up` builds: the CLI's defaults, as the Makefile passes them."""
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    parsed = parser.parse_args(["up", "--simulator", "off", "--monitoring", "on", *args])
    captured: dict[str, devstack.StackOptions] = {}

    async def fake_run_stack(options: devstack.StackOptions) -> int:
        captured["options"] = options
        return 0

    original = devstack.run_stack
    devstack.run_stack = fake_run_stack  # type: ignore[assignment]
    try:
        assert parsed.handler(parsed) == 0
    finally:
        devstack.run_stack = original  # type: ignore[assignment]
    return captured["options"]


def _listening(options: devstack.StackOptions) -> dict[str, int]:
    """Every port the stack's own servers and services listen on, besides the broker."""
    return {
        **{f"service {name}": port for name, port in options.ports.items()},
        **{name: port for name, port in options.monitoring_ports.items()},
        "PostgreSQL": options.postgres_port,
    }


def test_make_up_broker_kafka_controller_port_is_not_alertmanagers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    options = _make_up_options("--broker", "kafka")
    seen: dict[str, Any] = {}

    class FakeCluster:
        def __init__(self, root: Path, **kwargs: Any) -> None:
            seen.update(kwargs)
            self.pids: list[int] = []
            self.bootstrap_servers = f"127.0.0.1:{kwargs['ports'][0]}"

        def start(self) -> None:
            pass

    monkeypatch.setattr(devstack, "KafkaCluster", FakeCluster)
    monkeypatch.setattr(devstack, "stack_kafka_auth", lambda: None)
    monkeypatch.setattr(devstack, "BROKER_PIDS", tmp_path / "broker.pids")
    devstack._Servers(options).bootstrap_servers()

    taken = _listening(options)
    clashes = {
        name: port
        for controller in seen["controller_ports"]
        for name, port in taken.items()
        if port == controller
    }
    assert clashes == {}, f"Kafka's controller listens where `make up` also puts {clashes}"


DEBIAN_SERVICE_PORTS = {"prometheus.service": 9090, "prometheus-alertmanager.service": 9093}
"""Where the services of Debian's prometheus and prometheus-alertmanager packages listen
(their /etc/default files leave ARGS empty: the binaries' defaults). Their postinst
enables and starts them on a systemd machine when `make up`'s apt step installs them."""


def _apt_recipe() -> str:
    makefile = (Path(devstack.__file__).resolve().parents[1] / "Makefile").read_text()
    recipe = makefile.split("\napt:", 1)[1]
    return recipe.split("\n\n", 1)[0]


def test_make_up_on_a_fresh_machine_does_not_collide_with_the_packages_it_installs() -> None:
    options = _make_up_options()
    recipe = _apt_recipe()
    stops_them = "systemctl" in recipe or "policy-rc.d" in recipe
    collide = {
        name: port
        for name, port in options.monitoring_ports.items()
        if port in DEBIAN_SERVICE_PORTS.values()
    }
    assert stops_them or collide == {}, (
        f"`make up` installs Debian services that listen on {collide} and leaves them running"
    )
