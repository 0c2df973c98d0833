"""`gardien up` (everything, supervised) and `gardien service NAME` (one process)."""

from __future__ import annotations

import asyncio
import os
import secrets
from importlib import import_module
from pathlib import Path
from typing import Annotated, Any

import typer
from fastapi import FastAPI
from pydantic import ValidationError

from gardien import stack
from gardien.console import HOME, fail
from gardien.endpoints import DEFAULT_HOME, live_stack, load_settings
from gardien.launcher import Launcher, check_replicas, run
from shared.auth import KeyStore
from shared.errors import GardienError
from shared.mongo import mongo_hosts
from shared.rules.errors import RuleError
from shared.settings import SERVICE_NAMES, Settings

GATEWAY = "api"


def up(
    home: HOME = DEFAULT_HOME,
    http_port: Annotated[int, typer.Option(help="HTTP API port [default: GARDIEN_HTTP_PORT].")] = 0,
    base_port: Annotated[int, typer.Option(help="Services listen on base+1 … base+4.")] = 8100,
    with_reference_systems: Annotated[
        bool, typer.Option(help="Also run the reference CRM, newsletter, billing and vendor.")
    ] = False,
    replicas: Annotated[
        int,
        typer.Option(
            help="Members of each service's consumer group, each its own process and port "
            "(member k: its service's port + 10 x (k - 1)); see docs/scaling.md."
        ),
    ] = 1,
) -> None:
    """Start the embedded stack (unless env points elsewhere), every service and the API."""
    if (problem := check_replicas(replicas)) is not None:
        fail(problem)
    home.mkdir(parents=True, exist_ok=True)
    settings = load_settings()
    _ensure_admin_key(home)
    kafka, mongo, own_kafka, own_mongo = _endpoints(home)
    launcher = Launcher(
        home=home.resolve(),
        http_host=settings.gardien_http_host,
        http_port=http_port or settings.gardien_http_port,
        own_broker=own_kafka,
        own_mongo=own_mongo,
        bootstrap=kafka,
        mongodb_uri=mongo,
        base_port=base_port,
        reference_systems=with_reference_systems,
        replicas=replicas,
        extra_env=_local_env(home),
    )
    run(launcher)


def _endpoints(home: Path) -> tuple[str, str, bool, bool]:
    """(bootstrap, mongodb uri, own broker?, own mongo?) for a new `gardien up`."""
    running = live_stack(home)
    if running is not None and running.owner.startswith("gardien up"):
        fail(f"{running.owner} already runs from {home}; stop it first (Ctrl-C)")
    env_kafka, env_mongo = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("MONGODB_URI")
    if env_kafka:
        kafka, own_kafka = env_kafka, False
    elif running:
        kafka, own_kafka = running.bootstrap, False
    else:
        kafka, own_kafka = f"127.0.0.1:{stack.port_or_free(9092)}", True
    if env_mongo:
        mongo, own_mongo = env_mongo, False
    elif running:
        mongo, own_mongo = running.mongodb_uri, False
    else:
        mongo, own_mongo = f"mongodb://127.0.0.1:{stack.port_or_free(27017)}", True
    return kafka, mongo, own_kafka, own_mongo


def _local_env(home: Path) -> dict[str, str]:
    """Settings `gardien up` gives its children unless the environment sets them.

    A signing secret for the HTTP connector, generated once per home directory, and a
    webhook allow-list for loopback so a receiver on this machine can subscribe.
    """
    secret_file = home / "erasure-signing-secret"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(32))
        secret_file.chmod(0o600)
    defaults = {
        "GARDIEN_ERASURE_SIGNING_SECRET": secret_file.read_text().strip(),
        "GARDIEN_AUDIT_WEBHOOK_ALLOW": "127.0.0.1",
    }
    return {k: v for k, v in defaults.items() if k not in os.environ}


def _ensure_admin_key(home: Path) -> None:
    store = KeyStore(home / "api-keys.json")
    if store.is_empty():
        key = store.create("local-admin", ["admin"])
        key_file = home / "admin-api-key"
        key_file.write_text(key + "\n")
        key_file.chmod(0o600)
        typer.echo(f"Created an admin API key for this machine: {key_file} (mode 600)")


def service(
    name: Annotated[str, typer.Argument(help="intake, deadlines, erasure, audit or api")],
) -> None:
    """Run one service against the configured Kafka and MongoDB."""
    import uvicorn

    from shared.logs import configure_logging
    from shared.pseudonyms import PseudonymKeyError

    settings = load_settings()
    configure_logging(settings.gardien_log_level, name, settings.gardien_log_format)
    try:
        if name != GATEWAY:  # the gateway computes no pseudonyms: it does not get the key
            settings.pseudonymiser()
    except PseudonymKeyError as exc:
        fail(str(exc))
    app, port = _service_app(name, settings)
    # log_config=None: uvicorn keeps the handlers configured above (one format per process).
    # The lifespan is run here, not by uvicorn, so a failed start is one line, not a traceback.
    config = uvicorn.Config(
        app,
        host=settings.gardien_http_host,
        port=port,
        log_level="warning",
        log_config=None,
        lifespan="off",
    )
    try:
        asyncio.run(_serve(app, uvicorn.Server(config), settings))
    except StartFailed as exc:
        fail(f"cannot start {name}: {exc}")


class StartFailed(Exception):
    """The service could not start; the message is one line for the operator."""


async def _serve(app: FastAPI, server: Any, settings: Settings) -> None:
    """Start the app's lifespan, serve HTTP until stopped, then run the lifespan's shutdown."""
    lifespan = app.router.lifespan_context(app)
    try:
        await lifespan.__aenter__()
    except Exception as exc:
        raise StartFailed(start_failure(exc, settings)) from None
    try:
        await server.serve()
    finally:
        await lifespan.__aexit__(None, None, None)
    if not server.started:
        raise StartFailed(f"cannot listen on {settings.gardien_http_host}:{server.config.port}")


def start_failure(exc: BaseException, settings: Settings) -> str:
    """One line saying why a start failed: which store is unreachable, or the error itself."""
    from aiokafka.errors import KafkaError
    from pymongo.errors import ConnectionFailure

    if isinstance(exc, ConnectionFailure):
        return f"MongoDB unreachable at {mongo_hosts(settings.mongodb_uri)} ({type(exc).__name__})"
    if isinstance(exc, KafkaError):
        where = settings.kafka_bootstrap_servers
        return f"Kafka unreachable at {where} ({type(exc).__name__})"
    text = _one_line(exc) if isinstance(exc, Exception) else type(exc).__name__
    return text[:300]


def _service_app(name: str, settings: Settings) -> tuple[FastAPI, int]:
    """The app of service ``name`` (``api``: the gateway) and the port it listens on."""
    if name == GATEWAY:
        package, port = "gateway", settings.gardien_http_port
    elif name in SERVICE_NAMES:
        package, port = name, settings.gardien_service_port or 8080
    else:
        fail(f"unknown service {name!r}; choose one of {', '.join(SERVICE_NAMES)}, {GATEWAY}")
    try:
        app: FastAPI = import_module(f"services.{package}.app").create_app(settings)
    except (
        GardienError,
        RuleError,
        ValidationError,
        OSError,
    ) as exc:  # a bad policy, registry, setting
        fail(f"cannot start {name}: {_one_line(exc)}")
    return app, port


def _one_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        return f"{where}: {first['msg']}"
    return " ".join(str(exc).split()) or type(exc).__name__
