"""The committed AsyncAPI description is the one the code generates, and is consistent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gardien.asyncapi import document, to_yaml
from shared.settings import Settings
from shared.topics import all_topics
from tests.support import REPO


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return document(Settings())


def test_committed_asyncapi_matches_the_code(doc: dict[str, Any]) -> None:
    committed = (REPO / "docs" / "asyncapi.yaml").read_text()
    assert committed == to_yaml(doc), "run `gardien asyncapi --out docs/asyncapi.yaml`"


def test_every_reference_resolves_and_every_topic_is_described(doc: dict[str, Any]) -> None:
    assert {c["address"] for c in doc["channels"].values()} == set(all_topics())
    for op in doc["operations"].values():
        assert op["channel"]["$ref"].removeprefix("#/channels/") in doc["channels"]
    messages = doc["components"]["messages"]
    for channel in doc["channels"].values():
        for ref in channel["messages"].values():
            assert ref["$ref"].removeprefix("#/components/messages/") in messages
    assert yaml.safe_load(to_yaml(doc))["asyncapi"] == "3.0.0"
    receivers = {name.split("_receives_")[0] for name in doc["operations"] if "_receives_" in name}
    assert receivers == {"intake", "deadlines", "erasure", "audit"}


def test_generated_without_a_pseudonymisation_key(tmp_path: Path) -> None:
    # `gardien asyncapi` in a fresh checkout: no key anywhere; the document needs none.
    bare = Settings(gardien_pseudonym_key=None, gardien_pseudonym_key_file=tmp_path / "none")
    assert to_yaml(document(bare)) == (REPO / "docs" / "asyncapi.yaml").read_text()


def test_internal_events_have_their_models_schema(doc: dict[str, Any]) -> None:
    from shared.events.registry import INTERNAL_TYPES

    messages, schemas = doc["components"]["messages"], doc["components"]["schemas"]
    for event_type, model in INTERNAL_TYPES.items():
        data = messages[event_type.replace(".", "_")]["payload"]["allOf"][1]["properties"]
        assert data["type"] == {"const": event_type}
        name = data["data"]["$ref"].removeprefix("#/components/schemas/")
        assert name == model.__name__ and schemas[name]["properties"], event_type
