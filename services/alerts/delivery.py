"""Delivery of alerts: Alertmanager pushes, and the outbox to the webhook and Kafka.

:class:`Delivery` knows nothing of how alerts are judged. It is told of each
transition (:meth:`Delivery.note`), says which outbox rows go with it
(:meth:`Delivery.outbox_rows`, written by the journal in the same transaction), pushes
the firing and recently resolved alerts to Alertmanager (:meth:`Delivery.push`), and
delivers the outbox (:meth:`Delivery.deliver_outbox`). Sinks are built from the
settings at each round, so a changed webhook URL is used at the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson

from services.alerts import store
from services.alerts.alertmanager import (
    AlertmanagerClient,
    ResolvedSet,
    SilenceClient,
    payload,
    silence_of,
)
from services.alerts.lifecycle import GRAVITY
from services.alerts.model import Alert, AlertKey, State, Transition
from services.alerts.outbox import Deliver, deliver_due
from services.alerts.settings import AlertsSettings
from services.alerts.telemetry import AlertsMetrics
from services.alerts.webhook import WebhookSender
from services.common.kafka import ensure_topics, make_producer

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def transition_event(t: Transition) -> dict[str, Any]:
    """A transition as published to Kafka and the webhook (consumers dedupe on its id)."""
    return {
        "transition_id": t.id,
        "identity": str(t.alert.key),
        "from": t.from_state.value if t.from_state else None,
        "to": t.to_state.value,
        "at": t.at.isoformat(),
        "values": t.values,
        "alert": store.alert_json(t.alert),
    }


INHIBITED = "warning"
"""The severity deploy/alertmanager/alertmanager.yml's inhibition mutes under a critical of
the same unit and KPI: an escalated warning is held as firing (:meth:`Delivery.held`). An
escalated info is not: routed to nobody, it would only show as active in the UI."""


class Delivery:
    """Alertmanager (state-based, re-sent) and the outbox sinks (webhook, Kafka)."""

    def __init__(
        self, settings: AlertsSettings, http: httpx.AsyncClient, metrics: AlertsMetrics,
        clock: Clock,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.resolved = ResolvedSet(timedelta(seconds=settings.alert_resolved_resend_s))
        self.told: set[str] = set()
        """Resolutions Alertmanager accepted whose rows are not marked told yet."""
        self._http = http
        self._metrics = metrics
        self._clock = clock
        self._producer: Any = None
        self._last_push: datetime | None = None
        self._push_needed = True
        # Silences of ours may exist (an earlier run made them): looked for at first push.
        self._may_have_silences = True
        self.acknowledgement_due = False
        """An acknowledgement waits for its silence (:meth:`request_push`)."""

    def note(self, transitions: Iterable[Transition]) -> None:
        """A firing or resolution makes a push due now; a resolution is re-sent a while."""
        for t in transitions:
            if t.to_state is State.RESOLVED:
                self._resend(t.alert)
            if t.to_state in (State.FIRING, State.RESOLVED):
                self._push_needed = True

    def recall(self, resolved: Iterable[Alert]) -> None:
        """Resolved alerts loaded at start-up: Alertmanager may not have heard yet."""
        for alert in resolved:
            self._resend(alert)

    def _resend(self, alert: Alert) -> None:
        """Keep a resolution for Alertmanager; without one, nothing would ever send it, and
        only a successful push prunes the set (until 2026-12-05 a site without
        Alertmanager kept every resolved alert in memory for good: review 39)."""
        if self.settings.alertmanager_url:
            self.resolved.add(alert)

    # --- Alertmanager -------------------------------------------------------------

    def alertmanager_batch(self, firing: Iterable[Alert], now: datetime) -> list[dict[str, Any]]:
        """The firing alerts, then the recently resolved ones, except a resolved one whose
        identity fires again: Alertmanager keeps one alert per label set, the last it was
        sent, so the old resolution would mask the new incident and its page until the
        resend window passed (``EGOV_ALERT_RESOLVED_RESEND_S``).

        An alert escalated to a graver one (services/alerts/lifecycle.py) is sent as still
        firing for as long as its successor fires (:meth:`held`): Alertmanager's inhibition
        (a critical covers the warning of its unit and KPI) mutes a resolved warning as well
        as a firing one, so its resolution sent at the escalation never reached the team
        whose ticket it had opened. Resolved together with its successor, it does."""
        expiry = timedelta(seconds=4 * self.settings.alert_resend_s)
        base = self.settings.alerts_public_url.rstrip("/")
        runbooks = self.settings.runbooks_url
        firing = list(firing)
        batch = [payload(a, now, expiry, base, runbooks) for a in firing]
        firing_labels = {_label_set(p) for p in batch}
        held = self.held(firing)
        for alert in self.resolved:
            resolved = payload(alert, now, expiry, base, runbooks)
            if alert.id in held:
                resolved["endsAt"] = (now + expiry).isoformat()
                batch.append(resolved)
            elif _label_set(resolved) not in firing_labels:
                batch.append(resolved)
        return batch

    def held(self, firing: Iterable[Alert]) -> set[str]:
        """Escalated warnings whose graver successor fires, never told resolved yet."""
        gravest: dict[AlertKey, int] = {}
        for alert in firing:
            gravest[alert.key] = max(gravest.get(alert.key, -1), GRAVITY[alert.severity])
        return {
            alert.id
            for alert in self.resolved
            if alert.severity == INHIBITED
            and alert.annotations.get("escalated_to")
            and not self.resolved.told(alert.id)
            and gravest.get(alert.key, -1) > GRAVITY[alert.severity]
        }

    async def push(
        self, firing: Iterable[Alert], now: datetime, force: bool = False, silences: bool = True
    ) -> bool:
        """Send the firing and recently resolved alerts if due; False if it failed.
        ``silences``: reconcile the acknowledgements' silences too (not while the alerts
        come from the local state file only: it may not know the latest acks)."""
        if not self.settings.alertmanager_url:
            return True
        resend = timedelta(seconds=self.settings.alert_resend_s)
        due = self._push_needed or self._last_push is None or now - self._last_push >= resend
        if not (due or force):
            return True
        firing = list(firing)
        if silences:
            await self._reconcile_silences(firing, now)
        batch = self.alertmanager_batch(firing, now)
        held = self.held(firing)
        try:
            sent = await AlertmanagerClient(self._http, self.settings.alertmanager_url).post(batch)
        except Exception as exc:
            log.warning("Alertmanager push failed: %r", exc)
            self._metrics.notifications.labels("alertmanager", "failed").inc()
            self._push_needed = True
            return False
        self._metrics.notifications.labels("alertmanager", "sent").inc(sent)
        self._last_push = now
        self._push_needed = False
        self.acknowledgement_due = False
        self.told.update(self.resolved.delivered(now, held))
        return True

    def request_push(self, acknowledgement: bool = False) -> None:
        """Push at the next cycle; an ``acknowledgement``'s silence is made then, even just
        after a start, while restored alerts otherwise wait to be judged again
        (``AlertsService._may_push``)."""
        self._push_needed = True
        self.acknowledgement_due = self.acknowledgement_due or acknowledgement

    async def _reconcile_silences(self, firing: list[Alert], now: datetime) -> None:
        """Silences in Alertmanager for exactly the acknowledged firing alerts (until
        ``EGOV_ALERT_ACK_SILENCE_S`` after the acknowledgement). Before the alerts are
        posted, so a resolved alert's silence is gone when its resolution is grouped and
        notified. Found again by their comment: nothing to keep across restarts. A
        failure is logged and tried again at the next push; the alerts go out anyway."""
        lasts = timedelta(seconds=self.settings.alert_ack_silence_s)
        wanted = {
            a.id: a for a in firing if lasts and a.acked_at is not None and now < a.acked_at + lasts
        }
        client = SilenceClient(self._http, self.settings.alertmanager_url)
        try:
            ours = await client.ours() if wanted or self._may_have_silences else {}
            for alert_id, silence_id in ours.items():
                if alert_id not in wanted:
                    await client.expire(silence_id)
            for alert_id, alert in wanted.items():
                if alert_id not in ours and alert.acked_at is not None:
                    await client.create(silence_of(alert, alert.acked_at + lasts, now))
        except Exception as exc:  # whatever it is, the alerts are still pushed
            log.warning("Alertmanager silences not reconciled: %r", exc)
            self._may_have_silences = True
            return
        self._may_have_silences = bool(wanted)

    # --- outbox (webhook, Kafka) ----------------------------------------------------

    def outbox_rows(self, t: Transition) -> list[tuple[str, dict[str, Any]]]:
        """The notifications written with a transition: every one to Kafka, firing and
        resolution of a fired alert to the webhook."""
        event = transition_event(t)
        rows: list[tuple[str, dict[str, Any]]] = []
        if self.settings.alert_kafka_enabled:
            rows.append(("kafka", event))
        notify = t.to_state is State.FIRING or (
            t.to_state is State.RESOLVED and t.alert.fired_at is not None
        )
        if self.settings.alert_webhook_url and notify:
            kind = "alert.firing" if t.to_state is State.FIRING else "alert.resolved"
            rows.append(("webhook", {"type": kind, "timestamp": t.at.isoformat(), "data": event}))
        return rows

    async def deliver_outbox(self, pool: asyncpg.Pool | None) -> int:
        if pool is None:
            return 0
        kept = timedelta(days=self.settings.alert_outbox_keep_days)
        return await deliver_due(pool, self._sinks(), self._metrics, kept)

    def _sinks(self) -> dict[str, Deliver]:
        sinks: dict[str, Deliver] = {}
        if self.settings.alert_webhook_url:
            sender = WebhookSender(
                self._http,
                self.settings.alert_webhook_url,
                self.settings.alert_webhook_secret.get_secret_value(),
            )

            async def webhook(msg_id: str, body: dict[str, Any]) -> None:
                await sender.send(msg_id, body, self._clock())

            sinks["webhook"] = webhook
        if self.settings.alert_kafka_enabled:
            sinks["kafka"] = self._send_kafka
        return sinks

    async def _send_kafka(self, transition_id: str, event: dict[str, Any]) -> None:
        timeout = self.settings.kafka_request_timeout_s
        if self._producer is None:
            await ensure_topics(self.settings, [self.settings.topic_alerts])
            producer = make_producer(self.settings)
            await asyncio.wait_for(producer.start(), timeout)
            self._producer = producer
        await asyncio.wait_for(
            self._producer.send_and_wait(
                self.settings.topic_alerts,
                key=event["identity"].encode(),
                value=orjson.dumps(event),
                headers=[("transition_id", transition_id.encode())],
            ),
            timeout,
        )

    async def close(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None


def _label_set(alert: dict[str, Any]) -> frozenset[tuple[str, str]]:
    """What Alertmanager identifies an alert by: its labels."""
    return frozenset(alert["labels"].items())
