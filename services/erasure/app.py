"""The erasure service: cases fanned out to connected systems, tracked to a provable end."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SpanExporter

from services.erasure import gauges, handlers
from services.erasure.actions import router as actions
from services.erasure.assembly import Sources
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
from services.erasure.usecases import Connector, Erasure
from shared.blobs import BLOB_INDEXES, BlobStore, MongoBlobs
from shared.clock import Clock, SystemClock
from shared.errors import TransientError
from shared.mongo import IndexPlan
from shared.rules import Policy, default_policy, load_policy
from shared.service import Runtime, ServiceSpec, create_service_app
from shared.settings import Settings


@dataclass
class Parts:
    """What the use cases are built from, besides the runtime's broker and tracer."""

    registry: Registry
    settings: ErasureSettings
    clock: Clock
    connector: Connector
    policy: Policy | None = None


PackageStores = tuple[PackageRepository, BlobStore]
ALL_INDEXES = IndexPlan({**INDEXES.indexes, **BLOB_INDEXES, **PACKAGE_INDEXES})


def packages_for(runtime: Runtime, parts: Parts, stores: PackageStores | None) -> Packages:
    """The access-package use case on ``stores`` (MongoDB unless given)."""
    repo, blobs = stores or (MongoPackages(runtime.db), MongoBlobs(runtime.db))
    sources = Sources(blobs, parts.policy or default_policy(), parts.registry)
    return Packages(repo, sources, runtime.broker, parts.settings, runtime.span, parts.clock)


def bootstrap(runtime: Runtime, repos: Repositories, parts: Parts) -> Erasure:
    """The use cases on ``repos`` (MongoDB in the service, fakes in tests)."""
    return Erasure(
        repos,
        runtime.broker,
        parts.registry,
        parts.settings,
        parts.clock,
        parts.connector,
        lambda identifiers: runtime.pseudonyms.refs(identifiers),
        runtime.span,
    )


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

    def uses() -> Erasure:
        if not built:
            raise TransientError("erasure is starting")
        return built[0]

    async def start(runtime: Runtime) -> None:
        built.append(bootstrap(runtime, repositories or mongo_repositories(runtime.db), parts))
        app.state.erasure = built[0]
        packages = app.state.packages = packages_for(runtime, parts, package_stores)
        await built[0].relay_pending()
        await packages.relay_pending()
        await record_register(runtime, register, parts.clock.now())
        tick = tick_seconds or own.tick_seconds
        expire = [lambda: packages.expire(parts.clock.now())]
        runtime.tasks.append(asyncio.create_task(run_sweeper(built[0], tick, expire)))

    spec = ServiceSpec(
        "erasure",
        lambda runtime: handlers.register(runtime, uses),
        ALL_INDEXES,
        [router, register_router, actions, package_router],
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
