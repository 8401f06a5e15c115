"""Configuration shared by every service, read once from the environment.

Every field is documented where it is declared, with its environment variable.
Service-specific settings subclass :class:`CommonSettings`, and those of a service that
answers HTTP mix in :class:`HeadBounds` (the wall's too); library code never reads
``os.environ`` itself.
"""

import math
import os
import ssl
from pathlib import Path
from typing import Any, Self

from aiokafka.helpers import create_ssl_context
from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.localpg import STACK_DATABASE, STACK_PORT, SUPERUSER, running_stack_port
from services.common.paths import SCHEMAS_DIR, UNITS_DIR
from services.common.signing import RecordSigner
from services.common.variables import check_environment

PUBLIC_DEFAULT_KEYS = frozenset({"egov-dev-only-signing-key"})
"""Keys that were once written in this repository (docker-compose.yml's old default):
everyone has them, so they sign nothing anywhere."""
MIN_KEY_BITS = 256


class SigningKeyError(ValueError):
    """The record signing key is refused: the service does not start."""


class KafkaTlsError(ValueError):
    """The TLS settings for the brokers cannot be loaded: the service does not start."""


def _no_key_password() -> str:
    raise KafkaTlsError(
        "EGOV_KAFKA_TLS_KEY_FILE is encrypted: set its password in EGOV_KAFKA_TLS_KEY_PASSWORD"
    )


def key_entropy_bits(text: str) -> float:
    """A generous estimate of a key's entropy: its length times the bits of the smallest
    alphabet it is written in (hex 4, base64 6, anything else 6.5). A text of fewer than 8
    distinct characters is judged by those (``"k" * 64`` is worth nothing)."""
    if not text:
        return 0.0
    if all(c in "0123456789abcdefABCDEF" for c in text):
        per_char = 4.0
    elif all(c.isascii() and (c.isalnum() or c in "+/=-_") for c in text):
        per_char = 6.0
    else:
        per_char = 6.5
    distinct = len(set(text))
    if distinct < 8:
        per_char = math.log2(distinct)
    return len(text) * per_char


def signing_key_problem(text: str, *, required: bool) -> str | None:
    """Why ``text`` cannot be the record signing key, or None. ``required``: outside the
    embedded default, where a missing or weak key is refused too."""
    if text in PUBLIC_DEFAULT_KEYS:
        return "is the public default written in the repository; generate one: openssl rand -hex 32"
    if "," in text:
        # EGOV_RECORD_VERIFYING_KEYS lists keys with commas: a key holding one could not
        # be listed there during a rotation.
        return "holds a comma; generate one: openssl rand -hex 32"
    if not required:
        return None
    if not text:
        return "is required (shared by ingest and the metrics workers): openssl rand -hex 32"
    if key_entropy_bits(text) < MIN_KEY_BITS:
        return (
            f"is too weak (about {key_entropy_bits(text):.0f} bits; at least {MIN_KEY_BITS},"
            " e.g. 64 hex digits): openssl rand -hex 32"
        )
    return None


def stack_database_url() -> str:
    """`make up`'s database, on the port its running server names (else the default)."""
    port = running_stack_port() or STACK_PORT
    return f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{STACK_DATABASE}"


class HeadBounds(BaseModel):
    """The bounds on a request head of every service that answers HTTP through uvicorn:
    ingest, the alerts API and the wall (services/common/httphead.py).

    Declared once and mixed into each of their settings classes (the wall's does not
    subclass :class:`CommonSettings`: it holds no broker or database), so the three read
    the same variables and a shared environment sets them once.
    """

    header_timeout_s: float = Field(default=10.0, gt=0, le=3600, allow_inf_nan=False)
    """``EGOV_HEADER_TIMEOUT_S``: how long a connection may take to send a whole request
    head, counted from when it opens or its previous answer was sent (408, or a plain
    close when nothing came, after that). A head is under a kilobyte: unlike a body
    (ingest's ``EGOV_BODY_TIMEOUT_S``, a gap), this is a deadline, so a client trickling
    its headers a byte at a time cannot hold a connection for ever (reviews 82, 87). It
    never runs while an answer is sent: the wall's event streams are not cut."""

    max_header_bytes: int = Field(default=32 * 1024, ge=4096, le=1024 * 1024)
    """``EGOV_MAX_HEADER_BYTES``: size of a request head (request line and header lines),
    at most (4 KiB to 1 MiB; 431 and a close past it): the HTTP parser keeps every header
    line, so without a bound one client grows the process's memory by what it sends."""


