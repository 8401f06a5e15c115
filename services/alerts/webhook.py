"""Direct webhook notifier, signed as Standard Webhooks (https://www.standardwebhooks.com/).

Headers ``webhook-id`` (the transition id: receivers deduplicate on it),
``webhook-timestamp`` (Unix seconds) and ``webhook-signature`` = ``v1,<base64 HMAC-SHA256
of "id.timestamp.body">``. A ``whsec_`` secret is base64 after the prefix, as the spec
says; any other secret is used as its UTF-8 bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime

import httpx
import orjson


def secret_bytes(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode("utf-8")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """What a receiver does (used by the tests; documented for integrators)."""
    expected = sign(secret, headers["webhook-id"], int(headers["webhook-timestamp"]), body)
    return any(
        hmac.compare_digest(expected, candidate)
        for candidate in headers["webhook-signature"].split(" ")
    )


class WebhookError(Exception):
    """The receiver refused or did not answer; the outbox retries with backoff."""


class WebhookSender:
    def __init__(self, client: httpx.AsyncClient, url: str, secret: str) -> None:
        self._client = client
        self._url = url
        self._secret = secret

    async def send(self, msg_id: str, payload: dict[str, object], now: datetime) -> None:
        body = orjson.dumps(payload)
        timestamp = int(now.timestamp())
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self._secret, msg_id, timestamp, body),
        }
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise WebhookError(f"{self._url}: {exc!r}") from exc
        if response.status_code >= 300:
            raise WebhookError(f"{self._url}: {response.status_code}")
