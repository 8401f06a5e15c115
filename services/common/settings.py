"""Configuration shared by every service, read once from the environment.

Every field is documented where it is declared, with its environment variable.
Service-specific settings subclass :class:`CommonSettings`; library code never
reads ``os.environ`` itself.
"""

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.localpg import STACK_DATABASE, STACK_PORT, SUPERUSER, running_stack_port
from services.common.paths import SCHEMAS_DIR, UNITS_DIR
from services.common.signing import RecordSigner


def stack_database_url() -> str:
    """`make up`'s database, on the port its running server names (else the default)."""
    port = running_stack_port() or STACK_PORT
    return f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{STACK_DATABASE}"


class CommonSettings(BaseSettings):
    """Broker, database, topics and data locations.

    Variables are prefixed ``EGOV_``; the two that every Kafka and PostgreSQL tool
    already knows (``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``) are also read
    under their usual names.
    """

    model_config = SettingsConfigDict(env_prefix="EGOV_", extra="ignore", populate_by_name=True)

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

    kafka_request_timeout_s: float = 10.0
    """``EGOV_KAFKA_REQUEST_TIMEOUT_S``: upper bound on one produce or admin request."""

    topic_documents: str = "egov.documents"
    """``EGOV_TOPIC_DOCUMENTS``: topic of the document family."""

    topic_dossiers: str = "egov.dossiers"
    """``EGOV_TOPIC_DOSSIERS``: topic of the dossier family."""

    topic_meetings: str = "egov.meetings"
    """``EGOV_TOPIC_MEETINGS``: topic of the meeting family."""

    topic_dead_letter: str = "egov.dead-letter"
    """``EGOV_TOPIC_DEAD_LETTER``: where invalid records go, with the reason in headers."""

    topic_partitions: int = 6
    """``EGOV_TOPIC_PARTITIONS``: partitions of each event topic (the ceiling on workers)."""

    topic_replication: int = 1
    """``EGOV_TOPIC_REPLICATION``: replication factor (3 on a production Kafka cluster)."""

    record_signing_key: SecretStr | None = None
    """``EGOV_RECORD_SIGNING_KEY``: shared by ingest and the metrics workers. Ingest signs
    the records it validated; workers skip validating a record whose signature verifies
    (services/common/signing.py). Unset: nothing is signed and workers validate every
    record, about a third of their cost per event. ``make up`` sets a random one."""

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

    schemas_dir: Path = SCHEMAS_DIR
    """``EGOV_SCHEMAS_DIR``: the event contract (CloudEvents + JSON Schema)."""

    units_dir: Path = UNITS_DIR
    """``EGOV_UNITS_DIR``: the administrative-unit data shipped with the repository."""

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
        ``summary_fingerprint``, see services/common/summaries.py), or None without a key."""
        if self.record_signing_key is None or not self.signs_records:
            return None
        return RecordSigner(
            self.record_signing_key.get_secret_value().encode(),
            contract_fingerprint,
            summary_fingerprint,
        )

    @property
    def signs_records(self) -> bool:
        """Whether a record signing key is set (ingest signs and summarises, workers trust)."""
        key = self.record_signing_key
        return key is not None and bool(key.get_secret_value())

    @property
    def event_topics(self) -> list[str]:
        return [self.topic_documents, self.topic_dossiers, self.topic_meetings]
