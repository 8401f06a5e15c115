"""A private CA and certificates made with ``openssl``, for brokers that speak TLS in tests.

Short-lived (two days) and unencrypted: they exist for one test session, in its temporary
folder. The broker's certificate names the hosts clients dial (``hosts``: IP addresses and
DNS names), so a client that verifies host names, as the services do, accepts it only
there.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Certificates:
    ca: Path
    """The CA's certificate (PEM): what a client trusts."""
    broker: Path
    """The broker's private key (PKCS#8) followed by its certificate and the CA's: what
    Kafka's ``ssl.keystore.type=PEM`` reads."""
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    assert openssl is not None, "openssl is needed to make test certificates"
    done = subprocess.run(
        [openssl, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"openssl {' '.join(args)}:\n{done.stderr}"


def _san(hosts: list[str]) -> str:
    names = []
    for host in hosts:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            names.append(f"DNS:{host}")
        else:
            names.append(f"IP:{host}")
    return ",".join(names)


def _issue(folder: Path, name: str, subject: str, extensions: str, ca: str = "ca") -> None:
    """``name``.key and ``name``.pem, signed by the CA in ``folder``."""
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", "-subj", subject, cwd=folder)  # fmt: skip
    (folder / f"{name}.ext").write_text(extensions)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
             "-extfile", f"{name}.ext", cwd=folder)  # fmt: skip


def make_ca(folder: Path, name: str = "ca") -> Path:
    """A self-signed CA in ``folder`` (``name``.pem, ``name``.key)."""
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN=egov-pulse test {name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)  # fmt: skip
    return folder / f"{name}.pem"


def make_certificates(folder: Path, hosts: list[str]) -> Certificates:
    """A CA, a broker certificate for ``hosts`` and a client certificate, in ``folder``."""
    ca = make_ca(folder)
    _issue(folder, "broker", f"/CN={hosts[0]}",
           f"subjectAltName={_san(hosts)}\nextendedKeyUsage=serverAuth,clientAuth\n")  # fmt: skip
    _issue(folder, "client", "/CN=egov-pulse test client", "extendedKeyUsage=clientAuth\n")
    keystore = folder / "broker-keystore.pem"
    keystore.write_text(
        (folder / "broker.key").read_text() + (folder / "broker.pem").read_text() + ca.read_text()
    )
    keystore.chmod(0o600)
    return Certificates(ca, keystore, folder / "client.pem", folder / "client.key")
