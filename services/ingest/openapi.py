"""The OpenAPI 3.1 document of the ingest API, generated from the event contract in schemas/.

The event schemas are embedded from schemas/ (never copied by hand); the committed
services/ingest/openapi.json is this module's output, and a test checks they agree.
Regenerate with ``python -m services.ingest.openapi > services/ingest/openapi.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from services.common.contract import ENVELOPE_FILE, EVENTS_DIR
from services.common.paths import SCHEMAS_DIR
from services.ingest.problems import PROBLEM_BASE, PROBLEM_MEDIA_TYPE
from services.ingest.validation import BATCH, SINGLE

COMMITTED = Path(__file__).with_name("openapi.json")
_DROPPED = ("$schema", "$id")  # the components live in this document, not at those URIs

_REFUSALS = {
    "400": ("malformed-json", "The body is not JSON, or a batch is not a non-empty array."),
    "401": ("unauthorized", "Missing, unknown or revoked API key."),
    "403": ("out-of-scope", "An event's source, unit or type is outside the key's scope."),
    "408": (
        "body-too-slow",
        "No part of the body arrived for EGOV_BODY_TIMEOUT_S (or, headers-too-slow, the "
        "request head was not whole within EGOV_HEADER_TIMEOUT_S).",
    ),
    "413": ("body-too-large", "The body or the batch is larger than allowed."),
    "415": ("unsupported-media-type", "Not a CloudEvents JSON content type."),
    "422": (
        "invalid-events",
        "Events break the contract, name unknown units, or fall "
        "outside the accepted time range; every one is listed, with the scope errors "
        "of the valid events of the same request.",
    ),
    "429": (
        "rate-limited",
        "The key's event rate (one token per event) or its address's allowance of "
        "bad keys is exceeded; see Retry-After.",
    ),
    "431": (
        "headers-too-large",
        "The request line and headers exceed EGOV_MAX_HEADER_BYTES; the connection is closed.",
    ),
    "503": (
        "broker-unavailable",
        "The broker (or key store) did not answer, ingest holds as many requests awaiting "
        "it as it may, or ingest is stopping (shutting-down); retry the same events after "
        "Retry-After: they are counted once.",
    ),
}


def _schema(path: Path) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return {k: v for k, v in schema.items() if k not in _DROPPED}


def _event_components(schemas_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    components: dict[str, Any] = {"CloudEventEnvelope": _schema(schemas_dir / ENVELOPE_FILE)}
    variants: list[dict[str, Any]] = []
    for path in sorted((schemas_dir / EVENTS_DIR).glob("*.schema.json")):
        name = path.name.removesuffix(".schema.json")
        event_type = name.rpartition(".v")[0]
        data_name = "Data." + name
        components[data_name] = _schema(path)
        variants.append(
            {
                "allOf": [{"$ref": "#/components/schemas/CloudEventEnvelope"}],
                "properties": {
                    "type": {"const": event_type},
                    "data": {"$ref": f"#/components/schemas/{data_name}"},
                },
            }
        )
    return components, variants


def _problem_schema() -> dict[str, Any]:
    error = {
        "type": "object",
        "required": ["index", "pointer", "reason", "code"],
        "properties": {
            "index": {"type": "integer", "minimum": 0},
            "pointer": {"type": "string"},
            "reason": {"type": "string"},
            "code": {"type": "string"},
        },
    }
    return {
        "type": "object",
        "description": "RFC 9457 problem details; `type` is stable per kind of refusal.",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "format": "uri"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {"type": "array", "items": error},
        },
    }


def _responses() -> dict[str, Any]:
    responses: dict[str, Any] = {
        "202": {
            "description": "Every event was acknowledged by the broker.",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["accepted"],
                        "properties": {"accepted": {"type": "integer", "minimum": 1}},
                    }
                }
            },
        }
    }
    for status, (slug, description) in _REFUSALS.items():
        responses[status] = {
            "description": f"{description} Problem type {PROBLEM_BASE}{slug}.",
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
    return responses


def build_document(schemas_dir: Path = SCHEMAS_DIR) -> dict[str, Any]:
    """The whole OpenAPI document, deterministic for a given schemas/ folder."""
    components, variants = _event_components(schemas_dir)
    components["CloudEvent"] = {"oneOf": variants}
    components["CloudEventBatch"] = {
        "type": "array",
        "minItems": 1,
        "maxItems": 1000,
        "items": {"$ref": "#/components/schemas/CloudEvent"},
    }
    components["Problem"] = _problem_schema()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "egov-pulse ingest",
            "version": "1.0.0",
            "description": "Publish CloudEvents about e-government operations. See "
            "schemas/CONTRACT.md and docs/ingest.md.",
        },
        "paths": {
            "/v1/events": {
                "post": {
                    "operationId": "publishEvents",
                    "summary": "Publish one CloudEvent or a batch (all or nothing).",
                    "security": [{"apiKey": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            SINGLE: {"schema": {"$ref": "#/components/schemas/CloudEvent"}},
                            BATCH: {"schema": {"$ref": "#/components/schemas/CloudEventBatch"}},
                        },
                    },
                    "responses": _responses(),
                }
            },
            "/healthz": _probe("The process is alive."),
            "/readyz": _probe("The broker and the database answer (503 when either does not)."),
        },
        "components": {
            "schemas": components,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key made with `egov-pulse keys create`.",
                }
            },
        },
    }


def _probe(description: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": description,
            "responses": {
                "200": {"description": description},
                "503": {"description": "Not ready."},
            },
        }
    }


def render(schemas_dir: Path = SCHEMAS_DIR) -> str:
    """The committed file's exact text."""
    return json.dumps(build_document(schemas_dir), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
