"""Apache Kafka, the production broker, run from its Maven Central jars.

``make test`` runs the suites on it beside the embedded tansu, ``make up BROKER=kafka``
runs the stack on it, and the fault suite runs a three-broker cluster of it. The jars
are the ones ``deploy/kafka/pom.xml`` pins, resolved by Maven into ``var/cache/`` the
first time; every node reads ``deploy/kafka/server.properties``, the file
docker-compose.yml mounts, and only its identity and the cluster's replication settings
are appended to it, as compose's entrypoint does.
"""

from __future__ import annotations

import base64
import fcntl
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from services.common.broker import BrokerError, ManagedServer, free_port, port_open
from services.common.paths import REPO_ROOT

KAFKA_VERSION = "4.1.1"
DEPLOY_DIR = REPO_ROOT / "deploy" / "kafka"
SERVER_PROPERTIES = DEPLOY_DIR / "server.properties"
SECURITY_PROPERTIES = DEPLOY_DIR / "security.properties"
"""SASL listeners and the ACL authorizer, appended when a cluster runs with ``KafkaAuth``."""
TLS_PROPERTIES = DEPLOY_DIR / "tls.properties"
"""TLS on the client listeners, appended after those when a cluster runs with ``KafkaTls``."""
CACHE_DIR = REPO_ROOT / "var" / "cache" / f"kafka-{KAFKA_VERSION}"  # one per checkout
#: Each broker's heap: the machine has 24 GiB and two cores; three brokers fit in 1.5.
HEAP = "512m"


def kafka_libs(cache: Path = CACHE_DIR) -> Path:
    """The folder of the pinned broker's jars, resolved through Maven on first use."""
    libs = cache / "libs"
    complete = libs / ".complete"
    if complete.exists():
        return libs
    cache.mkdir(parents=True, exist_ok=True)
    # Two test sessions may start at once: one resolves, the other waits for it.
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if complete.exists():
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError("Maven (mvn) is needed to fetch Apache Kafka's jars")
        shutil.rmtree(libs, ignore_errors=True)
        done = subprocess.run(  # noqa: S603 (our own arguments)
            [
                mvn, "--batch-mode", "--quiet", "-f", str(DEPLOY_DIR / "pom.xml"),
                "dependency:copy-dependencies", "-DincludeScope=runtime",
                f"-DoutputDirectory={libs}",
            ],
            capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise BrokerError(f"Maven could not fetch Apache Kafka:\n{done.stdout}{done.stderr}")
        complete.touch()
    return libs


def new_cluster_id() -> str:
    """A base64url UUID, what ``kafka-storage.sh random-uuid`` prints."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


@dataclass(frozen=True)
class KafkaAuth:
    """Credentials of an authenticated cluster: the brokers' own principals (``admin``
    between brokers, ``controller`` on the controller listener, both super users) and
    the SCRAM-SHA-512 users made when the storage is formatted (name -> password)."""

    admin_password: str
    controller_password: str
    users: dict[str, str]

    def scram_arguments(self) -> list[str]:
        """``kafka-storage format`` arguments that create every SCRAM user, admin first."""
        users = {"admin": self.admin_password, **self.users}
        return [
            f"--add-scram=SCRAM-SHA-512=[name={name},password={password}]"
            for name, password in users.items()
        ]

    def jaas_settings(self) -> dict[str, str]:
        """Each node's logins: PLAIN on the controller listener, SCRAM between brokers."""
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule required"
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required"
        controller = self.controller_password
        return {
            "listener.name.controller.plain.sasl.jaas.config": f'{plain} username="controller"'
            f' password="{controller}" user_controller="{controller}";',
            "listener.name.broker.scram-sha-512.sasl.jaas.config": f'{scram} username="admin"'
            f' password="{self.admin_password}";',
        }


