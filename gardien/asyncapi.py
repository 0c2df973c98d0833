"""AsyncAPI 3.0 description of Gardien's topics, generated from the code that runs.

Channels come from ``shared.topics`` (with their partition counts as Kafka bindings),
messages from the event-type registry (the JSON Schema of each data model, its sub-schemas
under ``components.schemas``), each service's receive operations from the subscriptions its
app actually wires (with its consumer group as a Kafka binding), and the dead-letter headers
from ``shared.messaging``. ``docs/asyncapi.yaml`` is this output; one test keeps the two equal,
another loads it with AsyncAPI's own parser (``tools/asyncapi-check``).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

import yaml
from pydantic import BaseModel

from shared import messaging, topics
from shared.events.envelope import CloudEvent
from shared.events.registry import EVENT_TYPES, INTERNAL_TYPES, topic_for_type
from shared.settings import SERVICE_NAMES, Settings

BINDING = "0.5.0"  # the Kafka bindings' version this document follows
# Who publishes on each topic (inbound topics: the company's own systems).
PRODUCERS: dict[str, list[str]] = {
    topics.REQUEST_EVENTS: ["intake"],
    topics.ERASURE_WORK: ["intake", "deadlines"],
    topics.ERASURE_COMMANDS: ["erasure"],
    topics.ERASURE_CASES: ["erasure"],
    topics.DEADLINES: ["deadlines"],
    topics.REGISTER: ["erasure"],
}
SERVERS = {
    "embedded": {
        "host": "127.0.0.1:9092",
        "protocol": "kafka",
        "description": "The embedded broker `gardien up` starts (another free port if taken;"
        " `gardien stack status` prints it).",
    },
    "production": {
        "host": "kafka:9092",
        "protocol": "kafka",
        "description": "Apache Kafka as in deploy/compose.yaml (set KAFKA_BOOTSTRAP_SERVERS).",
    },
}
DEAD_LETTER = "dead_letter"
DLQ_HEADERS = {
    messaging.DLQ_REASON: "Why the record was refused (never a payload value).",
    messaging.DLQ_TOPIC: "The topic the record was read from.",
    messaging.DLQ_PARTITION: "Its partition there.",
    messaging.DLQ_OFFSET: "Its offset there.",
    messaging.DLQ_SERVICE: "The service that refused it (the topic's owner).",
    messaging.DLQ_AT: "When it was refused (ISO 8601, UTC).",
    messaging.DLQ_TIMESTAMP: "The original record's timestamp (ms since the epoch).",
}


def _message_name(event_type: str) -> str:
    return event_type.replace(".", "_").replace("*", "any")


class _Schemas:
    """``components.schemas``: each model once, referenced from the messages."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}

    def ref(self, model: type[BaseModel], name: str | None = None) -> dict[str, str]:
        """A reference to ``model``'s schema, adding it (and its sub-schemas) when new."""
        name = name or model.__name__
        if name not in self.schemas:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            self.schemas.update(schema.pop("$defs", {}))
            self.schemas[name] = schema
        return {"$ref": f"#/components/schemas/{name}"}


def _envelope(schemas: _Schemas) -> dict[str, str]:
    ref = schemas.ref(CloudEvent, "CloudEvent")
    schemas.schemas["CloudEvent"].get("properties", {}).pop("data", None)
    return ref


def _kafka_key(description: str) -> dict[str, Any]:
    return {
        "kafka": {"key": {"type": "string", "description": description}, "bindingVersion": BINDING}
    }


def _headers() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "content-type": {"type": "string", "const": "application/cloudevents+json"},
            "ce_type": {"type": "string", "description": "The event type (also in the value)."},
            "traceparent": {"type": "string", "description": "W3C trace context."},
        },
    }


