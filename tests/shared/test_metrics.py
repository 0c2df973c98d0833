"""Metrics: OpenTelemetry instruments read back through Prometheus' own text parser."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.intake.app import create_app as intake_app
from shared import topics
from shared.metrics import Key, Metrics
from shared.settings import Settings
from tests.support import api_key, event_bytes, example, produce, running, wait_for


def families(text: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        ({k: v for k, v in s.labels.items() if not k.startswith("otel_scope")}, s.value)
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name
    ]


async def test_every_family_has_a_type_and_help_and_no_unknown_types() -> None:
    metrics = Metrics("intake")
    metrics.consumed(topics.REQUESTS, "gardien-intake")
    metrics.dead_lettered(topics.REQUESTS, "gardien-intake", "invalid")
    metrics.handled(topics.REQUESTS, "gardien-intake", "gdpr.request.received", 0.003, True)
    text = metrics.exposition().decode()
    assert "# HELP messaging_client_consumed_messages_total" in text
    assert "# TYPE messaging_process_duration_seconds histogram" in text
    found = families(text)
    assert {"messaging_client_consumed_messages", "gardien_dead_letters"} <= set(found)
    assert all(getattr(f, "type", "unknown") != "unknown" for f in found.values())
    consumed = samples(text, "messaging_client_consumed_messages_total")
    by_outcome = {labels.get("error_type") or "ok": value for labels, value in consumed}
    assert by_outcome == {"ok": 1.0, "dead_lettered": 1.0}
    assert consumed[0][0]["messaging_destination_name"] == topics.REQUESTS
    assert consumed[0][0]["messaging_consumer_group_name"] == "gardien-intake"
    assert samples(text, "process_cpu_time_seconds_total")
    assert samples(text, "process_memory_usage_bytes")[0][1] > 0


async def test_database_backed_gauges_are_refreshed_in_the_background() -> None:
    metrics = Metrics("deadlines")
    figures: dict[Key, float] = {(("gardien.timer.state", "due"),): 3.0}

    async def source() -> Mapping[Key, float]:
        return figures

    metrics.gauge("gardien.timers", "Timers by state.", "{timer}", source)
    await metrics.refresh()
    assert samples(metrics.exposition().decode(), "gardien_timers") == [
        ({"gardien_timer_state": "due"}, 3.0)
    ]

    async def broken() -> Mapping[Key, float]:
        raise ConnectionError("mongo away")

    metrics._gauges["gardien.timers"].source = broken
    await metrics.refresh()  # keeps the last figures, raises nothing
    assert samples(metrics.exposition().decode(), "gardien_timers")[0][1] == 3.0


@pytest.mark.integration
async def test_a_running_service_exposes_consumer_and_http_figures(settings: Settings) -> None:
    headers = api_key(settings)
    event = example("request-received.json", request_id="REQ-METRICS-1")
    app = intake_app(settings)
    async with running(app) as intake:
        await produce(
            settings.kafka_bootstrap_servers,
            topics.REQUESTS,
            [(b"REQ-METRICS-1", event_bytes(event))],
        )

        async def stored() -> bool | None:
            r = await intake.get("/v1/requests/REQ-METRICS-1", headers=headers)
            return True if r.status_code == 200 else None

        await wait_for(stored)

        async def counted() -> str | None:  # the count follows the handler's last write
            response = await intake.get("/metrics")
            assert response.headers["content-type"].startswith("text/plain")
            consumed = samples(response.text, "messaging_client_consumed_messages_total")
            mine = [
                v
                for labels, v in consumed
                if labels["messaging_destination_name"] == topics.REQUESTS
            ]
            return response.text if mine and mine[0] >= 1 else None

        text = await wait_for(counted)

        async def caught_up() -> list[tuple[dict[str, str], float]] | None:
            await app.state.runtime.metrics.refresh()
            lag = samples((await intake.get("/metrics")).text, "gardien_consumer_lag")
            mine = [
                v for labels, v in lag if labels["messaging_destination_name"] == topics.REQUESTS
            ]
            return lag if mine and not any(mine) else None

        lag = await wait_for(caught_up)
    routes = {
        labels.get("http_route")
        for labels, _ in samples(text, "http_server_request_duration_seconds_count")
    }
    assert "/v1/requests/{request_id}" in routes
    assert "alice" not in text.lower() and "@" not in text
    partitions = {labels["messaging_destination_partition_id"] for labels, _ in lag}
    assert len(partitions) > 1  # one figure per partition


async def test_a_hanging_source_is_cut_short_and_the_others_still_refresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    from shared import metrics as module

    monkeypatch.setattr(module, "SOURCE_TIMEOUT", 0.05)
    metrics = Metrics("deadlines")

    async def frozen() -> Mapping[Key, float]:
        await asyncio.sleep(3600)
        return {}

    async def fine() -> Mapping[Key, float]:
        return {(("gardien.timer.state", "due"),): 2.0}

    metrics.gauge("gardien.frozen", "Never answers.", "{timer}", frozen)
    metrics.gauge("gardien.fine", "Answers.", "{timer}", fine)
    await asyncio.wait_for(metrics.refresh(), 2)
    assert samples(metrics.exposition().decode(), "gardien_fine")[0][1] == 2.0


def fake_clock(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The metrics module's monotonic clock, set by hand (``.now``)."""
    from types import SimpleNamespace

    from shared import metrics as module

    clock = SimpleNamespace(now=100.0)
    monkeypatch.setattr(module, "time", SimpleNamespace(monotonic=lambda: clock.now))
    return clock


