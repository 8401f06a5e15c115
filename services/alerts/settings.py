"""Settings of the alerts service, read once from ``EGOV_*`` variables."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import NoDecode

from services.common.calendar import HOLIDAYS_FILE
from services.common.settings import CommonSettings, HeadBounds
from services.common.variables import check_http_url, field_variables

OUTBOX_KEEP_DAYS = 7.0
"""Default of ``EGOV_ALERT_OUTBOX_KEEP_DAYS`` (also services/alerts/outbox.py's)."""
OUTBOX_KEEP_DAYS_MAX = 36_500.0
"""Its largest value, a century: "for good" written as inf or 1e9 is refused at start
(a timedelta of it overflowed in every outbox round, and nothing was delivered)."""
DURATION_MAX_S = OUTBOX_KEEP_DAYS_MAX * 86_400
"""The largest value of every ``*_S`` duration, the same century, and none is infinite or
NaN: ``EGOV_ALERT_ACK_SILENCE_S=inf`` (or 1e12) overflowed the timedelta, or the date it
was added to, in Delivery.push, and no alert reached Alertmanager."""
Duration = Annotated[float, Field(le=DURATION_MAX_S, allow_inf_nan=False)]
"""A ``*_S`` setting: finite and at most ``DURATION_MAX_S`` (each field adds its lower
bound and default)."""
RECENT_HOURS_MAX = OUTBOX_KEEP_DAYS_MAX * 24
"""The largest ``EGOV_ALERT_RECENT_HOURS``, that century again."""
DAYS_MAX = 3_660
"""The largest count of working days learned from or looked back over: ten years."""
HTTP_TIMEOUT_MAX_S = 3_600.0
"""The longest wait for one HTTP call: an hour (a longer one holds up a whole cycle)."""
KPI_WINDOWS = ("day", "month", "year")
"""The windows KpiBelowTarget judges: the metrics workers' calendar windows
(services/metrics/periods.py ``CALENDAR_WINDOWS``)."""


class AlertsSettings(CommonSettings, HeadBounds):
    """HTTP listener, where figures come from, how conditions behave, where alerts go.
    The request-head bounds (``EGOV_HEADER_TIMEOUT_S``, ``EGOV_MAX_HEADER_BYTES``) come
    from :class:`HeadBounds`, shared with ingest and the wall.

    Durations are seconds. Production defaults follow the on-call practice documented
    in docs/alerts.md; `make up` shortens them through the environment.
    """

    alerts_host: str = "127.0.0.1"
    """``EGOV_ALERTS_HOST``: address to listen on."""

    alerts_port: int = Field(default=8082, ge=1, le=65535)
    """``EGOV_ALERTS_PORT``: HTTP port (1-65535)."""

    alerts_public_url: str = "http://127.0.0.1:8082"
    """``EGOV_ALERTS_PUBLIC_URL``: base URL operators reach; alerts link to it
    (Alertmanager's generatorURL)."""

    alert_runbook_url: str = ""
    """``EGOV_ALERT_RUNBOOK_URL``: the runbooks' page as on-call opens it; each alert's
    ``runbook`` annotation is this and its section (``#kpibelowtarget``). Empty: this
    service's own page, ``EGOV_ALERTS_PUBLIC_URL`` + ``/runbooks``."""

    @property
    def runbooks_url(self) -> str:
        return self.alert_runbook_url or self.alerts_public_url.rstrip("/") + "/runbooks"

    alertmanager_url: str = ""
    """``EGOV_ALERTMANAGER_URL``: base URL of Prometheus Alertmanager (v2 API); empty: no
    Alertmanager, deliver to the webhook, Kafka and the log only."""

    metrics_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://127.0.0.1:8081"]
    )
    """``EGOV_METRICS_URLS``: comma-separated base URLs (http or https) of every metrics
    worker; the answers are merged (each worker answers for the partitions it owns).
    Empty is refused, as the wall refuses it."""

    ingest_url: str = "http://127.0.0.1:8080"
    """``EGOV_INGEST_URL``: base URL of ingest, whose /metrics feeds IngestRejectionsHigh
    and tells when ingest is away (docs/alerts.md, "Ingest away"); empty disables both:
    through an ingest outage every unit behind it then pages UnitSilent."""

    topic_alerts: str = "egov.alerts"
    """``EGOV_TOPIC_ALERTS``: every transition is published here (key = alert identity)."""

    alert_kafka_enabled: bool = True
    """``EGOV_ALERT_KAFKA_ENABLED``: publish transitions to ``EGOV_TOPIC_ALERTS``."""

    alert_interval_s: Duration = Field(default=2.0, gt=0)
    """``EGOV_ALERT_INTERVAL_S``: time between two evaluations of KpiBelowTarget, UnitSilent
    and IngestRejectionsHigh. With the due-time evaluation of pending alerts, a threshold
    crossing reaches Alertmanager within about interval + one cycle + the duration
    (docs/alerts.md has the figures: 2 s keeps p99 under 5 s + duration at 10,000 units)."""

    alert_burn_interval_s: Duration = Field(default=30.0, gt=0)
    """``EGOV_ALERT_BURN_INTERVAL_S``: how often the burn-rate windows (5m, 30m, 1h, 6h) are
    read and KpiBudgetBurn evaluated; each window costs a metrics worker about a second per
    call at 10,000 units, and the short windows move in 5-minute buckets."""

    alert_for_s: Duration = Field(default=300.0, ge=0)
    """``EGOV_ALERT_FOR_S``: how long a KPI must stay below target before it fires."""

    alert_burn_for_s: Duration = Field(default=120.0, ge=0)
    """``EGOV_ALERT_BURN_FOR_S``: how long a burn-rate condition must hold before firing."""

    alert_burn_keep_firing_s: Duration = Field(default=600.0, ge=0)
    """``EGOV_ALERT_BURN_KEEP_FIRING_S``: a firing KpiBudgetBurn resolves only once its pair
    has not burned for this long without a break (Prometheus' ``keep_firing_for``): a burn
    hovering at the factor otherwise paged, resolved and paged again every few cycles.
    Burning again inside it keeps the alert firing, with no new page. A target that no
    longer lets the rule fire still resolves it at once; 0: resolve at once, as before."""

    alert_hysteresis: float = Field(default=0.02, ge=0, le=0.5)
    """``EGOV_ALERT_HYSTERESIS``: a firing KpiBelowTarget resolves at target + this, the
    margin never more than half the way to 100% (a 98% target clears at 99%, not only
    when every item counts)."""

    alert_windows: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["day", "month", "year"]
    )
    """``EGOV_ALERT_WINDOWS``: comma-separated windows KpiBelowTarget evaluates, at least
    one of ``KPI_WINDOWS`` (others are refused). ``day`` is
    read every cycle; ``month`` and ``year`` (which move slowly) every
    ``EGOV_ALERT_BURN_INTERVAL_S``, and when one of their alerts is due."""

    alert_min_volume: Annotated[dict[str, Decimal], NoDecode] = Field(default_factory=dict)
    """``EGOV_ALERT_MIN_VOLUME``: comma-separated ``window=factor``: in that window a rate
    is judged only with at least factor x the KPI's min_volume (default 1 in every
    window, e.g. ``year=3``; windows of ``KPI_WINDOWS``, factors above 0). Decimal, so
    that ``day=1.1`` of 50 is 55 items, exactly (a float made it 55.00000000000001, and its
    ceiling 56)."""

    alert_burn_enabled: bool = True
    """``EGOV_ALERT_BURN_ENABLED``: evaluate KpiBudgetBurn (reads 5m/30m/1h/6h windows)."""

    alert_silent_after_s: Duration = Field(default=7200.0, gt=0)
    """``EGOV_ALERT_SILENT_AFTER_S``: working-time seconds without events before UnitSilent,
    for a unit without history (and the least for any unit) in the daily families
    (documents, dossiers)."""

    alert_silent_weekly_after_s: Duration = Field(default=5 * 9.5 * 3600, gt=0)
    """``EGOV_ALERT_SILENT_WEEKLY_AFTER_S``: the same for families judged weekly (meetings:
    a commune holds a few a week); default one working week (5 x 9.5 working hours)."""

    alert_silent_gap_factor: float = Field(default=5.0, gt=0, allow_inf_nan=False)
    """``EGOV_ALERT_SILENT_GAP_FACTOR``: a unit with history is silent after this many of its
    usual gaps between events (working time over events, learned from its daily figures)."""

    alert_silent_cadence_days: int = Field(default=20, ge=1, le=DAYS_MAX)
    """``EGOV_ALERT_SILENT_CADENCE_DAYS``: working days of daily figures a unit's usual
    cadence is learned from (today excluded)."""

    alert_silent_cadence_refresh_s: Duration = Field(default=3600.0, gt=0)
    """``EGOV_ALERT_SILENT_CADENCE_REFRESH_S``: how often the service looks for a new day of
    figures to learn the cadences from (they are learned once per local day, and at start)."""

    alert_silent_lookback_days: int = Field(default=10, ge=1, le=DAYS_MAX)
    """``EGOV_ALERT_SILENT_LOOKBACK_DAYS``: a unit that published a family within this many
    working days is expected to publish it."""

    alert_silent_peer_share: float = Field(default=0.5, gt=0, le=1.01)
    """``EGOV_ALERT_SILENT_PEER_SHARE``: when at least this share of a province's units of
    one level publish a family, the others of that level are expected to as well (a
    commune that never published is silent too); above 1 disables the rule."""

    alert_silent_calendar: Literal["working", "always"] = "working"
    """``EGOV_ALERT_SILENT_CALENDAR``: ``working`` counts silence Mon-Fri 07:30-17:00
    Vietnam time minus public holidays; ``always`` counts every second (demos, 24/7 units)."""

    alert_holidays_file: Path = HOLIDAYS_FILE
    """``EGOV_ALERT_HOLIDAYS_FILE``: public holidays (data/holidays-vn.json)."""

    alert_rejection_share: float = Field(default=0.2, gt=0, le=1)
    """``EGOV_ALERT_REJECTION_SHARE``: share of a publisher's events rejected that fires."""

    alert_rejection_min_events: int = Field(default=20, ge=1)
    """``EGOV_ALERT_REJECTION_MIN_EVENTS``: events in the window below which no verdict."""

    alert_rejection_window_s: Duration = Field(default=600.0, gt=0)
    """``EGOV_ALERT_REJECTION_WINDOW_S``: window over which the rejected share is computed."""

    alert_resend_s: Duration = Field(default=60.0, gt=0)
    """``EGOV_ALERT_RESEND_S``: firing alerts are re-sent to Alertmanager this often; keep
    it well below Alertmanager's resolve_timeout (5 min by default)."""

    alert_resolved_resend_s: Duration = Field(default=900.0, ge=0)
    """``EGOV_ALERT_RESOLVED_RESEND_S``: resolved alerts keep being sent (with endsAt) this
    long, so an Alertmanager that missed one push still learns of the resolution."""

    alert_ack_silence_s: Duration = Field(default=86400.0, ge=0)
    """``EGOV_ALERT_ACK_SILENCE_S``: an acknowledged firing alert is silenced in
    Alertmanager (a silence on its labels, made by this service) for this long after the
    acknowledgement, so its repeated notifications stop; the silence is expired as soon
    as the alert resolves, so the resolution and a next incident are notified. 0: an
    acknowledgement silences nothing."""

    alert_webhook_url: str = ""
    """``EGOV_ALERT_WEBHOOK_URL``: direct webhook (Standard Webhooks, HMAC-SHA256) for
    sites without Alertmanager; empty disables it."""

    alert_webhook_secret: SecretStr = SecretStr("")
    """``EGOV_ALERT_WEBHOOK_SECRET``: signing secret (``whsec_<base64>`` or raw text)."""

    alert_outbox_keep_days: float = Field(
        default=OUTBOX_KEEP_DAYS, ge=0, le=OUTBOX_KEEP_DAYS_MAX, allow_inf_nan=False
    )
    """``EGOV_ALERT_OUTBOX_KEEP_DAYS``: webhook and Kafka notifications are deleted from
    ``alert_outbox`` this many days after delivery (kept a while to look into what a
    sink was sent); 0: at the next outbox round. Undelivered ones are never deleted; the
    alert history (``alerts``, ``alert_transitions``, ``alert_notes``) is kept for good."""

    alert_http_timeout_s: float = Field(
        default=5.0, gt=0, le=HTTP_TIMEOUT_MAX_S, allow_inf_nan=False
    )
    """``EGOV_ALERT_HTTP_TIMEOUT_S``: upper bound on one call to a worker or a sink."""

    alert_recent_hours: float = Field(default=24.0, gt=0, le=RECENT_HOURS_MAX, allow_inf_nan=False)
    """``EGOV_ALERT_RECENT_HOURS``: how far back GET /v1/alerts lists closed alerts."""

    alert_state_file: Path | None = None
    """``EGOV_ALERT_STATE_FILE``: where the open alerts and the transitions not yet in
    PostgreSQL are kept on local disk (services/alerts/spool.py), so a restart while the
    database is away forgets nothing and keeps Alertmanager told. Unset or empty: no local
    copy (`make up` sets var/alerts/state.json, docker-compose a volume)."""

    @field_validator("alert_state_file", mode="before")
    @classmethod
    def _no_file(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("metrics_urls", "alert_windows", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip().rstrip("/") for part in value.split(",") if part.strip()]
        return value

    @field_validator("metrics_urls")
    @classmethod
    def _workers(cls, value: list[str]) -> list[str]:
        # As the wall: with no worker every KPI condition is judged on nothing, silently.
        if not value:
            raise ValueError("EGOV_METRICS_URLS names no metrics worker: no KPI could be evaluated")
        return [check_http_url(url, "EGOV_METRICS_URLS") for url in value]

    @field_validator("alertmanager_url", "ingest_url", "alert_webhook_url")
    @classmethod
    def _url_or_off(cls, value: str, info: ValidationInfo) -> str:
        # "" turns the sink or the condition off; anything else must be reachable, or
        # every call fails (httpx UnsupportedProtocol) cycle after cycle.
        if not value.strip():
            return ""
        return check_http_url(value, field_variables(cls, str(info.field_name))[0])

    @field_validator("alerts_public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        # Every notification links there: a link without a scheme opens nothing.
        return check_http_url(value, "EGOV_ALERTS_PUBLIC_URL")

    @field_validator("alert_windows")
    @classmethod
    def _known_windows(cls, value: list[str]) -> list[str]:
        # "" turned KpiBelowTarget off without a word, and a misspelt window was asked of
        # every worker, which answered 400 each cycle.
        unknown = [w for w in value if w not in KPI_WINDOWS]
        if not value or unknown:
            raise ValueError(
                f"EGOV_ALERT_WINDOWS: {','.join(value) or 'nothing'} is not a non-empty list"
                f" of {', '.join(KPI_WINDOWS)}"
            )
        return list(dict.fromkeys(value))

    @field_validator("alert_min_volume", mode="before")
    @classmethod
    def _pairs(cls, value: Any) -> Any:
        if isinstance(value, str):
            pairs = [part.split("=", 1) for part in value.split(",") if part.strip()]
            if any(len(pair) != 2 for pair in pairs):
                raise ValueError(
                    f"EGOV_ALERT_MIN_VOLUME: expected window=factor,..., not {value!r}"
                )
            return {window.strip(): factor.strip() for window, factor in pairs}
        return value

    @field_validator("alert_min_volume")
    @classmethod
    def _known_factors(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        # A factor of an unknown window was never applied; one of 0 or less judged a rate
        # on no items at all.
        for window, factor in value.items():
            if window not in KPI_WINDOWS:
                raise ValueError(
                    f"EGOV_ALERT_MIN_VOLUME: window {window!r} is not one of"
                    f" {', '.join(KPI_WINDOWS)}"
                )
            if not factor.is_finite() or factor <= 0:
                raise ValueError(
                    f"EGOV_ALERT_MIN_VOLUME: the factor of {window} ({factor}) must be a"
                    " finite number above 0"
                )
        return value

    alert_standby_retry_s: Duration = Field(default=5.0, gt=0, le=300.0)
    """``EGOV_ALERT_STANDBY_RETRY_S``: how often a standby alerts service (another holds the
    database's alerts lock, docs/alerts.md "One alerts service per database") tries to
    take over; the longest a deploy waits between the old service stopping and the new
    one evaluating."""
