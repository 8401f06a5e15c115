"""Settings of the wall service (``egov-pulse wall``), read once at start-up.

The wall counts nothing and holds no connection to Kafka or PostgreSQL: it reads the
metrics workers' published figures and the alerts service over HTTP.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.common.calendar import HOLIDAYS_FILE
from services.common.paths import UNITS_DIR
from services.common.settings import HeadBounds
from services.common.variables import check_environment, check_http_url
from services.wall import limits

Lang = Literal["vi", "en"]


DEFAULT_METRICS_URL = "http://127.0.0.1:8081"
"""The metrics worker `make up` runs, and one worker on a laptop."""


class WallSettings(BaseSettings, HeadBounds):
    """Where the wall listens, where its figures and alerts come from, and how fresh
    they must be. The request-head bounds (``EGOV_HEADER_TIMEOUT_S``,
    ``EGOV_MAX_HEADER_BYTES``) come from :class:`HeadBounds`, shared with ingest and the
    alerts API.

    Variables are prefixed ``EGOV_``. Durations are seconds. The defaults suit one
    worker on a laptop; a deployment with several workers lists all of them in
    ``EGOV_METRICS_URLS``.
    """

    model_config = SettingsConfigDict(
        env_prefix="EGOV_",
        extra="ignore",
        populate_by_name=True,
        # A refused setting names its variable; the values (passwords, keys, DSNs) are
        # never printed back.
        hide_input_in_errors=True,
    )

    wall_host: str = "127.0.0.1"
    """``EGOV_WALL_HOST``: address to listen on (0.0.0.0 in a container)."""

    wall_port: int = Field(default=8083, ge=1, le=65535)
    """``EGOV_WALL_PORT``: HTTP port of the page (1-65535)."""

    metrics_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [DEFAULT_METRICS_URL]
    )
    """``EGOV_METRICS_URLS``: comma-separated base URLs of every metrics worker; their
    /v1/kpis answers are merged (each worker answers for the partitions it owns).
    Default: the one worker `make up` runs, http://127.0.0.1:8081."""

    alerts_url: str = "http://127.0.0.1:8082"
    """``EGOV_ALERTS_URL``: base URL of the alerts service (GET /v1/alerts); empty: no
    alerts panel on any page or screen (never "no open alerts"), and
    ``"alerts_configured": false`` in /wall/api/overview."""

    wall_lang: Lang = "vi"
    """``EGOV_WALL_LANG``: language of the page when the URL does not say (?lang=en)."""

    wall_poll_interval_s: float = Field(default=0.5, gt=0, allow_inf_nan=False)
    """``EGOV_WALL_POLL_INTERVAL_S``: how often the sources are read while someone
    watches; with the workers' flush interval it bounds how late the page is."""

    wall_source_timeout_s: float = Field(default=1.5, gt=0, allow_inf_nan=False)
    """``EGOV_WALL_SOURCE_TIMEOUT_S``: timeout of one request to one source; a slow
    source is shown as failed rather than holding the whole page."""

    wall_heartbeat_s: float = Field(default=2.0, gt=0, allow_inf_nan=False)
    """``EGOV_WALL_HEARTBEAT_S``: interval of the stream's heartbeats; the page says
    "connection lost" after three missed heartbeats."""

    wall_silence_minutes: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    """``EGOV_WALL_SILENCE_MINUTES``: a unit with no event for this long (working time,
    see ``EGOV_WALL_SILENT_CALENDAR``) is marked silent."""

    wall_silence_weekly_minutes: float = Field(default=5 * 9.5 * 60, gt=0, allow_inf_nan=False)
    """``EGOV_WALL_SILENCE_WEEKLY_MINUTES``: the same for a family published a few times a
    week (meetings), on the rows and rankings of its KPIs: one working week, the floor of
    the alerts' ``EGOV_ALERT_SILENT_WEEKLY_AFTER_S``."""

    wall_silent_calendar: Literal["working", "always"] = Field(
        default="working",
        validation_alias=AliasChoices("EGOV_WALL_SILENT_CALENDAR", "EGOV_ALERT_SILENT_CALENDAR"),
    )
    """``EGOV_WALL_SILENT_CALENDAR`` (else ``EGOV_ALERT_SILENT_CALENDAR``, so the wall and
    the alerts agree by default): ``working`` counts silence Mon-Fri 07:30-17:00 Vietnam
    time minus public holidays, as the alerts' UnitSilent does; ``always`` counts every
    second (demos, 24/7 units)."""

    wall_silent_peer_share: float = Field(
        default=0.5,
        gt=0,
        le=1.01,
        validation_alias=AliasChoices(
            "EGOV_WALL_SILENT_PEER_SHARE", "EGOV_ALERT_SILENT_PEER_SHARE"
        ),
    )
    """``EGOV_WALL_SILENT_PEER_SHARE`` (else ``EGOV_ALERT_SILENT_PEER_SHARE``, so the wall
    lists as never heard the units the pager pages): once this share of a province's units
    of one level publish, the others of that level that never did show silent."""

    wall_holidays_file: Path = Field(
        default=HOLIDAYS_FILE,
        validation_alias=AliasChoices("EGOV_WALL_HOLIDAYS_FILE", "EGOV_ALERT_HOLIDAYS_FILE"),
    )
    """``EGOV_WALL_HOLIDAYS_FILE`` (else ``EGOV_ALERT_HOLIDAYS_FILE``): public holidays
    (data/holidays-vn.json)."""

    wall_trend_days: int = Field(default=14, ge=2, le=90)
    """``EGOV_WALL_TREND_DAYS``: days drawn in a trend."""

    units_dir: Path = UNITS_DIR
    """``EGOV_UNITS_DIR``: the administrative-unit data shipped with the repository; the
    wall reads only the names of the former units a restated history leaves out."""

    # What one client can make the wall do (services/wall/limits.py; review 55).
    wall_max_exports: int = Field(default=limits.EXPORTS_AT_ONCE, ge=1)
    """``EGOV_WALL_MAX_EXPORTS``: files (/wall/export) read and written at once; each
    reads every worker's /v1/kpis of the province. Default 4."""

    wall_max_history_reads: int = Field(default=limits.HISTORY_READS_AT_ONCE, ge=1)
    """``EGOV_WALL_MAX_HISTORY_READS``: /v1/kpis/history reads (PostgreSQL queries on a
    worker) in flight at once, for unit pages and trends. Default 16."""

    wall_busy_wait_s: float = Field(default=limits.BUSY_WAIT_S, gt=0, allow_inf_nan=False)
    """``EGOV_WALL_BUSY_WAIT_S``: how long a file or a history read waits for a free
    place; then a file is a 503 with ``Retry-After`` and a trend "could not be loaded".
    Default 10."""

    wall_share_reads_s: float = Field(default=limits.SHARE_READS_S, ge=0, allow_inf_nan=False)
    """``EGOV_WALL_SHARE_READS_S``: one read of a province's figures (for files) or of a
    unit's history serves every request for the same thing meanwhile and for this long
    after; 0 shares only the reads in flight. Default 2 (the workers publish every 2 s)."""

    wall_max_streams: int = Field(default=limits.STREAMS, ge=1)
    """``EGOV_WALL_MAX_STREAMS``: open /wall pages' event streams the wall serves; past it a
    new stream is a 503. Default 500."""

    wall_max_streams_per_client: int = Field(default=limits.STREAMS_PER_CLIENT, ge=1)
    """``EGOV_WALL_MAX_STREAMS_PER_CLIENT``: open event streams from one client address;
    past it a new one is a 429. Behind a reverse proxy the address is the proxy's unless
    uvicorn trusts its ``X-Forwarded-For`` (``FORWARDED_ALLOW_IPS``): then raise this to
    the total. Default 10."""

    @field_validator("metrics_urls", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip().rstrip("/") for part in value.split(",") if part.strip()]
        return value

    @field_validator("metrics_urls")
    @classmethod
    def _some(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(
                "EGOV_METRICS_URLS names no metrics worker: the wall has nothing to show"
            )
        # Without http:// every read would fail (httpx UnsupportedProtocol), poll after poll.
        return [check_http_url(url, "EGOV_METRICS_URLS") for url in value]

    @field_validator("alerts_url")
    @classmethod
    def _alerts_or_none(cls, value: str) -> str:
        # "" means no alerts panel; anything else must be a URL the wall can read.
        return check_http_url(value, "EGOV_ALERTS_URL") if value.strip() else ""

    @model_validator(mode="after")
    def _names_known(self) -> Self:
        """Refuse a retired variable, warn of an unknown one (services/common/variables.py)."""
        check_environment(os.environ)
        return self

    @property
    def metrics_sources(self) -> list[str]:
        """Every worker to ask."""
        return self.metrics_urls
