"""The ``EGOV_*`` environment variables: which exist, which were retired, how a refusal
names them, and the checks several settings classes share.

Settings classes call :func:`check_environment` when they are built, so a retired name
stops the service at start-up with the name that replaced it, and a name no settings
class reads (a typo: ``EGOV_KAFKA_BOOTSTRAP``) is logged instead of silently falling
back to a default. The command line prints a refusal with :func:`refusal_lines`: one
line per error, naming the variable the operator set, never the Python field.

This module imports no Kafka client, so the wall can use it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from functools import cache
from urllib.parse import urlsplit

from pydantic import AliasChoices, ValidationError
from pydantic_settings import BaseSettings

log = logging.getLogger(__name__)

RETIRED: dict[str, str] = {
    # docs/ingest.md: ingest's own horizon (30 days) let through events the workers then
    # dropped; one grace now serves ingest and the workers.
    "EGOV_HORIZON_DAYS": "EGOV_COUNTING_GRACE_DAYS",
}
"""Variables no longer read, and the one to set instead. Set, they stop the service:
ignored, the value the operator meant would be replaced by a default without a word."""

NOT_SETTINGS = frozenset(
    {
        # make up and the local PostgreSQL (services/devstack.py, services/common/localpg.py).
        "EGOV_VAR_DIR",
        "EGOV_PG_BIN_DIR",
        # docker-compose*.yml interpolation, read by compose on the host, never by a service.
        "EGOV_IMAGE",
        "EGOV_LOG_MAX_SIZE",
        "EGOV_LOG_MAX_FILES",
        "EGOV_PUBLISH_ADDRESS",
        "EGOV_MONITORING_ADDRESS",
        "EGOV_KAFKA_TLS_DIR",
    }
)
"""Documented ``EGOV_*`` names that are not service settings: a shell that exports them
for `make up`, compose or the tests also starts the services, which must not warn."""

NOT_SETTINGS_PREFIXES = (
    "EGOV_SIMULATOR_",  # services/simulator/settings.py, its own prefix
    "EGOV_KAFKA_PRINCIPAL_",  # services/common/kafka_acls.py's Principals
    "EGOV_TEST_",  # the test harness (EGOV_TEST_BROKER, EGOV_TEST_ADMIN_DSN)
    "EGOV_BENCH_",  # bench/ (EGOV_BENCH_ADMIN_DSN)
    "EGOV_FAULTS_",  # tests/faults (EGOV_FAULTS_SEED)
)
NOT_SETTINGS_SUFFIXES = ("_HOST_PORT",)  # compose's published ports (EGOV_INGEST_HOST_PORT)

HTTP_SCHEMES = ("http", "https")


class RetiredVariable(ValueError):
    """A retired ``EGOV_*`` variable is set: the service does not start."""


def field_variables(model: type[BaseSettings], field: str) -> list[str]:
    """The environment variables a settings field is read from, the preferred first."""
    info = model.model_fields[field]
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        named = [c for c in alias.choices if isinstance(c, str) and c.upper() == c]
        if named:
            return named
    elif isinstance(alias, str):
        return [alias]
    prefix = str(model.model_config.get("env_prefix", ""))
    return [(prefix + field).upper()]


def variable_of(model: type[BaseSettings], where: str, environ: Mapping[str, str]) -> str:
    """The variable an error location (a field, or the alias pydantic-settings reports
    for it) stands for: of the field's variables, the one set in ``environ``, so an
    operator who set a former name (``EGOV_METRICS_GRACE_DAYS``) reads that name."""
    for field in model.model_fields:
        variables = field_variables(model, field)
        if where == field or where in variables:
            set_here = {key.upper() for key in environ}
            return next((v for v in variables if v in set_here), variables[0])
    return where


@cache
def settings_classes() -> tuple[type[BaseSettings], ...]:
    """Every settings class of the services (imported here, late: they import this)."""
    from services.alerts.settings import AlertsSettings
    from services.common.settings import CommonSettings
    from services.dashboards.settings import GrafanaSettings
    from services.ingest.settings import IngestSettings
    from services.metrics.settings import MetricsSettings
    from services.simulator.settings import SimulatorSettings
    from services.wall.settings import WallSettings

    return (
        CommonSettings,  # `egov-pulse migrate` builds it alone
        IngestSettings,
        MetricsSettings,
        AlertsSettings,
        WallSettings,
        GrafanaSettings,
        SimulatorSettings,
    )


@cache
def known_variables() -> frozenset[str]:
    """Every ``EGOV_*`` variable some settings class reads. One list for all services: a
    deployment often gives the same environment to several of them."""
    names: set[str] = set()
    for model in settings_classes():
        for field in model.model_fields:
            names.update(field_variables(model, field))
    return frozenset(n for n in names if n.startswith("EGOV_"))


def _is_documented(name: str) -> bool:
    return (
        name in NOT_SETTINGS
        or name.startswith(NOT_SETTINGS_PREFIXES)
        or name.endswith(NOT_SETTINGS_SUFFIXES)
    )


def check_environment(environ: Mapping[str, str]) -> None:
    """Refuse a retired ``EGOV_*`` variable (``RetiredVariable``, naming its replacement)
    and log a warning for one that nothing reads (a typo, or a setting of a newer
    release): warned, not refused, so that a shared environment file never stops a
    service."""
    # pydantic-settings reads variables case-insensitively: so are they judged here.
    names = sorted({key.upper() for key in environ if key.upper().startswith("EGOV_")})
    for name in names:
        if name in RETIRED:
            raise RetiredVariable(
                f"{name} is retired and no longer read: set {RETIRED[name]} instead"
            )
    for name in names:
        if name not in known_variables() and not _is_documented(name):
            log.warning("%s is set but no egov-pulse setting reads it (misspelt?)", name)


def check_http_url(url: str, variable: str) -> str:
    """``url`` without a trailing slash, refused (naming ``variable``) unless it is an
    http(s) URL with a host: ``metrics-1:8081`` would fail every request at run time."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 -- urlsplit checks the port only when it is read
    except ValueError:
        raise ValueError(f"{variable} has a port that is not a number from 0 to 65535") from None
    if parts.scheme not in HTTP_SCHEMES or not parts.hostname:
        # The value is not repeated: a URL may carry a password (https://user:pw@host).
        raise ValueError(
            f"{variable} is not an http:// or https:// URL with a host (e.g. http://metrics-1:8081)"
        )
    return url


def _settings_model(title: str) -> type[BaseSettings] | None:
    return next((m for m in settings_classes() if m.__name__ == title), None)


def refusal_lines(error: ValidationError, environ: Mapping[str, str]) -> list[str] | None:
    """One line per error of a refused settings class, each naming its variable as set
    in ``environ``; None when ``error`` is not a settings class's (it is then a bug, to
    show in full)."""
    model = _settings_model(error.title)
    if model is None:
        return None
    return list(_lines(model, error, environ))


def _lines(
    model: type[BaseSettings], error: ValidationError, environ: Mapping[str, str]
) -> Iterator[str]:
    for item in error.errors(include_url=False, include_input=False):
        message = str(item["msg"]).removeprefix("Value error, ")
        loc = item["loc"]
        if not loc or not isinstance(loc[0], str):
            yield message  # a check across fields: its message names the variables
            continue
        variable = variable_of(model, loc[0], environ)
        yield message if message.startswith(variable) else f"{variable}: {message}"
