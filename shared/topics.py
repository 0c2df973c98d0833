"""Kafka topic names and their partition counts: the one place they are spelled."""

from __future__ import annotations

from typing import Final

REQUESTS: Final = "gdpr.requests.v1"
CONTRACTS: Final = "gdpr.contracts.v1"
BREACHES: Final = "gdpr.breaches.v1"
PROCESSORS: Final = "gdpr.processors.v1"
LEGAL_HOLDS: Final = "gdpr.legal_holds.v1"
ERASURE_RESULTS: Final = "gdpr.erasure.results.v1"

REQUEST_EVENTS: Final = "gardien.requests.v1"
ERASURE_WORK: Final = "gardien.erasure.work.v1"
ERASURE_COMMANDS: Final = "gardien.erasure.commands.v1"
ERASURE_CASES: Final = "gardien.erasure.cases.v1"
DEADLINES: Final = "gardien.deadlines.v1"
REGISTER: Final = "gardien.register.v1"  # changes of the register of processing (Art 30)
OPERATIONS: Final = "gardien.operations.v1"  # operators' actions (dead letters re-driven)

DLQ_SUFFIX: Final = ".dlq"

INBOUND: Final = (REQUESTS, CONTRACTS, BREACHES, PROCESSORS, LEGAL_HOLDS, ERASURE_RESULTS)
INTERNAL: Final = (
    REQUEST_EVENTS,
    ERASURE_WORK,
    ERASURE_COMMANDS,
    ERASURE_CASES,
    DEADLINES,
    REGISTER,
    OPERATIONS,
)

# Six partitions for the business topics: enough for several consumer-group members and
# one audit chain per partition; dead-letter topics are low volume.
PARTITIONS: Final[dict[str, int]] = {
    **{name: 6 for name in INBOUND + INTERNAL},
}


def dlq(topic: str) -> str:
    """Dead-letter topic of ``topic``."""
    return f"{topic}{DLQ_SUFFIX}"


def all_topics() -> dict[str, int]:
    """Every topic Gardien uses (dead-letter topics included) with its partition count."""
    topics = dict(PARTITIONS)
    for name in INBOUND + INTERNAL:
        topics[dlq(name)] = 1
    return topics