async def test_a_slow_figure_is_read_at_its_own_cadence_unless_forced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = fake_clock(monkeypatch)
    metrics, reads = Metrics("erasure"), {"lag": 0, "cases": 0}

    def counting(name: str) -> Callable[[], Awaitable[Mapping[Key, float]]]:
        async def source() -> Mapping[Key, float]:
            reads[name] += 1
            return {}

        return source

    metrics.gauge("gardien.lag", "Every refresh.", "{message}", counting("lag"))
    metrics.gauge("gardien.cases", "Once a minute.", "{case}", counting("cases"), every=60)
    for _ in range(3):
        await metrics.refresh(due_only=True)  # what the background task does, every 15 s
        clock.now += 15
    assert reads == {"lag": 3, "cases": 1}
    await metrics.refresh()  # forced: tests, or a caller that wants fresh figures now
    assert reads == {"lag": 4, "cases": 2}


async def test_a_figure_given_a_longer_bound_is_read_to_its_end_beside_a_cut_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The open cases of a large erasure store take longer than the default bound to read:
    such a gauge says so (``timeout``) and gets its figure; the default still cuts a frozen
    source, and the two are read side by side, not one after the other."""
    import asyncio
    import time

    from shared import metrics as module

    monkeypatch.setattr(module, "SOURCE_TIMEOUT", 0.2)
    metrics = Metrics("erasure")

    def sleeping(seconds: float, value: float) -> Callable[[], Awaitable[Mapping[Key, float]]]:
        async def source() -> Mapping[Key, float]:
            await asyncio.sleep(seconds)
            return {(("gardien.case.state", "open"),): value}

        return source

    metrics.gauge("gardien.slow", "Long read.", "{case}", sleeping(0.4, 7.0), timeout=2.0)
    metrics.gauge("gardien.frozen", "Never answers in time.", "{case}", sleeping(3600, 1.0))
    started = time.monotonic()
    await asyncio.wait_for(metrics.refresh(), 5)
    text = metrics.exposition().decode()
    assert samples(text, "gardien_slow")[0][1] == 7.0
    assert samples(text, "gardien_frozen") == []
    assert time.monotonic() - started < 0.55  # side by side: 0.4 s, not 0.4 + 0.2


async def test_a_slow_read_in_the_background_does_not_hold_up_the_quick_figures() -> None:
    import asyncio

    metrics, reads = Metrics("erasure", refresh_every=0.02), {"lag": 0, "cases": 0}
    metrics.start_delay = 0.0
    slow_done = asyncio.Event()

    async def lag() -> Mapping[Key, float]:
        reads["lag"] += 1
        return {}

    async def cases() -> Mapping[Key, float]:
        reads["cases"] += 1
        await slow_done.wait()
        return {}

    metrics.gauge("gardien.lag", "Every refresh.", "{message}", lag)
    metrics.gauge("gardien.cases", "Slow.", "{case}", cases, timeout=60)

    def reached(name: str, n: int) -> Callable[[], Awaitable[bool]]:
        async def probe() -> bool:
            return reads[name] >= n

        return probe

    task = asyncio.create_task(metrics.run())
    try:
        await wait_for(reached("lag", 5), timeout=5, interval=0.01)
        assert reads["cases"] == 1  # still reading: not started again on top of itself
        slow_done.set()
        await wait_for(reached("cases", 2), timeout=5, interval=0.01)
    finally:
        task.cancel()


async def test_a_long_read_waits_ten_times_its_length_before_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A read that grows with the data (every open case) keeps to a tenth of the store's
    time: after a 2 s read, the next starts no sooner than 20 s after the first did."""
    clock = fake_clock(monkeypatch)
    metrics, reads = Metrics("erasure"), []

    async def long_read() -> Mapping[Key, float]:
        reads.append(clock.now)
        clock.now += 2.0
        return {}

    metrics.gauge("gardien.cases", "Every open case.", "{case}", long_read, every=15)
    await metrics.refresh(due_only=True)
    for now, expected in ((115.5, 1), (119.9, 1), (120.0, 2)):
        clock.now = now
        await metrics.refresh(due_only=True)
        assert len(reads) == expected, (now, reads)
