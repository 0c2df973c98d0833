"""The consumer's ack policy on a real broker: retry transient failures, dead-letter the rest."""

from __future__ import annotations

import pytest
from pymongo.errors import AutoReconnect

from shared import topics
from shared.events import CloudEvent
from shared.messaging import DLQ_REASON, MAX_UNEXPECTED_ATTEMPTS
from shared.service import Runtime, ServiceSpec, create_service_app
from shared.settings import Settings
from tests.support import event_bytes, example, produce, read_all, running, topic_reader, wait_for

pytestmark = pytest.mark.integration


def probe_app(settings: Settings, calls: dict[str, int], handled: list[str]):  # type: ignore[no-untyped-def]
    """A service on the requests topic whose handler fails as each event asks it to."""

    def wire(runtime: Runtime) -> None:
        async def handle(event: CloudEvent) -> None:
            calls[event.id] = calls.get(event.id, 0) + 1
            mode = event.data.get("channel")
            if mode == "flaky" and calls[event.id] < 3:
                raise AutoReconnect("store briefly unreachable")
            if mode == "broken":
                raise KeyError("a bug")
            handled.append(event.id)

        runtime.consumer.events(topics.REQUESTS, handle)

    return create_service_app(ServiceSpec("probe", wire), settings)


async def test_transient_failure_is_retried_and_a_bug_is_dead_lettered(settings: Settings) -> None:
    calls: dict[str, int] = {}
    handled: list[str] = []
    flaky = example("request-received.json", channel="flaky", request_id="R-FLAKY")
    broken = example("request-received.json", channel="broken", request_id="R-BROKEN")
    after = example("request-received.json", channel="web", request_id="R-AFTER")
    misplaced = example("breach-detected.json")
    deep = b"[" * 100_000 + b"]" * 100_000  # json.loads raises RecursionError on this
    async with running(probe_app(settings, calls, handled)):
        async with topic_reader(
            settings.kafka_bootstrap_servers, topics.dlq(topics.REQUESTS)
        ) as dlq:
            await produce(
                settings.kafka_bootstrap_servers,
                topics.REQUESTS,
                [
                    (b"R-FLAKY", event_bytes(flaky)),
                    (b"R-BROKEN", event_bytes(broken)),
                    (b"R-AFTER", event_bytes(after)),
                    (b"BR", event_bytes(misplaced)),
                    (b"DEEP", deep),
                ],
            )

            async def all_done() -> bool:
                return {flaky["id"], after["id"]} <= set(handled)

            await wait_for(all_done, timeout=30)
            assert calls[flaky["id"]] == 3 and handled.count(flaky["id"]) == 1
            dead = await read_all(
                dlq,
                {
                    "broken": lambda r: r.value == event_bytes(broken),
                    "misplaced": lambda r: r.value == event_bytes(misplaced),
                    "deep": lambda r: r.value == deep,
                },
                timeout=30,
            )
            reason = dict(dead["broken"].headers)[DLQ_REASON].decode()
            assert f"failed {MAX_UNEXPECTED_ATTEMPTS} times: KeyError" in reason
            assert calls[broken["id"]] == MAX_UNEXPECTED_ATTEMPTS
            wrong = dict(dead["misplaced"].headers)[DLQ_REASON].decode()
            assert "belongs on gdpr.breaches.v1" in wrong
