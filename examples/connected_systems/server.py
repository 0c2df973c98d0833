"""Transports of a reference system: the commands topic, or a signed HTTP endpoint."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from examples.connected_systems.system import ReferenceSystem
from services.erasure.connector import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from shared import topics

log = logging.getLogger("refsys")


def subscribe(broker: KafkaBroker, system: ReferenceSystem) -> None:
    """Consume the commands topic; act only on commands addressed to this system."""

    @broker.subscriber(
        topics.ERASURE_COMMANDS,
        group_id=f"refsys-{system.system_id}",
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def on_command(msg: KafkaMessage) -> None:
        try:
            event = json.loads(msg.body)
        except ValueError:
            return  # not ours to dead-letter: the commands topic belongs to Gardien
        data: dict[str, Any] = event.get("data") or {}
        if data.get("system") != system.system_id or data.get("transport") == "http":
            return
        system.spawn(broker, data)


def http_app(system: ReferenceSystem, secret: bytes) -> FastAPI:
    """``POST /gardien/erasure``: verify the signature, act, answer with the result."""
    app = FastAPI(title=f"reference system {system.system_id}")

    @app.post("/gardien/erasure")
    async def erasure(request: Request) -> dict[str, Any]:
        body = await request.body()
        stamp = request.headers.get(TIMESTAMP_HEADER, "")
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not verify(secret, stamp, body, signature):
            raise HTTPException(401, "bad or missing signature")
        command = json.loads(body).get("data") or {}
        if command.get("system") != system.system_id:
            raise HTTPException(422, "command addressed to another system")
        await system.note(command)
        if system.delay:
            await asyncio.sleep(system.delay)
        result = await system.carry_out(command)
        if result is None:
            raise HTTPException(503, "not answering (fail mode)")
        return {"command_id": command.get("command_id"), **result}

    return app
