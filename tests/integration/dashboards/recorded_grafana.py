"""Grafana's HTTP API as recorded from Grafana 11.3 (the compose image), replayed locally.

Grafana cannot run on this machine: this is the one stand-in the tests use. Each answer
below is the body and status Grafana 11.3 gave to the call grafana-client makes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests import http_stub

FOLDER_NOT_FOUND = (404, {"message": "folder not found", "status": "not-found"})
FOLDER = (
    200,
    {
        "id": 7,
        "uid": "egov-pulse",
        "orgId": 1,
        "title": "egov-pulse",
        "url": "/dashboards/f/egov-pulse/egov-pulse",
        "hasAcl": False,
        "canSave": True,
        "canEdit": True,
        "canAdmin": True,
        "canDelete": True,
        "createdBy": "admin",
        "created": "2025-11-23T14:48:00Z",
        "updatedBy": "admin",
        "updated": "2025-11-23T14:48:00Z",
        "version": 1,
    },
)
INVALID_TOKEN = (
    401,
    {
        "extra": None,
        "message": "Invalid API key",
        "messageId": "api-keys.invalid",
        "statusCode": 401,
        "traceID": "",
    },
)

NO_ANSWER = (0, None)
"""Not an answer: the request is read and left unanswered for ``RecordedGrafana.stall_s``."""


def dashboard_saved(uid: str, version: int = 1) -> tuple[int, dict[str, Any]]:
    return 200, {
        "id": 12,
        "uid": uid,
        "url": f"/d/{uid}/{uid}",
        "status": "success",
        "version": version,
        "slug": uid,
        "folderUid": "egov-pulse",
    }


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class RecordedGrafana:
    """Answers from ``routes`` ((method, path) -> queue of answers) and keeps every request."""

    routes: dict[tuple[str, str], list[tuple[int, Any]]]
    requests: list[Request] = field(default_factory=list)
    url: str = ""
    stall_s: float = 3.0

    def answer(self, request: Request) -> tuple[int, Any]:
        self.requests.append(request)
        queue = self.routes.get((request.method, request.path))
        if not queue:
            return 404, {"message": "Not found"}
        return queue.pop(0) if len(queue) > 1 else queue[0]


@contextmanager
def serving(grafana: RecordedGrafana) -> Iterator[RecordedGrafana]:
    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            request = Request(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                json.loads(raw) if raw else None,
            )
            status, body = grafana.answer(request)
            if (status, body) == NO_ANSWER:
                time.sleep(grafana.stall_s)
                return
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with http_stub.serving(Handler) as url:
        grafana.url = url
        yield grafana
