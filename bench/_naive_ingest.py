"""The naive baseline: Starlette, fastjsonschema per event, one awaited aiokafka send each."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import fastjsonschema
from aiokafka import AIOKafkaProducer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
ENVELOPE = fastjsonschema.compile(json.loads((SCHEMAS / "cloudevent.schema.json").read_text()))
DATA = {
    p.name.removesuffix(".v1.schema.json"): fastjsonschema.compile(json.loads(p.read_text()))
    for p in (SCHEMAS / "events").glob("*.v1.schema.json")
}
TOPIC = os.environ["NAIVE_TOPIC"]
producer: AIOKafkaProducer | None = None


async def post(request: Request) -> JSONResponse:
    body: Any = json.loads(await request.body())
    events = body if isinstance(body, list) else [body]
    for event in events:
        ENVELOPE(event)
        DATA[event["type"]](event["data"])
    assert producer is not None
    futures = [
        await producer.send(TOPIC, json.dumps(event).encode(), key=event["unit"][:2].encode())
        for event in events
    ]
    for future in futures:
        await future
    return JSONResponse({"accepted": len(events)}, status_code=202)


@asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    global producer
    producer = AIOKafkaProducer(bootstrap_servers=os.environ["KAFKA_BOOTSTRAP_SERVERS"], acks="all")
    await producer.start()
    yield
    await producer.stop()


app = Starlette(routes=[Route("/v1/events", post, methods=["POST"])], lifespan=lifespan)
