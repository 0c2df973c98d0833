"""The erasure service: cases fanned out to connected systems, tracked to a provable end."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SpanExporter

from services.erasure import handlers
from services.erasure.actions import router as actions
from services.erasure.assembly import Sources
from services.erasure.collect import Collector, PackageBuilder
from services.erasure.connector import HttpConnector
from services.erasure.http import router
from services.erasure.mongo import INDEXES, mongo_repositories
from services.erasure.package_repo import MongoPackages
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
from shared.blobs import BlobStore, MongoBlobs
from shared.clock import Clock, SystemClock
from shared.errors import TransientError
from shared.rules import Policy, default_policy, load_policy
from shared.service import Runtime, ServiceSpec, create_service_app
from shared.settings import Settings

PackagesFor = Callable[[Runtime, BlobStore], PackageBuilder]  # the package side's builder


@dataclass
class Parts:
    """What the use cases are built from, besides the runtime's broker and tracer."""

    registry: Registry
    settings: ErasureSettings
    clock: Clock
    connector: Connector


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


def collector(erasure: Erasure, blobs: BlobStore, packages: PackageBuilder) -> Collector:
    """The collection use cases on ``erasure``; ready cases get their package built."""
    key = erasure.settings.upload_key.get_secret_value().encode()
    found = Collector(erasure, blobs, packages, key)
    erasure.on_ready = found.build_ready
    return found


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
    blobs: BlobStore | None = None,
    packages: PackagesFor | None = None,
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
    parts = Parts(registry, own, clock or SystemClock(), connector)
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
        store = blobs or MongoBlobs(runtime.db)
        builder = (packages or package_builder(policy, registry, own))(runtime, store)
        collecting.append(collector(built[0], store, builder))
        app.state.erasure, app.state.collector = built[0], collecting[0]
        app.state.packages = builder
        await built[0].relay_pending()
        await record_register(runtime, register, parts.clock.now())
        tick = tick_seconds or own.tick_seconds
        runtime.tasks.append(asyncio.create_task(run_sweeper(built[0], tick)))

    spec = ServiceSpec(
        "erasure",
        lambda runtime: handlers.register(runtime, uses, collection),
        INDEXES,
        [router, register_router, actions, upload_router],
        after_start=[start],
    )
    app = create_service_app(spec, settings, exporter)
    app.state.register = register
    return app


def package_builder(policy: Policy, registry: Registry, own: ErasureSettings) -> PackagesFor:
    """The package side's use case on the service's database (``package_store.py``)."""

    def build(runtime: Runtime, blobs: BlobStore) -> Packages:
        sources = Sources(blobs, policy, registry)
        return Packages(MongoPackages(runtime.db), sources, runtime.broker, own, runtime.span)

    return build


def checked_registry(own: ErasureSettings, policy: Policy) -> Registry:
    """The registry file, checked against the policy's register (a gap stops the start)."""
    registry = load_registry(own.registry_path)
    check_register(registry, policy.records)
    return registry


def active_policy(settings: Settings) -> Policy:
    """The policy profile named by the settings, or the built-in default."""
    path = settings.gardien_policy_file
    return load_policy(path) if path is not None else default_policy()
