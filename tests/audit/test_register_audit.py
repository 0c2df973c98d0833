"""Changes to the register are audited: erasure publishes them at start-up, audit records them.

On the embedded stack: a first start records the register, an unchanged restart records
nothing, a changed register records one more event naming the changed activity.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.audit.app import create_app as audit_app
from services.audit.settings import AuditSettings
from services.erasure.app import create_app as erasure_app
from services.erasure.register import COLLECTION, DOC_ID
from shared.settings import Settings
from tests.support import REPO, api_key, running, wait_for

pytestmark = pytest.mark.integration
EVENT = "gardien.register.changed"


def profile(tmp_path: Path, name: str, purpose: str) -> Path:
    """A copy of the MSI profile under a name private to this test (the topic is shared)."""
    raw = yaml.safe_load((REPO / "examples" / "policies" / "msi.yaml").read_text())
    raw["name"] = name
    raw["register"]["activities"][1]["purposes"] = [purpose]
    path = tmp_path / f"{uuid.uuid4().hex}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


async def start_erasure_once(settings: Settings, policy: Path) -> Any:
    """Run erasure's lifespan (which records the register) and stop it."""
    app = erasure_app(settings.model_copy(update={"gardien_policy_file": policy}))
    async with running(app) as client:
        assert (await client.get("/healthz")).status_code == 200
        return app.state.register


async def test_register_changes_are_audited_once_each(
    settings: Settings, audit_settings: AuditSettings, tmp_path: Path, mongo_client: Any
) -> None:
    name = f"reg-{uuid.uuid4().hex[:8]}"
    headers = api_key(settings, "audit:read")
    first = profile(tmp_path, name, "sending offers")
    changed = profile(tmp_path, name, "sending offers and newsletters")
    async with running(audit_app(settings, audit=audit_settings)) as audit:

        async def mine() -> list[dict[str, Any]]:
            r = await audit.get("/v1/audit/events", params={"type": EVENT}, headers=headers)
            return [i for i in r.json()["items"] if i["data"].get("policy") == name]

        async def recorded(register_hash: str) -> list[dict[str, Any]] | None:
            items = await mine()
            found = any(i["data"]["register_hash"] == register_hash for i in items)
            return items if found else None

        doc1 = await start_erasure_once(settings, first)
        [initial] = await wait_for(lambda: recorded(doc1.hash), timeout=30)
        assert initial["data"]["register_hash"] == doc1.hash
        assert initial["data"]["previous_hash"] is None
        assert initial["data"]["added"] == ["accounting", "customers", "prospecting"]

        again = await start_erasure_once(settings, first)  # unchanged: nothing published
        assert again.hash == doc1.hash
        db = mongo_client[settings.database_name("erasure")]
        state = await db[COLLECTION].find_one({"_id": DOC_ID})
        assert state["seq"] == 1 and state["hash"] == doc1.hash
        assert not state["outbox_pending"]

        doc3 = await start_erasure_once(settings, changed)
        both = await wait_for(lambda: recorded(doc3.hash), timeout=30)
        # Same key, same partition: had the unchanged restart published, its record would
        # have come before the change's, and there would be three.
        assert len(both) == 2
        latest = next(i for i in both if i["data"]["sequence"] == 2)
        assert latest["data"]["register_hash"] == doc3.hash
        assert latest["data"]["previous_hash"] == doc1.hash
        assert latest["data"]["changed"] == ["prospecting"]
        assert latest["data"]["added"] == [] and latest["data"]["removed"] == []
        assert latest["data"]["controller_changed"] is False
