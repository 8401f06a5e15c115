"""The deployment files: the compose topology, Prometheus and its rules, Alertmanager, Grafana.

Each check runs the tool that the deployment itself relies on (docker-compose, promtool,
amtool). Without the tool a check is skipped locally, with the reason, and fails under
CI (env CI set), where ``make apt`` installs them. No container is started: no Docker
engine is needed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from services.cli import build_parser
from tests.binaries import require

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DEPLOY = REPO / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
RULES_DIR = DEPLOY / "prometheus" / "rules"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
GRAFANA = DEPLOY / "grafana"
TIMEOUT_S = 120


# Services built from this repository's Dockerfile, and the others of the topology.
OUR_SERVICES = {"migrate", "ingest", "metrics-1", "metrics-2", "alerts", "wall"}
READERS = {"wall"}  # reads the other services over HTTP: no Kafka, no database, no secret
ONE_SHOTS = {"kafka-setup"}  # our image too, run as a module (topics and ACLs)
INFRASTRUCTURE = {"kafka", "postgres", "prometheus", "alertmanager", "grafana"}
EXPOSE_FILE = REPO / "docker-compose.expose.yml"

# Every secret compose requires (docker-compose.yml ships none), with stand-ins.
REQUIRED_SECRETS = {
    "EGOV_RECORD_SIGNING_KEY": "ab" * 32,
    "POSTGRES_PASSWORD": "pg-stand-in",
    "KAFKA_ADMIN_PASSWORD": "admin-stand-in",
    "KAFKA_CONTROLLER_PASSWORD": "controller-stand-in",
    "KAFKA_INGEST_PASSWORD": "ingest-stand-in",
    "KAFKA_BACKFILL_PASSWORD": "backfill-stand-in",
    "KAFKA_METRICS_PASSWORD": "metrics-stand-in",
    "KAFKA_ALERTS_PASSWORD": "alerts-stand-in",
}
# Every other variable compose requires: what only the operator can know.
REQUIRED_SETTINGS = {"EGOV_ALERTS_PUBLIC_URL": "https://alerts.ioc.example"}
# Each service that talks to Kafka, and its principal (services/common/kafka_acls.py).
KAFKA_PRINCIPALS = {
    "ingest": "ingest",
    "metrics-1": "metrics",
    "metrics-2": "metrics",
    "alerts": "alerts",
    "kafka-setup": "admin",
}

YAML_TO_JSON = "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"


def run(
    *argv: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``argv`` in the repository; compose gets the required variables' stand-ins, and no
    EGOV_/KAFKA_/POSTGRES_/GRAFANA_ variable of the calling shell, unless ``env`` says."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EGOV_", "KAFKA_", "POSTGRES_", "GRAFANA_"))
    }
    return subprocess.run(
        argv,
        cwd=REPO,
        env={**base, **REQUIRED_SECRETS, **REQUIRED_SETTINGS, **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def succeed(*argv: str, env: dict[str, str] | None = None) -> str:
    """Run a tool that must exit 0; its output goes into the failure message."""
    done = run(*argv, env=env)
    assert done.returncode == 0, (
        f"{shlex.join(argv)} -> {done.returncode}\n{done.stdout}{done.stderr}"
    )
    return done.stdout


def load_yaml(text: str) -> Any:
    """Parse YAML with PyYAML when installed, else with docker-compose v1's own interpreter.

    PyYAML is no dependency of the project; docker-compose 1.x (Debian's) is a Python
    program that needs it, so its interpreter always has it.
    """
    try:
        import yaml
    except ImportError:
        return json.loads(succeed_with_input(compose_python(), "-c", YAML_TO_JSON, stdin=text))
    return yaml.safe_load(text)


def compose_python() -> str:
    shebang = Path(require("docker-compose")).read_bytes().split(b"\n", 1)[0].decode()
    interpreter = shebang.removeprefix("#!").strip().split(" ")[0]
    if not shebang.startswith("#!") or "python" not in interpreter:
        pytest.fail("no YAML parser: install pyyaml (docker-compose is not a Python program)")
    return interpreter


def succeed_with_input(*argv: str, stdin: str) -> str:
    done = run(*argv, stdin=stdin)
    assert done.returncode == 0, f"{shlex.join(argv)} -> {done.returncode}\n{done.stderr}"
    return done.stdout


def cli_subcommands() -> set[str]:
    parser = build_parser()
    return {
        name
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for name in action.choices
    }


def compose_model(*files: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The compose model of ``files`` after interpolation and merging, as docker-compose
    sees it."""
    exe = require("docker-compose")
    version = succeed(exe, "version", "--short").strip().removeprefix("v")
    names = [arg for f in files for arg in ("-f", str(f))]
    if int(version.split(".")[0]) >= 2:
        model: dict[str, Any] = json.loads(
            succeed(exe, *names, "config", "--format", "json", env=env)
        )
        return model
    # 1.x has no --format (and answers an unknown option with its help and exit 0).
    return dict(load_yaml(succeed(exe, *names, "config", env=env)))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return compose_model(COMPOSE_FILE)


def published(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host address, host port) of each published port, in v1 or v2 output form."""
    out = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            out.append((str(port.get("host_ip", "")), str(port.get("published", ""))))
            continue
        parts = str(port).split("/")[0].split(":")
        out.append((parts[0], parts[1]) if len(parts) == 3 else ("", parts[0]))
    return out


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else list(command)


def bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str]]:
    """(host source, container target) of each bind mount, in v1 or v2 output form."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                mounts.append((Path(volume["source"]), volume["target"]))
            continue
        source, target = volume.split(":")[:2]
        if source.startswith(("/", ".")):
            mounts.append(((REPO / source).resolve(), target))
    return mounts


def test_compose_file_is_valid() -> None:
    succeed(require("docker-compose"), "-f", str(COMPOSE_FILE), "config", "-q")


def test_compose_has_the_whole_topology(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == OUR_SERVICES | ONE_SHOTS | INFRASTRUCTURE


def test_every_command_is_an_egov_pulse_subcommand(compose: dict[str, Any]) -> None:
    subcommands = cli_subcommands()
    assert {"ingest", "metrics", "alerts", "wall", "migrate"} <= subcommands
    for name in OUR_SERVICES:
        command = command_of(compose["services"][name])
        assert command[:1] == ["egov-pulse"], f"{name}: {command}"
        assert len(command) > 1 and command[1] in subcommands, f"{name}: {command}"


def test_metrics_workers_are_one_app(compose: dict[str, Any]) -> None:
    first, second = compose["services"]["metrics-1"], compose["services"]["metrics-2"]
    assert command_of(first) == command_of(second) == ["egov-pulse", "metrics"]
    assert first["environment"] == second["environment"]
    assert first["hostname"] != second["hostname"]


def test_services_run_against_apache_kafka_settings(compose: dict[str, Any]) -> None:
    for name in OUR_SERVICES - READERS:
        environment = compose["services"][name]["environment"]
        assert environment["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092", name
        assert str(environment["EGOV_KAFKA_IDEMPOTENCE"]).lower() == "true", name
        assert str(environment["EGOV_TOPIC_PARTITIONS"]) == "12", name
        assert str(environment["EGOV_TOPIC_REPLICATION"]) == "1", name
        assert environment["DATABASE_URL"].startswith("postgresql://"), name


def test_start_order_waits_for_health_acls_and_migrations(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("kafka", "postgres"):
        assert "test" in services[name]["healthcheck"], name
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["kafka-setup"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name in OUR_SERVICES - {"migrate"} - READERS:
        depends_on = services[name]["depends_on"]
        # The topics and ACLs exist before any service connects to Kafka.
        setup = depends_on["kafka-setup"]["condition"]
        assert setup == "service_completed_successfully", name
        assert depends_on["migrate"]["condition"] == "service_completed_successfully", name


def test_the_wall_reads_every_worker_and_the_alerts_and_holds_no_secret(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    wall = services["wall"]
    assert command_of(wall) == ["egov-pulse", "wall"]
    environment = wall["environment"]
    workers = sorted(n for n in services if command_of(services[n]) == ["egov-pulse", "metrics"])
    port = services[workers[0]]["environment"]["EGOV_METRICS_WEB_PORT"]
    urls = environment["EGOV_METRICS_URLS"].split(",")
    assert (
        urls
        == [f"http://{n}:{port}" for n in workers]
        == ["http://metrics-1:8081", "http://metrics-2:8081"]
    )
    assert urls == services["alerts"]["environment"]["EGOV_METRICS_URLS"].split(",")
    alerts_port = services["alerts"]["environment"]["EGOV_ALERTS_PORT"]
    assert environment["EGOV_ALERTS_URL"] == f"http://alerts:{alerts_port}"
    assert str(environment["EGOV_WALL_PORT"]) == "8083" and environment["EGOV_WALL_HOST"] == (
        ALL_INTERFACES
    )
    assert not {k for k in environment if "PASSWORD" in k or "KEY" in k or "DATABASE" in k}
    assert "8083/healthz" in " ".join(wall["healthcheck"]["test"])
    assert set(wall["depends_on"]) == {*workers, "alerts"}


def test_every_container_rotates_its_logs_and_prometheus_bounds_its_disk(
    compose: dict[str, Any],
) -> None:
    """Docker's json-file driver keeps output forever by default: the host's disk would
    fill (review 68). Every container rotates; Prometheus drops its oldest blocks by size
    as well as by age."""
    for name, service in compose["services"].items():
        logging = service.get("logging") or {}
        options = logging.get("options") or {}
        assert logging.get("driver") == "json-file", f"{name}: {logging}"
        assert options.get("max-size") and int(options.get("max-file", 0)) >= 2, f"{name}"
    flags = command_of(compose["services"]["prometheus"])
    assert any(flag.startswith("--storage.tsdb.retention.size=") for flag in flags), flags


def test_every_mounted_deploy_path_exists(compose: dict[str, Any]) -> None:
    mounted = [
        (name, source, target)
        for name, service in compose["services"].items()
        for source, target in bind_mounts(service)
    ]
    assert {name for name, _, _ in mounted} == {"kafka", "prometheus", "alertmanager", "grafana"}
    for name, source, _ in mounted:
        assert source.is_relative_to(DEPLOY), f"{name} mounts {source} from outside deploy/"
        assert source.exists(), f"{name} mounts missing {source}"


def test_prometheus_scrapes_every_service_on_its_port(compose: dict[str, Any]) -> None:
    config = load_yaml(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    expected = {
        "ingest:8080",
        "metrics-1:8081",
        "metrics-2:8081",
        "alerts:8082",
        "alertmanager:9093",
    }
    assert expected <= targets
    for target in targets - {"localhost:9090"}:
        assert target.split(":")[0] in compose["services"], target


def test_grafana_provisioning_matches_the_mounts(compose: dict[str, Any]) -> None:
    grafana_mounts = {
        target: source for source, target in bind_mounts(compose["services"]["grafana"])
    }
    provider = load_yaml((GRAFANA / "provisioning/dashboards/egov.yml").read_text("utf-8"))
    dashboards_path = provider["providers"][0]["options"]["path"]
    assert grafana_mounts[dashboards_path] == GRAFANA / "dashboards"
    assert grafana_mounts["/etc/grafana/provisioning"] == GRAFANA / "provisioning"
    sources = load_yaml((GRAFANA / "provisioning/datasources/prometheus.yml").read_text("utf-8"))
    urls = {source["url"] for source in sources["datasources"]}
    assert urls == {"http://prometheus:9090", "http://alertmanager:9093"}


def test_image_runs_as_an_unprivileged_user() -> None:
    lines = [line.strip() for line in (REPO / "Dockerfile").read_text("utf-8").splitlines()]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert 'CMD ["egov-pulse"]' in lines
    assert "RUN pip install ." in lines
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in lines


def test_prometheus_config_is_valid() -> None:
    succeed(require("promtool"), "check", "config", str(PROMETHEUS_CONFIG))


def test_recording_rules_are_valid() -> None:
    rule_files = sorted(str(path) for path in RULES_DIR.glob("*.yml"))
    assert rule_files
    succeed(require("promtool"), "check", "rules", *rule_files)


def test_recording_rules_pass_their_unit_tests() -> None:
    test_files = sorted(str(path) for path in (RULES_DIR / "tests").glob("*.yml"))
    assert test_files
    succeed(require("promtool"), "test", "rules", *test_files)


def test_alertmanager_config_is_valid() -> None:
    succeed(require("amtool"), "check-config", str(ALERTMANAGER_CONFIG))


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ("severity=critical province=38", "oncall"),
        ("severity=critical province=19", "oncall-thai-nguyen"),
        ("severity=warning province=38", "team"),
        ("severity=warning province=19", "team-thai-nguyen"),
        ("severity=info province=19", "null"),
    ],
)
def test_alerts_route_by_severity_and_province(labels: str, receiver: str) -> None:
    routed_to(
        receiver, "alertname=KpiBelowTarget", "kpi=signing_rate", "unit=05911", *labels.split()
    )


def routed_to(receiver: str, *labels: str) -> None:
    """amtool finds that the production routes send an alert of ``labels`` to ``receiver``."""
    succeed(
        require("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        f"--verify.receivers={receiver}",
        *labels,
    )


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        # Prometheus's own health alerts (rules/egov-health.yml): no province, no unit.
        ("alertname=EgovServiceDown severity=critical service=metrics", "oncall"),
        ("alertname=EgovDeadLetters severity=warning service=metrics", "team"),
        # The heartbeat goes to the dead man's switch alone, whatever its severity.
        ("alertname=Watchdog severity=none service=pipeline", "watchdog"),
    ],
)
def test_health_alerts_and_the_watchdog_route_where_they_are_needed(
    labels: str, receiver: str
) -> None:
    routed_to(receiver, *labels.split())


def test_prometheus_sends_its_alerts_to_the_alertmanager_of_compose(
    compose: dict[str, Any],
) -> None:
    """The health alerts reach on-call only if Prometheus knows the Alertmanager."""
    config = load_yaml(PROMETHEUS_CONFIG.read_text("utf-8"))
    (sent_to,) = config["alerting"]["alertmanagers"]
    (targets,) = [c["targets"] for c in sent_to["static_configs"]]
    assert targets == ["alertmanager:9093"]
    assert "alertmanager" in compose["services"]


def test_compose_runs_the_kafka_that_the_tests_run(compose: dict[str, Any]) -> None:
    """One Apache Kafka version and one broker configuration file for compose, `make
    test`, `make up BROKER=kafka` and the benchmarks (services/common/apache_kafka.py)."""
    from services.common.apache_kafka import KAFKA_VERSION, SERVER_PROPERTIES

    kafka = compose["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{KAFKA_VERSION}"
    pom = (DEPLOY / "kafka" / "pom.xml").read_text()
    assert f"<kafka.version>{KAFKA_VERSION}</kafka.version>" in pom
    mounted = dict(bind_mounts(kafka))
    assert mounted[SERVER_PROPERTIES.resolve()] == "/etc/egov/kafka/server.properties"
    # `config` keeps compose's "$$" escape (the shell's "$") as it is.
    script = "\n".join(command_of(kafka)).replace("$$", "$")
    shared = "/etc/egov/kafka/server.properties /etc/egov/kafka/security.properties"
    assert f'cat {shared} > "$config"' in script
    assert 'kafka-server-start.sh "$config"' in script


def test_kafka_configuration_is_what_production_needs() -> None:
    """The shared file: KRaft, no accidental topics, no unclean elections."""
    from services.common.apache_kafka import SERVER_PROPERTIES

    settings = dict(
        line.split("=", 1)
        for line in SERVER_PROPERTIES.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert settings["process.roles"] == "broker,controller"
    assert settings["auto.create.topics.enable"] == "false"
    assert settings["unclean.leader.election.enable"] == "false"
    assert "node.id" not in settings and "log.dirs" not in settings  # per node, appended


# ------------------------------------------------------------------ published on purpose


def test_compose_ships_no_secret() -> None:
    """No password or key has a default in the file (GRAFANA_ADMIN_PASSWORD's empty one
    means "generate it"), and the old public signing key is gone."""
    text = COMPOSE_FILE.read_text("utf-8")
    # Compose's own ${VAR:-default} (a "$${" is the shell's, inside a script).
    defaults = re.findall(r"(?<!\$)\$\{(\w*(?:PASSWORD|KEY)\w*):-([^}]*)\}", text)
    # Empty defaults only: Grafana's "generate it", and no key to verify besides the
    # signing key (a rotation sets them, docs/security.md).
    assert sorted(defaults) == [("EGOV_RECORD_VERIFYING_KEYS", ""), ("GRAFANA_ADMIN_PASSWORD", "")]
    assert "egov-dev-only" not in text


@pytest.mark.parametrize("variable", sorted({**REQUIRED_SECRETS, **REQUIRED_SETTINGS}))
def test_compose_refuses_to_start_without_each_required_variable(variable: str) -> None:
    done = run(
        require("docker-compose"), "-f", str(COMPOSE_FILE), "config", "-q", env={variable: ""}
    )
    assert done.returncode != 0
    assert variable in done.stderr, done.stderr


ALL_INTERFACES = "0.0.0.0"  # noqa: S104 (what an operator may set; bound to nothing here)


@pytest.mark.parametrize("address", ["127.0.0.1", ALL_INTERFACES])
def test_only_ingest_the_wall_and_grafana_are_published(address: str) -> None:
    """Whatever EGOV_PUBLISH_ADDRESS says, it publishes these three and nothing else."""
    model = compose_model(COMPOSE_FILE, env={"EGOV_PUBLISH_ADDRESS": address})
    ports = {name: published(s) for name, s in model["services"].items() if published(s)}
    assert ports == {
        "ingest": [(address, "8080")],
        "wall": [(address, "8083")],
        "grafana": [(address, "3000")],
    }


def test_monitoring_and_the_alerts_api_are_exposed_only_when_asked() -> None:
    env = {"EGOV_PUBLISH_ADDRESS": ALL_INTERFACES, "EGOV_MONITORING_ADDRESS": "10.0.0.5"}
    model = compose_model(COMPOSE_FILE, EXPOSE_FILE, env=env)
    services = model["services"]
    assert published(services["prometheus"]) == [("10.0.0.5", "9090")]
    assert published(services["alertmanager"]) == [("10.0.0.5", "9093")]
    # Where notifications link to, with the acknowledgements on-call make.
    assert published(services["alerts"]) == [("10.0.0.5", "8082")]
    # Without an address of its own, loopback: never EGOV_PUBLISH_ADDRESS.
    model = compose_model(COMPOSE_FILE, EXPOSE_FILE, env={"EGOV_PUBLISH_ADDRESS": ALL_INTERFACES})
    assert published(model["services"]["alertmanager"]) == [("127.0.0.1", "9093")]
    assert published(model["services"]["alerts"]) == [("127.0.0.1", "8082")]
    for name in ("kafka", "postgres", "metrics-1", "metrics-2"):
        assert published(services[name]) == [], name


def test_prometheus_admin_apis_are_off(compose: dict[str, Any]) -> None:
    command = command_of(compose["services"]["prometheus"])
    assert not [flag for flag in command if "enable-lifecycle" in flag or "admin-api" in flag]


def test_grafana_admin_password_is_generated_on_first_start(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    assert "GF_SECURITY_ADMIN_PASSWORD" not in grafana["environment"]
    script = "\n".join(command_of(grafana)).replace("$$", "$")
    assert "head -c 24 /dev/urandom" in script and "umask 077" in script
    assert 'export GF_SECURITY_ADMIN_PASSWORD="$(cat "$file")"' in script
    assert "file=/var/lib/grafana/admin-password" in script
    # Kept in the data volume: the same password after a restart.
    volumes = [v["target"] if isinstance(v, dict) else v.split(":")[1] for v in grafana["volumes"]]
    assert "/var/lib/grafana" in volumes


def test_every_kafka_client_has_its_own_principal(compose: dict[str, Any]) -> None:
    from services.common.kafka_acls import Principals

    services = compose["services"]
    for name, user in KAFKA_PRINCIPALS.items():
        environment = services[name]["environment"]
        assert environment["EGOV_KAFKA_SASL_USERNAME"] == user, name
        stand_in = REQUIRED_SECRETS[f"KAFKA_{user.upper()}_PASSWORD"]
        assert environment["EGOV_KAFKA_SASL_PASSWORD"] == stand_in, name
    assert set(KAFKA_PRINCIPALS.values()) - {"admin"} <= set(Principals().model_dump().values())
    assert command_of(services["kafka-setup"]) == ["python", "-m", "services.common.kafka_acls"]


def test_kafka_runs_with_sasl_and_acls(compose: dict[str, Any]) -> None:
    from services.common.apache_kafka import SECURITY_PROPERTIES
    from services.common.kafka_acls import Principals

    kafka = compose["services"]["kafka"]
    assert published(kafka) == []
    mounted = dict(bind_mounts(kafka))
    assert mounted[SECURITY_PROPERTIES.resolve()] == "/etc/egov/kafka/security.properties"
    script = "\n".join(command_of(kafka)).replace("$$", "$")
    assert "/etc/egov/kafka/security.properties" in script.split("kafka-storage.sh")[0]
    for user in ["admin", *Principals().model_dump().values()]:
        assert f'--add-scram "SCRAM-SHA-512=[name={user},password=$KAFKA_' in script, user
    assert "listeners=BROKER://:9092,CONTROLLER://:9093" in script
    assert "--command-config /tmp/admin.properties" in " ".join(kafka["healthcheck"]["test"])
    settings = dict(
        line.split("=", 1)
        for line in SECURITY_PROPERTIES.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert settings["allow.everyone.if.no.acl.found"] == "false"
    assert settings["authorizer.class.name"].endswith("StandardAuthorizer")
    assert "PLAINTEXT:PLAINTEXT" not in settings["listener.security.protocol.map"]


TLS_FILE = REPO / "docker-compose.tls.yml"


def test_kafka_over_tls_reaches_every_client_with_the_ca() -> None:
    """docker-compose.tls.yml: the broker's key and CA where deploy/kafka/tls.properties
    reads them, and every Kafka client given that CA (services/common/settings.py)."""
    from services.common.apache_kafka import TLS_PROPERTIES

    model = compose_model(COMPOSE_FILE, TLS_FILE, env={"EGOV_KAFKA_TLS_DIR": "/srv/tls"})
    services = model["services"]
    tls = properties(TLS_PROPERTIES)
    kafka_mounts = dict(bind_mounts(services["kafka"]))
    assert kafka_mounts[Path("/srv/tls/broker.pem")] == tls["ssl.keystore.location"]
    assert kafka_mounts[Path("/srv/tls/ca.pem")] == tls["ssl.truststore.location"]
    assert kafka_mounts[TLS_PROPERTIES.resolve()] == "/etc/egov/kafka/tls.properties"
    for name in KAFKA_PRINCIPALS:
        ca = services[name]["environment"]["EGOV_KAFKA_TLS_CA_FILE"]
        assert dict(bind_mounts(services[name]))[Path("/srv/tls/ca.pem")] == ca, name
    # Without the folder, compose says what is missing rather than starting in clear.
    done = run(require("docker-compose"), "-f", str(COMPOSE_FILE), "-f", str(TLS_FILE),
               "config", "-q")  # fmt: skip
    assert done.returncode != 0 and "EGOV_KAFKA_TLS_DIR" in done.stderr


def properties(path: Path) -> dict[str, str]:
    return dict(
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )


def test_tls_covers_every_listener_security_properties_opens() -> None:
    from services.common.apache_kafka import SECURITY_PROPERTIES, TLS_PROPERTIES

    def listeners(path: Path) -> dict[str, str]:
        pairs = properties(path)["listener.security.protocol.map"].split(",")
        return dict(pair.split(":") for pair in pairs)

    plain, tls = listeners(SECURITY_PROPERTIES), listeners(TLS_PROPERTIES)
    assert tls.keys() == plain.keys()
    assert {name for name, protocol in tls.items() if protocol != "SASL_SSL"} == {"CONTROLLER"}


@pytest.mark.parametrize("with_certificate", [False, True])
def test_the_kafka_entrypoint_appends_tls_only_with_a_certificate(
    compose: dict[str, Any], tmp_path: Path, with_certificate: bool
) -> None:
    """The start script itself, up to the storage format, run by bash in a folder of its
    own: the broker's configuration and the healthcheck's login, with and without TLS."""
    script = "\n".join(command_of(compose["services"]["kafka"])).replace("$$", "$")
    script = script.split("/opt/kafka/bin/kafka-storage.sh")[0]
    etc, out = tmp_path / "etc", tmp_path / "out"
    (etc / "tls").mkdir(parents=True)
    out.mkdir()
    for source in (DEPLOY / "kafka").glob("*.properties"):
        (etc / source.name).write_text(source.read_text())
    if with_certificate:
        (etc / "tls" / "broker.pem").write_text("stand-in")
    # The container's /tmp first: the test's own folder is under the machine's /tmp.
    script = script.replace("/tmp/", f"{out}/")  # noqa: S108 (the container's, replaced)
    script = script.replace("/etc/egov/kafka", str(etc))
    passwords = {k: v for k, v in REQUIRED_SECRETS.items() if k.startswith("KAFKA_")}
    done = subprocess.run(
        ["bash", "-ec", script], env={"PATH": os.environ["PATH"], **passwords},
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    config = properties(out / "node.properties")
    admin = properties(out / "admin.properties")
    if with_certificate:
        assert config["listener.security.protocol.map"].count("SASL_SSL") == 2
        # Where docker-compose.tls.yml mounts the broker's key in the container.
        assert config["ssl.keystore.location"] == "/etc/egov/kafka/tls/broker.pem"
        assert admin["security.protocol"] == "SASL_SSL"
        assert admin["ssl.truststore.location"] == f"{etc}/tls/ca.pem"
    else:
        assert "SSL" not in config["listener.security.protocol.map"]
        assert "ssl.keystore.location" not in config
        assert admin["security.protocol"] == "SASL_PLAINTEXT"
    assert config["advertised.listeners"] == "BROKER://kafka:9092"
