"""Debian binaries the integration tests run: `make test` installs them (`make apt`)."""

from __future__ import annotations

import os
import shutil

import pytest

DEBIAN_PACKAGE = {
    "docker-compose": "docker-compose",
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    "chromium": "chromium",
}


def require(binary: str) -> str:
    """The binary's path; a failure under CI (never a silent skip there), a skip elsewhere."""
    path = shutil.which(binary)
    if path is not None:
        return path
    reason = f"{binary} not found (Debian package {DEBIAN_PACKAGE[binary]}; run `make apt`)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)
