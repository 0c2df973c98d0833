"""The erasure service: cases fanned out to connected systems, tracked to a provable end."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SpanExporter

from services.erasure import gauges, handlers
from services.erasure.actions import router as actions
from services.erasure.assembly import Sources
from services.erasure.builder import PackageQueue
from services.erasure.collect import Collector, PackageBuilder
from services.erasure.connector import HttpConnector
from services.erasure.http import router
from services.erasure.mongo import INDEXES, mongo_repositories
from services.erasure.package_http import router as package_router
from services.erasure.package_repo import PACKAGE_INDEXES, MongoPackages, PackageRepository
from services.erasure.package_store import Packages
from services.erasure.register import record_register
from services.erasure.register_http import router as register_router
from services.erasure.registry import Registry, check_register, load_registry, register_links
from services.erasure.repository import Repositories
from services.erasure.settings import ErasureSettings
from services.erasure.sweeper import run_sweeper
from services.erasure.upload_http import router as upload_router
from services.erasure.uploads import UploadLinks
from services.erasure.usecases import Connector, Erasure
from shared.blobs import BLOB_INDEXES, BlobStore, MongoBlobs
from shared.clock import Clock, SystemClock
from shared.errors import TransientError
from shared.mongo import IndexPlan
from shared.rules import Policy, default_policy, load_policy
from shared.service import Runtime, ServiceSpec, create_service_app
from shared.settings import Settings
from shared.subject_vault import SubjectVault


@dataclass
class Parts:
    """What the use cases are built from, besides the runtime's broker and tracer."""

    registry: Registry
    settings: ErasureSettings
    clock: Clock
    connector: Connector
    policy: Policy | None = None


PackageStores = tuple[PackageRepository, BlobStore]
ALL_INDEXES = IndexPlan(
    {**INDEXES.indexes, **BLOB_INDEXES, **PACKAGE_INDEXES}, retired=INDEXES.retired
)


def packages_for(runtime: Runtime, parts: Parts, stores: PackageStores | None) -> Packages:
    """The access-package use case on ``stores`` (MongoDB unless given)."""
    repo, blobs = stores or (MongoPackages(runtime.db), MongoBlobs(runtime.db))
    sources = Sources(blobs, parts.policy or default_policy(), parts.registry)

    async def shred(kid: str, now: datetime) -> bool:  # a fresh vault: no cached key
        return await SubjectVault(runtime.db).destroy(kid, now)

    return Packages(repo, sources, runtime.broker, parts.settings, runtime.span, parts.clock, shred)


def bootstrap(runtime: Runtime, repos: Repositories, parts: Parts) -> Erasure:
    """The use cases on ``repos`` (MongoDB in the service, fakes in tests)."""
    own = parts.settings
    return Erasure(
        repos,
        runtime.broker,
        parts.registry,
        own,
        parts.clock,
        parts.connector,
        lambda identifiers: runtime.pseudonyms.refs(identifiers),
        runtime.span,
        links=UploadLinks(
            own.upload_key.get_secret_value().encode(), own.upload_base_url, own.upload_ttl_seconds
        ),
    )


def collector(
    erasure: Erasure, blobs: BlobStore, packages: PackageBuilder
) -> tuple[Collector, PackageQueue]:
    """The collection use cases on ``erasure``; ready cases wait in the queue for their
    package (built by the queue's task, apart from the answers' path)."""
    key = erasure.settings.upload_key.get_secret_value().encode()
    found = Collector(erasure, blobs, packages, key)
    queue = PackageQueue(found.build_ready)
    erasure.on_ready = queue.offer
    return found, queue


def create_app(
    settings: Settings,
    exporter: SpanExporter | None = None,
    *,
    erasure_settings: ErasureSettings | None = None,
    registry: Registry | None = None,
    policy: Policy | None = None,
    clock: Clock | None = None,
    tick_seconds: float | None = None,
    repositories: Repositories | None = None,
    package_stores: PackageStores | None = None,
) -> FastAPI:
    """The erasure app: subscribers, case and register routes, start-up relay, the sweeper.

    An injected registry (tests) is taken as given. The MongoDB repositories are built in
    the lifespan (``repositories`` replaces them); until then an event is retried.
    """
    own = erasure_settings or ErasureSettings()
    policy = policy or active_policy(settings)
    registry = registry or checked_registry(own, policy)
    secret = own.signing_secret.get_secret_value().encode()
    connector = HttpConnector(secret, own.http_timeout_seconds)
    parts = Parts(registry, own, clock or SystemClock(), connector, policy)
    register = policy.register_document(register_links(registry))
    built: list[Erasure] = []
    collecting: list[Collector] = []

    def uses() -> Erasure:
        if not built:
            raise TransientError("erasure is starting")
        return built[0]

    def collection() -> Collector:
        if not collecting:
            raise TransientError("erasure is starting")
        return collecting[0]

    async def start(runtime: Runtime) -> None:
        built.append(bootstrap(runtime, repositories or mongo_repositories(runtime.db), parts))
        app.state.erasure = built[0]
        stores = package_stores or (MongoPackages(runtime.db), MongoBlobs(runtime.db))
        packages = app.state.packages = packages_for(runtime, parts, stores)
        found, queue = collector(built[0], stores[1], packages)
        collecting.append(found)
        app.state.collector, app.state.package_queue = found, queue
        runtime.tasks.append(asyncio.create_task(queue.run()))
        await built[0].relay_pending()
        await packages.relay_pending()
        await record_register(runtime, register, parts.clock.now())
        tick = tick_seconds or own.tick_seconds
        expire = [lambda: packages.expire(parts.clock.now())]
        runtime.tasks.append(asyncio.create_task(run_sweeper(built[0], tick, expire)))

    spec = ServiceSpec(
        "erasure",
        lambda runtime: handlers.register(runtime, uses, collection),
        ALL_INDEXES,
        [router, register_router, actions, package_router, upload_router],
        after_start=[start],
    )
    app = create_service_app(spec, settings, exporter)
    gauges.register(app)
    app.state.register = register
    return app


def checked_registry(own: ErasureSettings, policy: Policy) -> Registry:
    """The registry file, checked against the policy's register (a gap stops the start)."""
    registry = load_registry(own.registry_path)
    check_register(registry, policy.records)
    return registry


def active_policy(settings: Settings) -> Policy:
    """The policy profile named by the settings, or the built-in default."""
    path = settings.gardien_policy_file
    return load_policy(path) if path is not None else default_policy()
