"""Apache Kafka and MongoDB in containers (testcontainers), for the container tier."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tests.support import StackInfo

KAFKA_IMAGE = "apache/kafka:3.9.1"
MONGO_IMAGE = "mongo:8"


def docker_unavailable_reason() -> str | None:
    """Why the container tier cannot run here, or None when a Docker engine answers."""
    try:
        import docker

        docker.from_env(timeout=5).ping()
    except Exception as exc:
        return f"no reachable Docker engine ({type(exc).__name__}: {str(exc)[:120]})"
    return None


@contextmanager
def container_stack() -> Iterator[StackInfo]:
    """Start Kafka (KRaft) and a single-node MongoDB replica set; stop them afterwards."""
    from testcontainers.kafka import KafkaContainer
    from testcontainers.mongodb import MongoDbContainer

    with KafkaContainer(KAFKA_IMAGE).with_kraft() as kafka, MongoDbContainer(MONGO_IMAGE) as mongo:
        yield StackInfo(kafka.get_bootstrap_server(), mongo.get_connection_url(), None, None)