class CommonSettings(BaseSettings):
    """Broker, database, topics and data locations.

    Variables are prefixed ``EGOV_``; the two that every Kafka and PostgreSQL tool
    already knows (``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``) are also read
    under their usual names.
    """

    model_config = SettingsConfigDict(
        env_prefix="EGOV_",
        extra="ignore",
        populate_by_name=True,
        # A refused setting names its variable; the values (passwords, keys, DSNs) are
        # never printed back.
        hide_input_in_errors=True,
    )

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "EGOV_KAFKA_BOOTSTRAP_SERVERS"),
    )
    """``KAFKA_BOOTSTRAP_SERVERS``: comma-separated host:port list."""

    kafka_idempotence: bool = False
    """``EGOV_KAFKA_IDEMPOTENCE``: idempotent producer. On for Apache Kafka; off for the
    embedded broker (tansu answers no InitProducerId). Outputs stay idempotent either way."""

    embedded_broker: bool = False
    """``EGOV_EMBEDDED_BROKER``: the broker is the embedded tansu, which needs workarounds of
    its own (services/metrics/compat.py). `make up` and the tests set it when they run
    tansu; on Apache Kafka it stays off, and none of them is used."""

    kafka_request_timeout_s: float = Field(default=10.0, gt=0, le=3600, allow_inf_nan=False)
    """``EGOV_KAFKA_REQUEST_TIMEOUT_S``: upper bound on one produce or admin request."""

    topic_documents: str = "egov.documents"
    """``EGOV_TOPIC_DOCUMENTS``: topic of the document family."""

    topic_dossiers: str = "egov.dossiers"
    """``EGOV_TOPIC_DOSSIERS``: topic of the dossier family."""

    topic_meetings: str = "egov.meetings"
    """``EGOV_TOPIC_MEETINGS``: topic of the meeting family."""

    topic_dead_letter: str = "egov.dead-letter"
    """``EGOV_TOPIC_DEAD_LETTER``: where invalid records go, with the reason in headers."""

    dead_letter_retention_days: int = Field(default=90, ge=1, le=3650)
    """``EGOV_DEAD_LETTER_RETENTION_DAYS``: how long the dead-letter topic keeps a record
    (its ``retention.ms``, set when ``ensure_topics`` creates the topic and raised on an
    existing one that keeps less). A dead letter waits for a person, and EgovDeadLetters
    resolves 15 minutes after the last one: with the event topics' 7 days, one nobody
    handled in a week expired unseen (review 81). 90 days: a quarter's reporting period.
    Keep it above the event topics' retention (deploy/kafka/server.properties)."""

    topic_partitions: int = Field(default=6, ge=1)
    """``EGOV_TOPIC_PARTITIONS``: partitions of each event topic (the ceiling on workers)."""

    topic_replication: int = Field(default=1, ge=1)
    """``EGOV_TOPIC_REPLICATION``: replication factor (3 on a production Kafka cluster)."""

    record_signing_key: SecretStr | None = None
    """``EGOV_RECORD_SIGNING_KEY``: shared by ingest, ``backfill`` and the metrics workers.
    Ingest signs the records it validated and summarised; workers trust what verifies
    (services/common/signing.py). Required outside the embedded default, and strong: at
    least 32 bytes of entropy (``openssl rand -hex 32``); a service refuses to start with
    none, the old public default, or a short one (``SigningKeyError``). On the embedded
    broker it may be unset (nothing is signed, workers validate every record); ``make
    up`` keeps a random one in its var/ folder."""

    record_verifying_keys: SecretStr | None = None
    """``EGOV_RECORD_VERIFYING_KEYS``: more keys the services verify records under, never
    sign with (comma-separated, each as strong as the signing key). A rotation: give the
    workers the next key here, then ingest the next key as its signing key (and the
    previous one here while its records are still read), then drop the previous one. A
    record signed under any of them is trusted as a signed one (its summary counted, its
    acceptance time believed); without it, records of the other key are read as unsigned."""

    kafka_sasl_username: str | None = None
    """``EGOV_KAFKA_SASL_USERNAME``: this service's Kafka principal (SASL/SCRAM-SHA-512).
    Unset: no authentication (the embedded tansu on loopback). docker-compose.yml gives
    ingest, ``backfill``, the metrics workers and the alerts service one each; the broker's
    ACLs say what each may read and write (services/common/kafka_acls.py)."""

    kafka_sasl_password: SecretStr | None = None
    """``EGOV_KAFKA_SASL_PASSWORD``: that principal's password."""

    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    """``EGOV_KAFKA_SASL_MECHANISM``: SCRAM-SHA-512, as deploy/kafka/security.properties."""

    kafka_tls: bool = False
    """``EGOV_KAFKA_TLS``: talk to the brokers over TLS (``SASL_SSL`` with a principal,
    ``SSL`` without), verifying their certificate and host name. On by itself when any
    ``EGOV_KAFKA_TLS_*`` file is set: a CA given for a plaintext connection would be a
    misconfiguration that silently sends records in clear. SCRAM alone protects the
    passwords, not the records on the wire (docs/security.md)."""

    kafka_tls_ca_file: Path | None = None
    """``EGOV_KAFKA_TLS_CA_FILE``: PEM certificates of the CA that signed the brokers'
    certificates (a private CA, as most clusters use). Unset: the system's trust store."""

    kafka_tls_cert_file: Path | None = None
    """``EGOV_KAFKA_TLS_CERT_FILE``: this service's client certificate (PEM, chain after
    it), for a listener with ``ssl.client.auth=required``. Needs the key file."""

    kafka_tls_key_file: Path | None = None
    """``EGOV_KAFKA_TLS_KEY_FILE``: the client certificate's private key (PEM)."""

    kafka_tls_key_password: SecretStr | None = None
    """``EGOV_KAFKA_TLS_KEY_PASSWORD``: the password of that key, if it is encrypted."""

    database_url: SecretStr = Field(
        default_factory=lambda: SecretStr(stack_database_url()),
        validation_alias=AliasChoices("DATABASE_URL", "EGOV_DATABASE_URL"),
    )
    """``DATABASE_URL``: PostgreSQL DSN (a secret: it may carry a password). Unset: the
    server that `make up` runs from ``var/postgres`` (services/common/localpg.py), so the
    CLI finds it by itself while the stack runs."""

    counting_grace_days: float = Field(
        default=14.0,
        gt=0,
        validation_alias=AliasChoices(
            "EGOV_COUNTING_GRACE_DAYS", "EGOV_METRICS_GRACE_DAYS", "counting_grace_days"
        ),
    )
    """``EGOV_COUNTING_GRACE_DAYS`` (formerly ``EGOV_METRICS_GRACE_DAYS``, still read): how
    old an event may be, when it is accepted, and still count in the day it happened. One
    horizon for ingest (older events are refused with 422 and enter through ``egov-pulse
    backfill``), and for the metrics workers, which judge "too late" against the time
    ingest accepted the record (header ``egov_accepted_ms``, else the record's Kafka
    timestamp), never their own clock when they read it. 14 days: the Tết break (up to 9
    days off) and the days after it to upload the backlog. Backfilled events have no grace."""

    clock_skew_s: float = Field(
        default=300.0,
        gt=0,
        validation_alias=AliasChoices(
            "EGOV_CLOCK_SKEW_S", "EGOV_METRICS_CLOCK_SKEW_S", "clock_skew_s"
        ),
    )
    """``EGOV_CLOCK_SKEW_S`` (``EGOV_METRICS_CLOCK_SKEW_S``, the workers' name until
    2026-12-04, still read): how far ahead of the clock an event time may be (publisher
    clocks drift). One setting for ingest, which refuses such an event with 422, and the
    metrics workers, which dead-letter it as ``time-in-future``: with two, an event ingest
    accepted with 202 could be dead-lettered by a worker set tighter."""

    schemas_dir: Path = SCHEMAS_DIR
    """``EGOV_SCHEMAS_DIR``: the event contract (CloudEvents + JSON Schema)."""

    units_dir: Path = UNITS_DIR
    """``EGOV_UNITS_DIR``: the administrative-unit data shipped with the repository."""

    @field_validator(
        "kafka_tls_ca_file", "kafka_tls_cert_file", "kafka_tls_key_file", mode="before"
    )
    @classmethod
    def _no_file(cls, value: Any) -> Any:
        # docker-compose passes an unset variable as "" (``${EGOV_KAFKA_TLS_CA_FILE:-}``).
        return None if value == "" else value

    @model_validator(mode="after")
    def _names_known(self) -> Self:
        """Refuse a retired variable and warn of an unknown one (services/common/variables.py):
        with ``extra="ignore"`` either would otherwise leave a default in its place."""
        check_environment(os.environ)
        return self

    @model_validator(mode="after")
    def _tls_loads(self) -> Self:
        """Refuse at start-up, naming the variable, a TLS set-up that cannot connect: a
        certificate without its key, or a file that is missing or not PEM. Otherwise the
        first sign would be a client that retries its connection forever."""
        self.kafka_ssl_context()
        return self

    @property
    def kafka_uses_tls(self) -> bool:
        files = (self.kafka_tls_ca_file, self.kafka_tls_cert_file, self.kafka_tls_key_file)
        return self.kafka_tls or any(f is not None for f in files)

    def kafka_ssl_context(self) -> ssl.SSLContext | None:
        """The client side of TLS to the brokers (None without TLS): certificate and host
        name verified against ``EGOV_KAFKA_TLS_CA_FILE`` (else the system's CAs), the
        client certificate loaded when one is set. Raises ``KafkaTlsError``."""
        if not self.kafka_uses_tls:
            return None
        cert, key = self.kafka_tls_cert_file, self.kafka_tls_key_file
        if (cert is None) != (key is None):
            raise KafkaTlsError(
                "EGOV_KAFKA_TLS_CERT_FILE and EGOV_KAFKA_TLS_KEY_FILE go together: "
                f"one is set ({cert or key}), the other is not"
            )
        password = self.kafka_tls_key_password
        try:
            context: ssl.SSLContext = create_ssl_context(cafile=self.kafka_tls_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise KafkaTlsError(
                f"EGOV_KAFKA_TLS_CA_FILE {self.kafka_tls_ca_file}: cannot load it ({exc})"
            ) from exc
        if cert is not None and key is not None:
            try:
                # Never None: OpenSSL would then ask for an encrypted key's pass phrase on
                # the terminal, and a service started from one would wait there.
                context.load_cert_chain(
                    cert, key, _no_key_password if password is None else password.get_secret_value()
                )
            except KafkaTlsError:
                raise
            except (OSError, ssl.SSLError) as exc:
                raise KafkaTlsError(
                    f"EGOV_KAFKA_TLS_CERT_FILE {cert} with EGOV_KAFKA_TLS_KEY_FILE {key}: "
                    f"cannot load them ({exc})"
                ) from exc
        return context

    def topic_for_family(self, family: str) -> str:
        """The topic that carries one event family (``documents``, ``dossiers``, ``meetings``)."""
        topics = {
            "documents": self.topic_documents,
            "dossiers": self.topic_dossiers,
            "meetings": self.topic_meetings,
        }
        return topics[family]

    def record_signer(
        self, contract_fingerprint: bytes, summary_fingerprint: bytes | None = None
    ) -> RecordSigner | None:
        """The signer for this key and contract (and summaries computed under
        ``summary_fingerprint``, see services/common/summaries.py), or None without a key
        on the embedded broker. Raises ``SigningKeyError`` where the key is refused."""
        if not self.signs_records or self.record_signing_key is None:
            return None
        return RecordSigner(
            self.signing_key_text.encode(),
            contract_fingerprint,
            summary_fingerprint,
            also=self.verifying_keys,
        )

    @property
    def signing_key_text(self) -> str:
        """``EGOV_RECORD_SIGNING_KEY`` without surrounding whitespace ("" unset): a key
        file's trailing newline is never part of the key, and the verifying keys are read
        the same way, so one secret is one key in either variable."""
        key = self.record_signing_key
        return "" if key is None else key.get_secret_value().strip()

    @property
    def verifying_keys(self) -> tuple[bytes, ...]:
        """``EGOV_RECORD_VERIFYING_KEYS``, each checked as the signing key is (raises
        ``SigningKeyError`` naming its place in the list)."""
        raw = self.record_verifying_keys
        if raw is None:
            return ()
        keys = []
        for place, text in enumerate(raw.get_secret_value().split(","), 1):
            text = text.strip()
            if not text:
                continue
            problem = signing_key_problem(text, required=True)
            if problem is not None:
                raise SigningKeyError(f"EGOV_RECORD_VERIFYING_KEYS key {place} {problem}")
            keys.append(text.encode())
        return tuple(keys)

    @property
    def signs_records(self) -> bool:
        """Whether a record signing key is set (ingest signs and summarises, workers trust).

        Raises ``SigningKeyError`` when the key is refused: missing or weak outside the
        embedded broker, or the old public default anywhere. Every service that signs or
        trusts records asks at start-up, so that is when a bad key stops it."""
        text = self.signing_key_text
        problem = signing_key_problem(text, required=not self.embedded_broker)
        if problem is not None:
            raise SigningKeyError(f"EGOV_RECORD_SIGNING_KEY {problem}")
        return bool(text)

    @property
    def kafka_security(self) -> dict[str, object]:
        """aiokafka's connection options: this service's principal and TLS (none without
        either). Each call builds its own TLS context, so a renewed client reads the CA
        and certificate files as they are then (rotated certificates)."""
        options: dict[str, object] = {}
        context = self.kafka_ssl_context()
        if context is not None:
            options.update(security_protocol="SSL", ssl_context=context)
        if self.kafka_sasl_username:
            password = self.kafka_sasl_password
            options.update(
                security_protocol="SASL_SSL" if context is not None else "SASL_PLAINTEXT",
                sasl_mechanism=self.kafka_sasl_mechanism,
                sasl_plain_username=self.kafka_sasl_username,
                sasl_plain_password="" if password is None else password.get_secret_value(),
            )
        return options

    @property
    def event_topics(self) -> list[str]:
        return [self.topic_documents, self.topic_dossiers, self.topic_meetings]
