"""A reference connected system: takes erasure and export commands, acts on its own
database, answers (exports upload their records first: ``export.py``)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from faststream.kafka import KafkaBroker

from examples.connected_systems.export import export
from examples.connected_systems.records import CATALOGUE, Db, apply_line
from shared.events import new_event
from shared.messaging import publish_event

log = logging.getLogger("refsys")

Result = dict[str, Any]


@dataclass
class ReferenceSystem:
    """One system: its kind (crm, newsletter, billing, vendor), id, database and behaviour."""

    kind: str
    system_id: str
    db: Db
    delay: float = 0.0
    fail_mode: str = "none"  # none | never-answer | fail
    export_fail: bool = False  # exports fail (the system is retried, then escalated)
    export_late: int = 0  # export attempts left unanswered before answering (vendor: 1)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def note(self, command: dict[str, Any]) -> None:
        """Keep a trace of every command delivery (tests count them)."""
        await self.db["received"].insert_one(
            {
                "command_id": str(command["command_id"]),
                "attempt": command.get("attempt"),
                "at": datetime.now(UTC),
            }
        )

    async def carry_out(self, command: dict[str, Any]) -> Result | None:
        """Act on a command once; a repeated command gets the first answer again."""
        command_id = str(command["command_id"])
        if self.fail_mode == "never-answer":
            return None
        if self.fail_mode == "fail":
            return {"outcome": "failed", "detail": "reference system told to fail"}
        if command.get("action") == "export":
            return await self._export(command)
        done = await self.db["answered"].find_one({"_id": command_id})
        if done is not None:
            return dict(done["result"])
        result = await self._act(command)
        await self.db["answered"].replace_one(
            {"_id": command_id}, {"_id": command_id, "result": result}, upsert=True
        )
        return result

    async def _export(self, command: dict[str, Any]) -> Result | None:
        """Upload the subject's records and say how many (late or failing when told)."""
        if int(command.get("attempt") or 1) <= self.export_late:
            log.info("%s leaves export attempt %s unanswered", self.system_id, command["attempt"])
            return None
        if self.export_fail:
            return {"outcome": "failed", "detail": "export job failed (told to fail)"}
        command_id = str(command["command_id"])
        done = await self.db["exported"].find_one({"_id": command_id})
        if done is not None:
            return dict(done["result"])
        result = await export(self.kind, self.db, command)
        await self.db["exported"].replace_one(
            {"_id": command_id}, {"_id": command_id, "result": result}, upsert=True
        )
        return result

    async def _act(self, command: dict[str, Any]) -> Result:
        catalogue = CATALOGUE[self.kind]
        if command.get("action") in {"delete_all", "return_all"}:
            removed = 0
            for stores in catalogue.values():
                for store in stores:
                    removed += (await self.db[store.collection].delete_many({})).deleted_count
            return {"outcome": "erased", "detail": f"all data deleted ({removed} records)"}
        identifiers = {str(k): str(v) for k, v in (command.get("identifiers") or {}).items()}
        touched: dict[str, int] = {}
        latest: str | None = None
        for line in command.get("categories", []):
            for store in catalogue.get(line["category"], []):
                count, until = await apply_line(self.db, store, line, identifiers)
                key = f"{line['category']}:{line['action']}"
                touched[key] = touched.get(key, 0) + count
                if until is not None:
                    latest = max(latest or until, until)
        return _outcome(touched, latest)

    async def answer(self, broker: KafkaBroker, command: dict[str, Any]) -> None:
        """Carry out ``command`` (after the configured delay) and publish the result."""
        await self.note(command)
        if self.delay:
            await asyncio.sleep(self.delay)
        try:
            result = await self.carry_out(command)
        except Exception as exc:
            log.exception("%s could not carry out %s", self.system_id, command["command_id"])
            result = {"outcome": "failed", "detail": f"{type(exc).__name__} in {self.system_id}"}
        if result is None:
            return
        data = {"command_id": command["command_id"], "system": self.system_id, **result}
        if result.get("retained_until"):
            data["retained_until"] = f"{result['retained_until']}T12:00:00+00:00"
        kind = "gdpr.export.result" if command.get("action") == "export" else "gdpr.erasure.result"
        event = new_event(kind, data, source=f"refsys/{self.system_id}")
        await publish_event(broker, event, str(command["command_id"]))
        log.info("%s answered %s: %s", self.system_id, command["command_id"], result["outcome"])

    def spawn(self, broker: KafkaBroker, command: dict[str, Any]) -> None:
        """Answer in the background so a slow answer never blocks the next command."""
        task = asyncio.create_task(self.answer(broker, command))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def _outcome(touched: dict[str, int], retained_until: str | None) -> Result:
    detail = ", ".join(f"{k}={v}" for k, v in sorted(touched.items())) or "no records"
    if retained_until is not None:
        return {"outcome": "retained", "detail": detail, "retained_until": retained_until}
    if not any(touched.values()):
        return {"outcome": "not_found", "detail": detail}
    actions = {k.split(":")[1] for k, v in touched.items() if v}
    outcome = "anonymised" if actions == {"anonymise"} else "erased"
    return {"outcome": outcome, "detail": detail}
