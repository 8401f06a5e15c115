"""Where ``egov-pulse grafana push`` sends the dashboards, read once from the environment."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class GrafanaSettings(BaseSettings):
    """The Grafana to push to and the folder the dashboards live in.

    ``GRAFANA_URL`` and ``GRAFANA_TOKEN`` are the names grafana-client and Grafana's own
    tools use; ``EGOV_GRAFANA_*`` work too. Command-line options override them.
    """

    model_config = SettingsConfigDict(
        env_prefix="EGOV_",
        extra="ignore",
        populate_by_name=True,
        # A refused setting names its variable; the values (passwords, keys, DSNs) are
        # never printed back.
        hide_input_in_errors=True,
    )

    grafana_url: str = Field(
        default="http://127.0.0.1:3000",
        validation_alias=AliasChoices("GRAFANA_URL", "EGOV_GRAFANA_URL"),
    )
    """``GRAFANA_URL``: base URL of Grafana (a sub-path such as /grafana is kept)."""

    grafana_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("GRAFANA_TOKEN", "EGOV_GRAFANA_TOKEN"),
    )
    """``GRAFANA_TOKEN``: a service-account token with the Editor role on the folder."""

    grafana_folder_uid: str = "egov-pulse"
    """``EGOV_GRAFANA_FOLDER_UID``: uid of the folder the dashboards go into (created if
    missing); the same folder the file provisioning uses."""

    grafana_folder_title: str = "egov-pulse"
    """``EGOV_GRAFANA_FOLDER_TITLE``: title given to the folder when it is created."""

    grafana_timeout_s: float = 10.0
    """``EGOV_GRAFANA_TIMEOUT_S``: upper bound on each HTTP request to Grafana."""
