"""Every metric and label the dashboard and the alert rules name is one the services expose.

The four services and the gateway run in this process on the embedded stack; a request for
erasure, a breach and a poison record go through them, a webhook is subscribed, and each
app's ``/metrics`` is read (Prometheus' own parser) once its figures are there.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from services.audit.app import create_app as audit_app
from services.audit.settings import AuditSettings
from services.deadlines.app import create_app as deadlines_app
from services.erasure.app import create_app as erasure_app
from services.gateway.app import create_app as gateway_app
from services.intake.app import create_app as intake_app
from shared import topics
from shared.settings import Settings
from tests.deploy.test_observability import SYNTHETIC, TARGET_LABELS, used
from tests.support import api_key, event_bytes, example, produce, running, wait_for

pytestmark = pytest.mark.integration
Exposed = dict[str, set[str]]  # sample name -> label names seen on it


def exposed(text: str) -> Exposed:
    found: Exposed = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, set()).update(sample.labels)
    return found


@asynccontextmanager
async def all_running(
    settings: Settings,
) -> AsyncIterator[dict[str, tuple[FastAPI, httpx.AsyncClient]]]:
    apps = {
        "intake": intake_app(settings),
        "deadlines": deadlines_app(settings, run_scheduler=False),
        "erasure": erasure_app(settings),
        "audit": audit_app(settings, audit=AuditSettings(webhook_allow=["127.0.0.1"])),
        "api": gateway_app(settings),
    }
    async with AsyncExitStack() as stack:
        clients = await asyncio.gather(
            *(stack.enter_async_context(running(a)) for a in apps.values())
        )
        yield {
            name: (app, client) for (name, app), client in zip(apps.items(), clients, strict=True)
        }


async def traffic(
    settings: Settings, clients: dict[str, tuple[FastAPI, httpx.AsyncClient]]
) -> None:
    request_id = f"REQ-OBS-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC).isoformat()
    breach = example(
        "breach-detected.json", breach_id=f"BR-OBS-{uuid.uuid4().hex[:6]}", aware_at=now
    )
    await produce(settings.kafka_bootstrap_servers, topics.BREACHES, [(b"b", event_bytes(breach))])
    erase = example("request-erasure-received.json", request_id=request_id)
    records: list[tuple[bytes | None, bytes]] = [
        (request_id.encode(), event_bytes(erase)),
        (b"poison", b"{not json"),
    ]
    await produce(settings.kafka_bootstrap_servers, topics.REQUESTS, records)
    audit = clients["audit"][1]
    hook = {"url": "http://127.0.0.1:9/hook"}  # nothing listens: deliveries fail
    subscribed = await audit.post("/v1/webhooks", json=hook, headers=api_key(settings))
    assert subscribed.status_code == 201, subscribed.text
    await clients["api"][1].get("/v1/requests/REQ-NONE", headers=api_key(settings))


async def test_dashboard_and_alerts_name_only_exposed_metrics(settings: Settings) -> None:
    async with all_running(settings) as clients:
        await traffic(settings, clients)
        wanted = {m for n in used() for m in n.metrics} - set(SYNTHETIC)

        async def everything() -> Exposed:
            found: Exposed = {}
            for app, client in clients.values():
                runtime = getattr(app.state, "runtime", None)
                if runtime is not None:  # the gateway has no database-backed gauges
                    await runtime.metrics.refresh()
                for name, labels in exposed((await client.get("/metrics")).text).items():
                    found.setdefault(name, set()).update(labels)
            return found

        async def complete() -> Exposed | None:
            found = await everything()
            return found if wanted <= set(found) else None

        try:
            found = await wait_for(complete, timeout=40, interval=0.5)
        except AssertionError:
            missing = sorted(wanted - set(await everything()))
            raise AssertionError(f"named but not exposed: {missing}") from None
    found.update(SYNTHETIC)
    for n in used():
        for metric, labels in n.metrics.items():
            assert labels <= found[metric] | TARGET_LABELS, (metric, labels - found[metric])
        on_any = set().union(*(found[m] for m in n.metrics)) | TARGET_LABELS
        assert n.grouping <= on_any, (sorted(n.metrics), n.grouping - on_any)
