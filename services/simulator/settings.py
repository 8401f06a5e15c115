"""Settings of the traffic simulator, read once from ``EGOV_SIMULATOR_*`` variables."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class SimulatorSettings(BaseSettings):
    """Where to send events, how many, and which units misbehave.

    Every field is read from ``EGOV_SIMULATOR_<FIELD>``; the docstring under each field
    names its variable and says what it does.
    """

    model_config = SettingsConfigDict(
        env_prefix="EGOV_SIMULATOR_",
        extra="ignore",
        # A refused setting names its variable; the values (passwords, keys, DSNs) are
        # never printed back.
        hide_input_in_errors=True,
    )

    ingest_url: str = "http://127.0.0.1:8080"
    """``EGOV_SIMULATOR_INGEST_URL``: base URL of the ingest service (``/v1/events`` is added)."""

    api_key: SecretStr | None = None
    """``EGOV_SIMULATOR_API_KEY``: sent as ``Authorization: Bearer``; none by default."""

    rate: float = Field(default=0.25, gt=0)
    """``EGOV_SIMULATOR_RATE``: events per second, averaged over an ordinary week (no
    public holiday). With ``profile`` ``office`` about 2.9 times this is sent in office
    hours and a fiftieth of that at night (services/simulator/daily.py). The default is
    of the order the provinces publish: 3 of 34 provinces of a national "few events per
    second" (DOMAIN.md), about 21,600 events a day, some 300,000 documents a quarter for
    Thái Nguyên; raise it for load."""

    profile: Literal["office", "flat"] = "office"
    """``EGOV_SIMULATOR_PROFILE``: ``office`` follows the week of Vietnamese offices
    (working hours, evening uploads, quiet nights, weekends and public holidays);
    ``flat`` sends ``rate`` round the clock, for load tests."""

    provinces: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["19", "38", "68"])
    """``EGOV_SIMULATOR_PROVINCES``: comma-separated province codes of today's units
    (default Thái Nguyên 19, Thanh Hóa 38, Lâm Đồng 68)."""

    seed: int = 2025
    """``EGOV_SIMULATOR_SEED``: fixes the plan (rates, silent and failing units). Event ids
    also mix in the start time, so two runs never send the same ids."""

    batch_interval_s: float = Field(default=1.0, gt=0)
    """``EGOV_SIMULATOR_BATCH_INTERVAL_S``: one batch request per interval."""

    max_batch_events: int = Field(default=500, ge=1, le=1000)
    """``EGOV_SIMULATOR_MAX_BATCH_EVENTS``: larger batches are split (ingest takes 1000)."""

    silent_unit: str | None = None
    """``EGOV_SIMULATOR_SILENT_UNIT``: the unit code that publishes nothing; by default one
    commune picked from the seed (logged at start)."""

    below_target_units: int = Field(default=4, ge=0)
    """``EGOV_SIMULATOR_BELOW_TARGET_UNITS``: communes clearly below one target (logged)."""

    late_fraction: float = Field(default=0.02, ge=0, le=1)
    """``EGOV_SIMULATOR_LATE_FRACTION``: share of events uploaded hours to days late."""

    duplicate_fraction: float = Field(default=0.01, ge=0, le=1)
    """``EGOV_SIMULATOR_DUPLICATE_FRACTION``: share of sends that repeat an earlier event."""

    request_timeout_s: float = Field(default=10.0, gt=0)
    """``EGOV_SIMULATOR_REQUEST_TIMEOUT_S``: upper bound on one POST (a timeout is retried)."""

    history_s: float | None = Field(default=None, ge=0, le=7 * 86400)
    """``EGOV_SIMULATOR_HISTORY_S``: before live traffic, publish this many seconds of past
    traffic at the same rate and profile, as fast as ingest takes it (event times spread
    across that span), so rolling windows and trends start full: the soak benchmark
    starts at steady state this way. 0 starts from nothing. Unset (the default), the past
    24 hours, shortened to about 30,000 events at high rates (runner.history_span): at
    the default rate the wall shows the day's figures as soon as they are counted, even
    at night when little is sent live."""

    max_attempts: int = Field(default=5, ge=1)
    """``EGOV_SIMULATOR_MAX_ATTEMPTS``: tries per batch before it is counted as failed."""

    @field_validator("provinces", mode="before")
    @classmethod
    def _split_provinces(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [code.strip() for code in value.split(",") if code.strip()]
        return value
