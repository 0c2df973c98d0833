"""AsyncAPI 3.0 description of Gardien's topics, generated from the code that runs.

Channels come from ``shared.topics``, messages from the event-type registry (with the JSON
Schema of each inbound data model), and each service's receive operations from the
subscriptions its app actually wires. ``docs/asyncapi.yaml`` is this output; a test keeps
the two equal.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

import yaml

from shared import topics
from shared.events.envelope import CloudEvent
from shared.events.registry import EVENT_TYPES, INTERNAL_PREFIXES
from shared.settings import SERVICE_NAMES, Settings

# Who publishes on each topic (inbound topics: the company's own systems).
PRODUCERS: dict[str, list[str]] = {
    topics.REQUEST_EVENTS: ["intake"],
    topics.ERASURE_WORK: ["intake", "deadlines"],
    topics.ERASURE_COMMANDS: ["erasure"],
    topics.ERASURE_CASES: ["erasure"],
    topics.DEADLINES: ["deadlines"],
    topics.REGISTER: ["erasure"],
}


def _message_name(event_type: str) -> str:
    return event_type.replace(".", "_").replace("*", "any")


def _messages() -> dict[str, Any]:
    envelope = CloudEvent.model_json_schema()
    envelope.get("properties", {}).pop("data", None)
    messages: dict[str, Any] = {}
    for event_type, (model, _) in sorted(EVENT_TYPES.items()):
        data = model.model_json_schema(ref_template="#/components/schemas/{model}")
        messages[_message_name(event_type)] = {
            "name": event_type,
            "contentType": "application/cloudevents+json",
            "payload": {
                "allOf": [
                    envelope,
                    {
                        "type": "object",
                        "required": ["data"],
                        "properties": {"type": {"const": event_type}, "data": data},
                    },
                ]
            },
        }
    for prefix, topic in sorted(INTERNAL_PREFIXES.items()):
        messages[_message_name(prefix + "*")] = {
            "name": f"{prefix}*",
            "contentType": "application/cloudevents+json",
            "summary": f"Gardien's own events on {topic}; data fields in docs/events.md",
            "payload": envelope,
        }
    return messages


def _subscriptions(settings: Settings) -> dict[str, list[str]]:
    """Topic -> services that consume it, read from each service's wiring."""
    consumers: dict[str, list[str]] = {}
    for name in SERVICE_NAMES:
        runtime = import_module(f"services.{name}.app").create_app(settings).state.runtime
        for topic in runtime.consumer.topics():
            consumers.setdefault(topic, []).append(name)
    return consumers


def document(settings: Settings | None = None) -> dict[str, Any]:
    """The AsyncAPI document as a dict."""
    channels, operations = _channels_and_operations(_subscriptions(settings or Settings()))
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Gardien events",
            "version": "0.1.0",
            "description": (
                "CloudEvents 1.0, one per record. Gardien sends structured JSON mode and reads"
                " structured or binary mode (ce_* headers, data as value; docs/events.md)."
            ),
        },
        "defaultContentType": "application/cloudevents+json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": _messages()},
    }


def _messages_by_topic() -> dict[str, list[str]]:
    by_topic: dict[str, list[str]] = {}
    for event_type, (_, topic) in EVENT_TYPES.items():
        by_topic.setdefault(topic, []).append(_message_name(event_type))
    for prefix, topic in INTERNAL_PREFIXES.items():
        by_topic.setdefault(topic, []).append(_message_name(prefix + "*"))
    return by_topic


def _channels_and_operations(
    consumers: dict[str, list[str]],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One channel per topic, and each service's receive and send operations on it."""
    by_topic = _messages_by_topic()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic, partitions in sorted(topics.all_topics().items()):
        key = topic.replace(".", "_")
        channels[key] = _channel(topic, partitions, sorted(by_topic.get(topic, [])))
        for service in consumers.get(topic, []):
            operations[f"{service}_receives_{key}"] = _operation("receive", key)
        for service in PRODUCERS.get(topic, []):
            operations[f"{service}_sends_{key}"] = _operation("send", key)
    return channels, operations


def _operation(action: str, channel: str) -> dict[str, Any]:
    # A new dict each time: a shared one would be written as a YAML anchor and aliases.
    return {"action": action, "channel": {"$ref": f"#/channels/{channel}"}}


def _channel(topic: str, partitions: int, messages: list[str]) -> dict[str, Any]:
    if topic.endswith(topics.DLQ_SUFFIX):
        description = (
            "Dead letters: records as received (key, value, every header), then headers"
            " x-gardien-dlq-reason, -topic, -partition, -offset, -service, -at, -timestamp"
        )
    else:
        description = f"{partitions} partition(s); key = aggregate id (never personal data)"
    return {
        "address": topic,
        "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in messages},
        "description": description,
    }


def to_yaml(doc: dict[str, Any]) -> str:
    """A document as the YAML committed in docs/asyncapi.yaml."""
    return yaml.safe_dump(doc, sort_keys=True, allow_unicode=True, width=100)


def render(settings: Settings | None = None) -> str:
    """The AsyncAPI document as YAML."""
    return to_yaml(document(settings))