@dataclass(frozen=True)
class KafkaTls:
    """The brokers' certificates: the listeners that carry clients speak ``SASL_SSL``.

    ``keystore`` is a PEM file of the brokers' private key (PKCS#8, unencrypted) followed
    by its certificate chain, valid for the host clients connect to; ``truststore`` the
    PEM certificates of the CA that signs it (and, with ``client_auth`` ``required``, the
    clients' certificates). Only with ``KafkaAuth``: TLS is added to the SASL topology."""

    keystore: Path
    truststore: Path
    client_auth: str = "none"

    def settings(self) -> dict[str, object]:
        return {
            "ssl.keystore.location": self.keystore,
            "ssl.truststore.location": self.truststore,
            "ssl.client.auth": self.client_auth,
        }


@dataclass
class KafkaNode:
    """One combined broker-and-controller process of a cluster."""

    node_id: int
    port: int
    controller_port: int
    data_dir: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None


class KafkaCluster(ManagedServer):
    """``nodes`` Apache Kafka brokers on loopback, with their logs under ``root``.

    The data survives ``stop()`` and a new ``start()`` on the same ``root`` (`make up
    BROKER=kafka` keeps acknowledged events across a Ctrl-C). ``kill`` and ``restart``
    of one node are for the fault suite.
    """

    def __init__(
        self,
        root: Path,
        nodes: int = 1,
        ports: list[int] | None = None,
        controller_ports: list[int] | None = None,
        host: str = "127.0.0.1",
        auth: KafkaAuth | None = None,
        tls: KafkaTls | None = None,
        log_dir: Path | None = None,
        log_prefix: str = "",
    ) -> None:
        """Each node logs to ``log_dir`` (else ``root``) as ``{log_prefix}node-N.log``."""
        if tls is not None and auth is None:
            raise ValueError("a cluster with TLS also runs with KafkaAuth (SASL_SSL)")
        self.root = root
        self.host = host
        self.auth = auth
        self.tls = tls
        self.libs = kafka_libs()
        ports = ports or [free_port() for _ in range(nodes)]
        controller_ports = controller_ports or [free_port() for _ in range(nodes)]
        self.nodes = [
            KafkaNode(i + 1, port, controller, root / f"node-{i + 1}",
                      (log_dir or root) / f"{log_prefix}node-{i + 1}.log")
            for i, (port, controller) in enumerate(zip(ports, controller_ports, strict=True))
        ]  # fmt: skip

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"{self.host}:{n.port}" for n in self.nodes)

    @property
    def replication(self) -> int:
        """Replicas of each topic: all brokers, up to three."""
        return min(3, len(self.nodes))

    def _cluster_id(self) -> str:
        stored = self.root / "cluster.id"
        if not stored.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            stored.write_text(new_cluster_id())
        return stored.read_text().strip()

    def node_settings(self, node: KafkaNode) -> dict[str, object]:
        """What differs per node and per cluster size; the rest is server.properties."""
        voters = ",".join(f"{n.node_id}@{self.host}:{n.controller_port}" for n in self.nodes)
        replicas = self.replication
        name = "PLAINTEXT" if self.auth is None else "BROKER"
        return {
            "node.id": node.node_id,
            "listeners": f"{name}://{self.host}:{node.port},"
            f"CONTROLLER://{self.host}:{node.controller_port}",
            "advertised.listeners": f"{name}://{self.host}:{node.port}",
            "controller.quorum.voters": voters,
            "log.dirs": node.data_dir,
            "default.replication.factor": replicas,
            "min.insync.replicas": max(1, replicas - 1),
            "offsets.topic.replication.factor": replicas,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": max(1, replicas - 1),
            **({} if self.auth is None else self.auth.jaas_settings()),
            **({} if self.tls is None else self.tls.settings()),
        }

    def _write_config(self, node: KafkaNode) -> Path:
        """server.properties with this node's settings appended (the later key wins), as
        docker-compose.yml's entrypoint builds it: one file for format and for the start."""
        config = self.root / f"node-{node.node_id}.properties"
        lines = [f"{key}={value}" for key, value in self.node_settings(node).items()]
        shared = SERVER_PROPERTIES.read_text()
        if self.auth is not None:
            shared += "\n" + SECURITY_PROPERTIES.read_text()
        if self.tls is not None:
            shared += "\n" + TLS_PROPERTIES.read_text()
        config.touch(mode=0o600)  # it holds the brokers' passwords when auth is on
        config.write_text(shared + "\n# this node (services/common/apache_kafka.py)\n"
                          + "\n".join(lines) + "\n")  # fmt: skip
        return config

    def _java(self, main: str, *args: str) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise BrokerError("Java (OpenJDK 17) is needed to run Apache Kafka")
        return [
            java, f"-Xms{HEAP}", f"-Xmx{HEAP}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={DEPLOY_DIR / 'log4j2.yaml'}",
            "-cp", f"{self.libs}/*", main, *args,
        ]  # fmt: skip

    def _format(self, node: KafkaNode, config: Path) -> None:
        if (node.data_dir / "meta.properties").exists():
            return
        node.data_dir.mkdir(parents=True, exist_ok=True)
        command = self._java(
            "kafka.tools.StorageTool", "format", "--ignore-formatted",
            f"--cluster-id={self._cluster_id()}", "--config", str(config),
            *([] if self.auth is None else self.auth.scram_arguments()),
        )  # fmt: skip
        command = [c for c in command if not c.startswith("-Xm")]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
        if done.returncode != 0:
            raise BrokerError(f"kafka-storage format failed for node {node.node_id}:\n"
                              f"{done.stdout}{done.stderr}")  # fmt: skip

    def _spawn(self, node: KafkaNode) -> None:
        config = self._write_config(node)
        self._format(node, config)
        command = self._java("kafka.Kafka", str(config))
        with node.log.open("ab") as out:
            # A session of its own: a Ctrl-C meant for `make up` must not stop the broker
            # before the services that still need it have drained.
            node.process = subprocess.Popen(  # noqa: S603
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._spawned()

    @staticmethod
    def _logged_start(node: KafkaNode, offset: int) -> bool:
        with node.log.open("rb") as log:
            log.seek(offset)
            return b"Kafka Server started" in log.read()

    def start(self, timeout_s: float = 120.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        offsets = {n.node_id: n.log.stat().st_size if n.log.exists() else 0 for n in self.nodes}
        for node in self.nodes:
            self._spawn(node)
        deadline = time.monotonic() + timeout_s
        try:
            for node in self.nodes:
                # Started together: a controller quorum needs a majority before any answers.
                self._wait_ready_from(node, offsets[node.node_id], deadline)
        except BrokerError:
            self.stop()
            raise

    def _wait_ready_from(self, node: KafkaNode, offset: int, deadline: float) -> None:
        while True:
            if node.process is None or node.process.poll() is not None:
                code = node.process.returncode if node.process else None
                raise BrokerError(f"Kafka node {node.node_id} exited ({code}): see {node.log}")
            if port_open(self.host, node.port) and self._logged_start(node, offset):
                return
            if time.monotonic() > deadline:
                raise BrokerError(f"Kafka node {node.node_id} did not start: see {node.log}")
            time.sleep(0.1)

    def node(self, node_id: int) -> KafkaNode:
        return next(n for n in self.nodes if n.node_id == node_id)

    def kill(self, node_id: int) -> None:
        """SIGKILL one node, as a crashed host would stop."""
        node = self.node(node_id)
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(signal.SIGKILL)
            node.process.wait(timeout=30)

    def restart(self, node_id: int, timeout_s: float = 120.0) -> None:
        node = self.node(node_id)
        offset = node.log.stat().st_size if node.log.exists() else 0
        self._spawn(node)
        self._wait_ready_from(node, offset, time.monotonic() + timeout_s)

    def stop(self) -> None:
        """Controlled shutdown of every node (leadership moves first, logs are flushed)."""
        running = [n.process for n in self.nodes if n.process and n.process.poll() is None]
        for process in running:
            process.terminate()
        for process in running:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
        for node in self.nodes:
            node.process = None

    @property
    def pids(self) -> list[int]:
        """The nodes' processes that run."""
        return [n.process.pid for n in self.nodes if n.process and n.process.poll() is None]
