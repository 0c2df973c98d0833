"""A processor's deletion order, its acknowledgement and certificate are in the trail (Art 28)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from services.audit.app import create_app
from services.audit.settings import AuditSettings
from services.erasure import domain, messages, planning
from services.erasure.registry import Registry
from services.erasure.settings import ErasureSettings
from shared import topics
from shared.events import CloudEvent
from shared.settings import Settings
from tests.support import api_key, event_bytes, produce, running, wait_for

pytestmark = pytest.mark.integration


def _order(old: str, now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``delete_all`` command the erasure service issues, and its retry, as JSON."""
    change = planning.ProcessorChange(old=old, new=f"{old}-next", controller_choice="delete")
    case = planning.plan_processor_case(
        f"proc:{old}:{now.date()}", change, Registry(systems=[]), ErasureSettings(), now
    )
    issued = []
    for _ in range(2):  # the first attempt, then a retry once it timed out
        for effect in domain.advance(case, now):
            if effect.kind == "issue" and effect.system:
                event, _key = messages.command_issued(case, case.systems[effect.system], now)
                issued.append(event)
        case.systems[old].next_attempt_at = now
    first, retry = issued[0], issued[-1]
    assert first.data["action"] == "delete_all" and first.data["identifiers"] == {}
    assert first.id != retry.id
    return _json(first), _json(retry)


def _json(event: CloudEvent) -> dict[str, Any]:
    dumped: dict[str, Any] = event.model_dump(mode="json", exclude_none=True)
    return dumped


def _inbound(kind: str, source: str, **data: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"evt-{uuid.uuid4().hex}",
        "source": source,
        "type": kind,
        "time": datetime.now(UTC).isoformat(),
        "data": data,
    }


async def _count(records: Any, event_id: str) -> int:
    return len([d async for d in records.find({"event_id": event_id})])


async def test_deletion_order_ack_and_certificate_are_audited_once_each(
    settings: Settings, audit_settings: AuditSettings
) -> None:
    now = datetime.now(UTC)
    old = f"mailer-{uuid.uuid4().hex[:8]}"
    order, retry = _order(old, now)
    command_id = order["data"]["command_id"]
    ack = _inbound("gdpr.erasure.result", old, command_id=command_id, system=old, outcome="erased")
    ack_later = {**ack, "id": f"{ack['id']}-late"}
    certificate = _inbound(
        "gdpr.processor.deletion_certified", old, processor=old, at=now.isoformat()
    )
    cert_later = {**certificate, "id": f"{certificate['id']}-late", "certificate_ref": "C-2"}
    sent: dict[str, list[dict[str, Any]]] = {
        topics.ERASURE_COMMANDS: [order, order, order, retry],  # two redeliveries
        topics.ERASURE_RESULTS: [ack, ack, ack_later],
        topics.PROCESSORS: [certificate, certificate, cert_later],
    }
    app = create_app(settings, audit=audit_settings)
    async with running(app) as http:
        for topic, events in sent.items():
            items = [(old.encode(), event_bytes(e)) for e in events]
            await produce(settings.kafka_bootstrap_servers, topic, items)
        records = app.state.runtime.db["records"]

        async def last_ones_audited() -> bool:
            # The last record of each partition: everything before it has been handled.
            lasts = [retry["id"], ack_later["id"], cert_later["id"]]
            return all([await _count(records, i) for i in lasts])

        await wait_for(last_ones_audited, timeout=30)
        for event in (order, retry, ack, ack_later, certificate, cert_later):
            assert await _count(records, event["id"]) == 1, event["type"]
        stored = await records.find_one({"event_id": order["id"]})
        assert stored is not None and stored["refs"]["case_id"] == order["data"]["case_id"]
        assert stored["data"]["action"] == "delete_all" and stored["subject_refs"] == []
        assert stored["data"]["identifiers"] == {} and stored["sealed"] == []  # names nobody
        bodies = {hashlib.sha256(event_bytes(e)).hexdigest() for es in sent.values() for e in es}
        rejected = [d async for d in records.find({"kind": "rejection"})]
        assert not [r for r in rejected if r["data"]["body_sha256"] in bodies]
        verified = (await http.get("/v1/audit/verify", headers=api_key(settings))).json()
        assert verified["ok"], verified
