"""CloudEvents envelope and the data model of every event type Gardien knows."""

from shared.events.envelope import CloudEvent, aggregate_key, new_event, parse_event
from shared.events.registry import EVENT_TYPES, topic_for_type

__all__ = [
    "EVENT_TYPES",
    "CloudEvent",
    "aggregate_key",
    "new_event",
    "parse_event",
    "topic_for_type",
]
