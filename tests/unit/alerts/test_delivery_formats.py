"""Wire formats: Standard Webhooks signatures, Alertmanager payloads, ingest counters."""

import base64
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.alerts import alertmanager, webhook
from services.alerts.model import Alert, AlertKey, State
from services.alerts.sources import parse_ingest_counters
from services.ingest.telemetry import IngestMetrics


def test_standard_webhooks_signature_matches_the_spec_example() -> None:
    # The example of the Standard Webhooks reference libraries.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    signature = webhook.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_verify_refuses_a_tampered_body() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 24).decode()
    headers = {"webhook-id": "t1", "webhook-timestamp": "1700000000"}
    headers["webhook-signature"] = webhook.sign(secret, "t1", 1700000000, b"{}")
    assert webhook.verify(secret, headers, b"{}")
    assert not webhook.verify(secret, headers, b'{"x":1}')


def test_alertmanager_payload_of_firing_and_resolved() -> None:
    now = datetime(2026, 11, 23, 3, tzinfo=UTC)
    alert = Alert(
        "a1", AlertKey("UnitSilent", "documents", "u", "working-hours"), State.FIRING,
        "warning", "19", {"alertname": "UnitSilent"}, {"summary": "s"}, {}, now, now,
        fired_at=now,
    )  # fmt: skip
    firing = alertmanager.payload(alert, now, timedelta(minutes=4), "http://x", "http://x/runbooks")
    assert firing["endsAt"] == (now + timedelta(minutes=4)).isoformat()
    assert firing["generatorURL"] == "http://x/v1/alerts/a1"
    assert firing["annotations"]["runbook"] == "http://x/runbooks#unitsilent"
    alert.state, alert.resolved_at = State.RESOLVED, now + timedelta(minutes=1)
    resolved = alertmanager.payload(
        alert, now, timedelta(minutes=4), "http://x", "http://x/runbooks"
    )
    assert resolved["endsAt"] == alert.resolved_at.isoformat()
    assert resolved["startsAt"] == now.isoformat()


INGEST_WITHOUT_KEYS = """# TYPE egov_ingest_events_total counter
egov_ingest_events_total{outcome="accepted",reason="",type="t"} 90.0
egov_ingest_events_total{outcome="rejected",reason="schema",type="t"} 10.0
"""
INGEST_WITH_KEYS = (
    INGEST_WITHOUT_KEYS
    + """# TYPE egov_ingest_key_events_total counter
egov_ingest_key_events_total{key_id="abc",outcome="accepted"} 5.0
egov_ingest_key_events_total{key_id="abc",outcome="rejected"} 7.0
"""
)


def test_ingest_counters_per_key_or_all_when_there_is_no_key_label() -> None:
    assert parse_ingest_counters(INGEST_WITHOUT_KEYS).events == {
        "all": {"accepted": 90.0, "rejected": 10.0}
    }
    assert parse_ingest_counters(INGEST_WITH_KEYS).events == {
        "abc": {"accepted": 5.0, "rejected": 7.0}
    }


def test_ingest_counters_carry_when_each_began_from_ingests_own_exposition() -> None:
    """What tells an ingest restart from its counters' values: each counter's
    ``_created``, as ingest's own registry writes it (the earliest of those summed)."""
    registry = CollectorRegistry()
    metrics = IngestMetrics(registry)
    metrics.key("abc", "accepted").inc(5)
    metrics.key("abc", "rejected").inc(7)
    metrics.event("accepted", "", "t").inc(90)
    metrics.event("rejected", "schema", "t").inc(6)
    metrics.event("rejected", "scope", "t").inc(4)
    text = generate_latest(registry).decode()
    created = {
        (s.labels.get("key_id"), s.labels["outcome"], s.labels.get("reason")): s.value
        for family in text_string_to_metric_families(text)
        if family.name in ("egov_ingest_events_created", "egov_ingest_key_events_created")
        for s in family.samples
    }
    scrape = parse_ingest_counters(text)
    assert scrape.events == {"abc": {"accepted": 5.0, "rejected": 7.0}}
    assert scrape.started == {
        "abc": {"accepted": created["abc", "accepted", None],
                "rejected": created["abc", "rejected", None]},
    }  # fmt: skip
    # Without per-key counters: the earliest start of the series each outcome sums.
    overall = parse_ingest_counters(
        "\n".join(line for line in text.splitlines() if "egov_ingest_key_events" not in line)
    )
    assert overall.events == {"all": {"accepted": 90.0, "rejected": 10.0}}
    rejected = min(created[None, "rejected", "schema"], created[None, "rejected", "scope"])
    assert overall.started == {
        "all": {"accepted": created[None, "accepted", ""], "rejected": rejected}
    }