def _messages(schemas: _Schemas) -> dict[str, Any]:
    envelope = _envelope(schemas)
    messages: dict[str, Any] = {}
    for event_type, (model, _) in sorted(EVENT_TYPES.items()):
        messages[_message_name(event_type)] = _event_message(
            event_type, envelope, schemas.ref(model), "The aggregate id (request, breach ...)."
        )
    for event_type, own in sorted(INTERNAL_TYPES.items()):
        message = _event_message(
            event_type, envelope, schemas.ref(own), "The aggregate id (never personal data)."
        )
        where = topic_for_type(event_type)
        message["summary"] = f"Gardien's own event on {where}; data: {own.__name__}"
        messages[_message_name(event_type)] = message
    messages[DEAD_LETTER] = {
        "name": DEAD_LETTER,
        "summary": "A refused record, copied as received; the reason in headers.",
        "contentType": "application/octet-stream",
        "headers": {
            "type": "object",
            "required": sorted(DLQ_HEADERS),
            "properties": {h: {"type": "string", "description": d} for h, d in DLQ_HEADERS.items()},
            "additionalProperties": {"description": "Every header of the original record."},
        },
        "payload": {"description": "The original record's value, byte for byte."},
        "bindings": _kafka_key("The original record's key."),
    }
    return messages


def _event_message(
    name: str, envelope: dict[str, str], data: dict[str, Any], key: str
) -> dict[str, Any]:
    payload: dict[str, Any] = {"type": "object", "required": ["data"], "properties": {"data": data}}
    if not name.endswith("*"):
        payload["properties"]["type"] = {"const": name}
    return {
        "name": name,
        "contentType": "application/cloudevents+json",
        "headers": _headers(),
        "payload": {"allOf": [envelope, payload]},
        "bindings": _kafka_key(key),
    }


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
    schemas = _Schemas()
    messages = _messages(schemas)
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
        "servers": SERVERS,
        "defaultContentType": "application/cloudevents+json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas.schemas},
    }


def _messages_by_topic() -> dict[str, list[str]]:
    by_topic: dict[str, list[str]] = {}
    for event_type, (_, topic) in EVENT_TYPES.items():
        by_topic.setdefault(topic, []).append(_message_name(event_type))
    for event_type in INTERNAL_TYPES:
        by_topic.setdefault(topic_for_type(event_type), []).append(_message_name(event_type))
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
        names = [DEAD_LETTER] if topic.endswith(topics.DLQ_SUFFIX) else by_topic.get(topic, [])
        channels[key] = _channel(topic, partitions, sorted(names))
        for service in consumers.get(topic, []):
            operations[f"{service}_receives_{key}"] = _operation("receive", key, service)
        for service in PRODUCERS.get(topic, []):
            operations[f"{service}_sends_{key}"] = _operation("send", key, service)
    return channels, operations


def _operation(action: str, channel: str, service: str) -> dict[str, Any]:
    # New dicts each time: a shared one would be written as a YAML anchor and aliases.
    kafka: dict[str, Any] = {
        "clientId": {"type": "string", "enum": [f"gardien-{service}"]},
        "bindingVersion": BINDING,
    }
    if action == "receive":
        kafka["groupId"] = {"type": "string", "enum": [f"gardien-{service}"]}
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "bindings": {"kafka": kafka},
    }


def _channel(topic: str, partitions: int, messages: list[str]) -> dict[str, Any]:
    if topic.endswith(topics.DLQ_SUFFIX):
        description = (
            "Dead letters: records as received (key, value, every header), then the headers"
            " x-gardien-dlq-*; `gardien dlq` lists and re-drives them"
        )
    else:
        description = f"{partitions} partition(s); key = aggregate id (never personal data)"
    return {
        "address": topic,
        "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in messages},
        "description": description,
        "bindings": {
            "kafka": {"topic": topic, "partitions": partitions, "bindingVersion": BINDING}
        },
    }


def to_yaml(doc: dict[str, Any]) -> str:
    """A document as the YAML committed in docs/asyncapi.yaml."""
    return yaml.safe_dump(doc, sort_keys=True, allow_unicode=True, width=100)


def render(settings: Settings | None = None) -> str:
    """The AsyncAPI document as YAML."""
    return to_yaml(document(settings))
