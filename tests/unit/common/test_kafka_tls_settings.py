"""TLS to the brokers from the environment (services/common/settings.py): the protocol each
client speaks, and a set-up that cannot connect refused at start-up, naming the variable."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest
from pydantic import ValidationError

from services.common.kafka import faust_credentials
from services.common.settings import CommonSettings, KafkaTlsError
from tests.tls import Certificates, make_certificates


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"), ["127.0.0.1"])


def settings_from(monkeypatch: pytest.MonkeyPatch, **env: str) -> CommonSettings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return CommonSettings()


def test_without_tls_or_principal_nothing_is_added(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from(monkeypatch)
    assert settings.kafka_security == {}
    assert settings.kafka_ssl_context() is None
    assert faust_credentials(settings) is None


def test_a_ca_file_alone_means_tls_with_the_names_checked(
    monkeypatch: pytest.MonkeyPatch, certificates: Certificates
) -> None:
    settings = settings_from(monkeypatch, EGOV_KAFKA_TLS_CA_FILE=str(certificates.ca))
    options = settings.kafka_security
    assert options["security_protocol"] == "SSL"
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.context.check_hostname


def test_tls_with_a_principal_is_sasl_ssl(
    monkeypatch: pytest.MonkeyPatch, certificates: Certificates
) -> None:
    settings = settings_from(
        monkeypatch,
        EGOV_KAFKA_TLS="true",
        EGOV_KAFKA_SASL_USERNAME="metrics",
        EGOV_KAFKA_SASL_PASSWORD="secret",
    )
    # EGOV_KAFKA_TLS alone: the system's trust store.
    assert settings.kafka_security["security_protocol"] == "SASL_SSL"
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL" and credentials.ssl_context is not None


def test_compose_s_empty_variables_mean_no_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from(
        monkeypatch,
        EGOV_KAFKA_TLS_CA_FILE="",
        EGOV_KAFKA_TLS_CERT_FILE="",
        EGOV_KAFKA_TLS_KEY_FILE="",
        EGOV_KAFKA_SASL_USERNAME="ingest",
    )
    assert settings.kafka_security["security_protocol"] == "SASL_PLAINTEXT"


def test_a_client_certificate_is_loaded(
    monkeypatch: pytest.MonkeyPatch, certificates: Certificates
) -> None:
    settings = settings_from(
        monkeypatch,
        EGOV_KAFKA_TLS_CA_FILE=str(certificates.ca),
        EGOV_KAFKA_TLS_CERT_FILE=str(certificates.client_cert),
        EGOV_KAFKA_TLS_KEY_FILE=str(certificates.client_key),
    )
    assert settings.kafka_ssl_context() is not None


PAIR = "EGOV_KAFKA_TLS_CERT_FILE and EGOV_KAFKA_TLS_KEY_FILE go together"


@pytest.mark.parametrize(
    ("env", "why"),
    [
        ({"EGOV_KAFKA_TLS_CA_FILE": "/none/ca.pem"}, "EGOV_KAFKA_TLS_CA_FILE /none/ca.pem: cannot"),
        ({"EGOV_KAFKA_TLS_CERT_FILE": "CLIENT"}, PAIR),
        ({"EGOV_KAFKA_TLS_KEY_FILE": "KEY"}, PAIR),
        ({"EGOV_KAFKA_TLS_CA_FILE": "KEY"}, "EGOV_KAFKA_TLS_CA_FILE"),
        ({"EGOV_KAFKA_TLS_CERT_FILE": "CA", "EGOV_KAFKA_TLS_KEY_FILE": "KEY"}, "cannot load them"),
    ],
)  # fmt: skip
def test_a_set_up_that_cannot_connect_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
    certificates: Certificates,
    env: dict[str, str],
    why: str,
) -> None:
    files = {
        "CLIENT": certificates.client_cert,
        "KEY": certificates.client_key,
        "CA": certificates.ca,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, str(files.get(value, value)))
    with pytest.raises(ValidationError, match=why):
        CommonSettings()


def test_a_ca_file_gone_after_start_raises_kafka_tls_error(
    monkeypatch: pytest.MonkeyPatch, certificates: Certificates, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(certificates.ca.read_bytes())
    settings = settings_from(monkeypatch, EGOV_KAFKA_TLS_CA_FILE=str(ca))
    ca.unlink()
    # A renewed client reads the files again: a clear error, not a plaintext connection.
    with pytest.raises(KafkaTlsError, match="EGOV_KAFKA_TLS_CA_FILE"):
        settings.kafka_security  # noqa: B018
