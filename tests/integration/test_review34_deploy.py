"""Review 34: deploy/ against what the services send and run as.

The inhibitions of deploy/alertmanager/alertmanager.yml are checked on the real
prometheus-alertmanager (the Debian binary the alerts tests run), loaded with the
production file unchanged, fed the label sets the alerts service builds
(services/alerts/model.py ``Verdict.labels``). Nothing is notified: the production
receivers' URLs never resolve, and the checks read Alertmanager's own verdict
(``status.inhibitedBy`` of GET /api/v2/alerts).
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from services.alerts.conditions import BELOW, BURN, SILENT
from services.alerts.model import AlertKey, Severity, Status, Verdict
from services.common.broker import free_port
from services.common.contract import kpi_families
from tests.binaries import require

REPO = Path(__file__).resolve().parents[2]
ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
UNIT = "05911"  # a commune of Thái Nguyên (19) in the examples of test_deploy.py
PROVINCE = "19"


def labels(
    condition: str, kpi: str, window: str, severity: Severity, unit: str = UNIT,
    level: str = "", province: str = PROVINCE,
) -> dict[str, str]:  # fmt: skip
    """The labels the alerts service posts for this identity, its event family with them
    (as services/alerts/conditions.py sets it: tests/unit/alerts/test_conditions.py)."""
    family = kpi if condition == SILENT else kpi_families()[kpi]
    key = AlertKey(condition, kpi, unit, window)
    verdict = Verdict(
        key, Status.BREACH, severity, province, {}, "", "", 0, family=family, level=level
    )
    return verdict.labels()


class ProductionAlertmanager:
    def __init__(self, url: str) -> None:
        self.url = url
        self.client = httpx.Client(base_url=url, timeout=5)

    def post(self, *label_sets: dict[str, str]) -> None:
        now = datetime.now(UTC)
        body = [
            {
                "labels": ls,
                "annotations": {"summary": "review34"},
                "startsAt": now.isoformat(),
                "endsAt": (now + timedelta(minutes=10)).isoformat(),
            }
            for ls in label_sets
        ]
        self.client.post("/api/v2/alerts", json=body).raise_for_status()

    def inhibited(self, wanted: dict[str, str], within: float = 6.0) -> bool:
        """Whether Alertmanager reports the alert ``wanted`` inhibited, waited for up to
        ``within`` seconds (the inhibitor learns its sources asynchronously)."""
        deadline = time.monotonic() + within
        while True:
            for alert in self.client.get("/api/v2/alerts").json():
                if alert["labels"] == wanted and alert["status"]["inhibitedBy"]:
                    return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[ProductionAlertmanager]:
    binary = require("prometheus-alertmanager")
    port = free_port()
    log = (tmp_path / "am.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={ALERTMANAGER_CONFIG}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with httpx.Client(timeout=1) as probe:
                    if probe.get(f"{url}/-/ready").status_code == 200:
                        break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, (tmp_path / "am.log").read_text()
            assert time.monotonic() < deadline, "Alertmanager not ready"
            time.sleep(0.1)
        am = ProductionAlertmanager(url)
        try:
            yield am
        finally:
            am.client.close()
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_a_unit_silent_in_meetings_still_pages_for_its_documents(
    alertmanager: ProductionAlertmanager,
) -> None:
    silent_documents = labels(SILENT, "documents", "working-hours", "warning")
    silent_meetings = labels(SILENT, "meetings", "working-hours", "warning", unit="05912")
    signing_low = labels(BELOW, "document_signing", "day", "critical")
    signing_low_other = labels(BELOW, "document_signing", "day", "critical", unit="05912")
    alertmanager.post(silent_documents, silent_meetings, signing_low, signing_low_other)
    # The inhibition works where it is meant to: no documents, no signing rate to judge.
    assert alertmanager.inhibited(signing_low)
    # A commune that held no online meeting this week still signs its documents: the
    # page about its signing rate must reach the on-call staff.
    assert not alertmanager.inhibited(signing_low_other)


def test_a_fast_burn_page_covers_the_slow_burn_ticket_of_the_same_unit_and_kpi(
    alertmanager: ProductionAlertmanager,
) -> None:
    fast = labels(BURN, "dossier_on_time", "1h", "critical")
    slow = labels(BURN, "dossier_on_time", "6h", "warning")
    assert fast["window"] != slow["window"]  # the service's own burn identities
    alertmanager.post(fast, slow)
    assert alertmanager.inhibited(slow)


TLS_COMPOSE = REPO / "docker-compose.tls.yml"
SECURITY_DOC = REPO / "docs" / "security.md"


def test_the_tls_instructions_name_the_services_uid() -> None:
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    uid = re.search(r"useradd [^\n]*--uid (\d+)", dockerfile)
    assert uid is not None
    for doc in (TLS_COMPOSE, SECURITY_DOC):
        text = doc.read_text(encoding="utf-8")
        # ca.pem's readers are named, the services' uid among them.
        assert "ca.pem" in text, doc
        assert f"uid {uid.group(1)}" in text, f"{doc} never names uid {uid.group(1)}"


def _documented_compose_backfill() -> list[str]:
    """The `docker-compose run ... egov-pulse backfill ...` command docs/security.md gives."""
    import shlex

    text = SECURITY_DOC.read_text(encoding="utf-8")
    found = re.search(r"`(docker-compose run [^`]*egov-pulse backfill[^`]*)`", text)
    assert found is not None, "docs/security.md gives no compose backfill command"
    return shlex.split(found.group(1).replace("\n", " "))


def test_the_documented_compose_backfill_can_read_its_file() -> None:
    argv = _documented_compose_backfill()
    run_options = argv[: argv.index("egov-pulse")]
    backfill_args = argv[argv.index("backfill") + 1 :]
    reads_stdin = backfill_args[:1] == ["-"] and ("-T" in run_options)
    mounts = "-v" in run_options or any(a.startswith(("--volume", "-v")) for a in run_options)
    assert reads_stdin or mounts, argv


def test_a_province_silent_in_a_family_is_one_notification_for_its_communes_too(
    alertmanager: ProductionAlertmanager,
) -> None:
    """Review 65: a province's one-stop system down made every commune page UnitSilent."""

    def silent(unit: str, family: str, level: str, province: str = PROVINCE) -> dict[str, str]:
        return labels(SILENT, family, "working-hours", "warning", unit, level, province)

    province = silent(PROVINCE, "dossiers", "province")
    commune = silent(UNIT, "dossiers", "commune")
    same_commune_documents = silent(UNIT, "documents", "commune")
    other_province_commune = silent("26734", "dossiers", "commune", province="24")
    alertmanager.post(province, commune, same_commune_documents, other_province_commune)
    assert alertmanager.inhibited(commune)
    # The province's own alert is the one notification; another family, another province
    # and a commune silent on its own still page.
    assert not alertmanager.inhibited(province, within=1)
    assert not alertmanager.inhibited(same_commune_documents, within=1)
    assert not alertmanager.inhibited(other_province_commune, within=1)
