"""AsyncAPI 3.0 description of Gardien's topics, generated from the code that runs.

Channels come from ``shared.topics``, messages from the event-type registry (with the JSON
Schema of each inbound data model), and each service's receive operations from the
subscriptions its app actually wires. ``docs/asyncapi.yaml`` is this output; a test keeps
the two equal.
"""

from __future__ import annotations

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
        module = __import__(f"services.{name}.app", fromlist=["create_app"])
        runtime = module.create_app(settings).state.runtime
        for topic in runtime.consumer.topics():
            consumers.setdefault(topic, []).append(name)
    return consumers


def document(settings: Settings | None = None) -> dict[str, Any]:
    """The AsyncAPI document as a dict."""
    settings = settings or Settings()
    messages = _messages()
    by_topic: dict[str, list[str]] = {}
    for event_type, (_, topic) in EVENT_TYPES.items():
        by_topic.setdefault(topic, []).append(_message_name(event_type))
    for prefix, topic in INTERNAL_PREFIXES.items():
        by_topic.setdefault(topic, []).append(_message_name(prefix + "*"))
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    consumers = _subscriptions(settings)
    for topic, partitions in sorted(topics.all_topics().items()):
        key = topic.replace(".", "_")
        refs = {m: {"$ref": f"#/components/messages/{m}"} for m in sorted(by_topic.get(topic, []))}
        channel: dict[str, Any] = {
            "address": topic,
            "messages": refs,
            "description": f"{partitions} partition(s); key = aggregate id (never personal data)",
        }
        if topic.endswith(topics.DLQ_SUFFIX):
            channel["description"] = (
                "Dead letters: records as received (key, value, every header), then headers"
                " x-gardien-dlq-reason, -topic, -partition, -offset, -service, -at, -timestamp"
            )
        channels[key] = channel
        for service in consumers.get(topic, []):
            operations[f"{service}_receives_{key}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{key}"},
            }
        for service in PRODUCERS.get(topic, []):
            operations[f"{service}_sends_{key}"] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{key}"},
            }
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
        "components": {"messages": messages},
    }


def to_yaml(doc: dict[str, Any]) -> str:
    """A document as the YAML committed in docs/asyncapi.yaml."""
    return yaml.safe_dump(doc, sort_keys=True, allow_unicode=True, width=100)


def render(settings: Settings | None = None) -> str:
    """The AsyncAPI document as YAML."""
    return to_yaml(document(settings))
