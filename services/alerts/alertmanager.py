"""Delivery to Prometheus Alertmanager through its v2 API (POST /api/v2/alerts).

Alertmanager's API is state-based, as Prometheus uses it: a client re-sends every
firing alert periodically (endsAt a few resend intervals ahead, so Alertmanager
resolves it on its own if this service dies) and keeps sending resolved alerts with
their endsAt for a while. That makes the backlog after an Alertmanager outage simply
"the current state": the next push delivers it, and Alertmanager's deduplication by
label set means a re-sent alert never notifies twice.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx

from services.alerts.model import Alert, State
from services.alerts.runbooks import runbook_url

BATCH = 1000


def payload(
    alert: Alert, now: datetime, expiry: timedelta, base_url: str, runbooks: str
) -> dict[str, Any]:
    """One alert as Alertmanager's ``postableAlert``; ``runbooks`` is the runbooks' page
    (``AlertsSettings.runbooks_url``), its ``runbook`` annotation that page's section."""
    starts = alert.fired_at or alert.pending_since
    ends = (
        alert.resolved_at if alert.state is State.RESOLVED and alert.resolved_at else now + expiry
    )
    return {
        "labels": alert.labels,
        "annotations": {
            **alert.annotations,
            "alert_id": alert.id,
            "runbook": runbook_url(runbooks, alert.key.condition),
        },
        "startsAt": starts.isoformat(),
        "endsAt": ends.isoformat(),
        "generatorURL": f"{base_url}/v1/alerts/{alert.id}",
    }


class AlertmanagerError(Exception):
    """Alertmanager refused or did not answer; the next push retries."""


class AlertmanagerClient:
    """Posts alerts in batches; any failure raises :class:`AlertmanagerError`."""

    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self._client = client
        self._url = url.rstrip("/") + "/api/v2/alerts"

    async def post(self, alerts: Iterable[dict[str, Any]]) -> int:
        batch = list(alerts)
        for start in range(0, len(batch), BATCH):
            try:
                response = await self._client.post(self._url, json=batch[start : start + BATCH])
            except httpx.HTTPError as exc:
                raise AlertmanagerError(f"{self._url}: {exc!r}") from exc
            if response.status_code >= 300:
                raise AlertmanagerError(f"{self._url}: {response.status_code} {response.text}")
        return len(batch)


SILENCE_TAG = "egov-pulse acknowledgement of alert "
"""How a silence this service made names its alert (in its comment): found again after a
restart, with no state of its own."""


def silence_of(alert: Alert, ends: datetime, now: datetime) -> dict[str, Any]:
    """An acknowledged alert's ``postableSilence``: every label, matched exactly."""
    matchers = [
        {"name": name, "value": value, "isRegex": False, "isEqual": True}
        for name, value in sorted(alert.labels.items())
    ]
    note = alert.annotations.get("summary", "")
    return {
        "matchers": matchers,
        "startsAt": now.isoformat(),
        "endsAt": ends.isoformat(),
        "createdBy": alert.acked_by or "egov-pulse",
        "comment": f"{SILENCE_TAG}{alert.id} (expired when it resolves). {note}".strip(),
    }


class SilenceClient:
    """The silences this service made for acknowledged alerts: list, create, expire."""

    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self._client = client
        self._base = url.rstrip("/") + "/api/v2"

    async def ours(self) -> dict[str, str]:
        """alert id -> silence id of every active or pending silence made for an alert."""
        found = await self._call("GET", "/silences")
        if not isinstance(found, list):
            raise AlertmanagerError(f"GET silences: not a list: {str(found)[:200]}")
        ours: dict[str, str] = {}
        for silence in found:
            if not isinstance(silence, dict) or "id" not in silence:
                continue
            comment = silence.get("comment", "")
            if silence.get("status", {}).get("state") in ("active", "pending") and (
                comment.startswith(SILENCE_TAG)
            ):
                ours[comment[len(SILENCE_TAG) :].split(" ", 1)[0]] = silence["id"]
        return ours

    async def create(self, silence: dict[str, Any]) -> None:
        await self._call("POST", "/silences", silence)

    async def expire(self, silence_id: str) -> None:
        await self._call("DELETE", f"/silence/{silence_id}")

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        url = self._base + path
        try:
            response = await self._client.request(method, url, json=body)
        except httpx.HTTPError as exc:
            raise AlertmanagerError(f"{method} {url}: {exc!r}") from exc
        if response.status_code >= 300:
            raise AlertmanagerError(f"{method} {url}: {response.status_code} {response.text}")
        try:
            return response.json() if response.content else None
        except ValueError as exc:  # a proxy's error page answered 200
            raise AlertmanagerError(f"{method} {url}: not JSON: {response.text[:200]}") from exc


class ResolvedSet:
    """Resolved alerts Alertmanager must keep hearing about (with their endsAt).

    One stays until it was delivered at least once *and* the resend window has passed,
    so an outage longer than the window still ends with the resolution delivered.
    """

    def __init__(self, resend_for: timedelta) -> None:
        self._resend_for = resend_for
        self._alerts: dict[str, tuple[Alert, bool]] = {}

    def add(self, alert: Alert) -> None:
        if alert.state is State.RESOLVED and alert.fired_at is not None:
            self._alerts[alert.id] = (alert, False)

    def __iter__(self) -> Iterator[Alert]:
        return iter([a for a, _ in self._alerts.values()])

    def told(self, alert_id: str) -> bool:
        """Whether a push has carried this resolution to Alertmanager."""
        return self._alerts.get(alert_id, (None, False))[1]

    def delivered(self, now: datetime, held: Container[str] = ()) -> list[str]:
        """A push carrying every alert here succeeded: returns the ids told for the first
        time (their rows are marked, so a restart does not send them again for good).
        ``held`` were sent as still firing (escalated, their successor fires): not told."""
        first = [a for a, (_, told) in self._alerts.items() if not told and a not in held]
        self._alerts = {
            alert_id: (alert, told or alert_id not in held)
            for alert_id, (alert, told) in self._alerts.items()
            if alert_id in held or now - (alert.resolved_at or now) < self._resend_for
        }
        return first
