"""The common frame of a Gardien service: broker, database, telemetry, health, lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager, asynccontextmanager
from dataclasses import dataclass, field

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response
from faststream.kafka import KafkaBroker
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.trace import Span
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from shared import problems
from shared.apidoc import mount_docs
from shared.auth import KeyStore
from shared.health import Readiness
from shared.lag import ConsumerLag
from shared.messaging import Consumer, create_broker
from shared.metrics import PROMETHEUS_CONTENT_TYPE, Metrics
from shared.mongo import Document, IndexPlan, create_client, service_database
from shared.pseudonyms import Pseudonymiser
from shared.settings import Settings
from shared.telemetry import instrument_fastapi, setup_tracing
from shared.topics import all_topics

log = logging.getLogger(__name__)

READY_TIMEOUT = 0.8  # seconds per check: /readyz answers well within 1 s

Hook = Callable[["Runtime"], Awaitable[None]]


@dataclass
class Runtime:
    """What a running service holds; clients are built in the lifespan, not at import."""

    service: str
    settings: Settings
    provider: TracerProvider
    broker: KafkaBroker
    consumer: Consumer
    metrics: Metrics
    client: AsyncMongoClient[Document] | None = None
    _pseudonyms: Pseudonymiser | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def span(self, name: str) -> AbstractContextManager[Span]:
        """Start a span of this service's tracer (attributes: ids only, never personal data)."""
        return self.provider.get_tracer(f"gardien.{self.service}").start_as_current_span(name)

    @property
    def pseudonyms(self) -> Pseudonymiser:
        """The deployment's subject pseudonymiser (loaded from the settings when first used)."""
        if self._pseudonyms is None:
            self._pseudonyms = self.settings.pseudonymiser()
        return self._pseudonyms

    @property
    def db(self) -> AsyncDatabase[Document]:
        """The service's own database (available once the lifespan has started)."""
        if self.client is None:
            raise RuntimeError("the database is available only while the service runs")
        return service_database(self.client, self.settings, self.service)


@dataclass
class ServiceSpec:
    """How one service is wired: its subscribers, indexes, routes and background work."""

    name: str
    wire: Callable[[Runtime], None]
    indexes: IndexPlan = field(default_factory=IndexPlan)
    routers: list[APIRouter] = field(default_factory=list)
    after_start: list[Hook] = field(default_factory=list)


def create_service_app(
    spec: ServiceSpec, settings: Settings, exporter: SpanExporter | None = None
) -> FastAPI:
    """A FastAPI app whose lifespan runs the service's FastStream broker and database."""
    provider = setup_tracing(spec.name, settings, exporter)
    broker = create_broker(settings, spec.name, provider)
    metrics = Metrics(spec.name, settings)
    runtime = Runtime(
        spec.name,
        settings,
        provider,
        broker,
        Consumer(broker, settings, spec.name, metrics, provider),
        metrics,
    )
    spec.wire(runtime)
    runtime.consumer.subscribe()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.pseudonyms  # noqa: B018 - a missing key fails the start, not the first event
        runtime.client = create_client(settings)
        await spec.indexes.apply(runtime.db)
        await broker.start()
        for hook in spec.after_start:
            await hook(runtime)
        lag = _lag_gauge(runtime)
        runtime.tasks.append(asyncio.create_task(metrics.run(), name="metrics"))
        log.info("%s started", spec.name)
        try:
            yield
        finally:
            for task in runtime.tasks:
                task.cancel()
            await asyncio.gather(*runtime.tasks, return_exceptions=True)
            await broker.stop()
            if lag is not None:
                await lag.close()
            await runtime.client.close()
            provider.shutdown()
            metrics.shutdown()

    app = FastAPI(
        title=f"Gardien {spec.name}",
        lifespan=lifespan,
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
    )
    problems.install(app)
    mount_docs(app, "/openapi.json", f"Gardien {spec.name}")
    app.state.runtime = runtime
    app.state.keys = KeyStore(settings.gardien_api_keys_file)
    _health_routes(app, runtime)
    for router in spec.routers:
        app.include_router(router)
    instrument_fastapi(app, provider, metrics.provider)
    return app


def _lag_gauge(runtime: Runtime) -> ConsumerLag | None:
    """Register the consumer-lag gauge of the service's group (None when it reads nothing)."""
    plan = all_topics()
    read = {t: plan[t] for t in runtime.consumer.topics() if t in plan}
    if not read:
        return None
    lag = ConsumerLag(runtime.settings.kafka_bootstrap_servers, runtime.consumer.group, read)
    runtime.metrics.gauge(
        "gardien.consumer.lag",
        "Records of each partition the service's consumer group has not committed yet.",
        "{message}",
        lag.figures,
    )
    return lag


def _health_routes(app: FastAPI, runtime: Runtime) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": runtime.service}

    async def kafka() -> bool:
        return bool(await runtime.broker.ping(timeout=READY_TIMEOUT))

    async def mongodb() -> bool:
        if runtime.client is None:
            return False
        await runtime.client.admin.command("ping")
        return True

    readiness = Readiness({"kafka": kafka, "mongodb": mongodb}, timeout=READY_TIMEOUT)

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        checks = await readiness.state()
        ready = all(checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(runtime.metrics.exposition(), media_type=PROMETHEUS_CONTENT_TYPE)
