"""The `gardien` command: run the system, publish events, manage the stack and topics."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from services.audit.cli import audit_app
from shared import stack
from shared.cli.endpoints import DEFAULT_HOME, client_settings, live_stack, load_settings
from shared.cli.launcher import Launcher, run
from shared.errors import EventRejected
from shared.rules.cli import rules_app
from shared.settings import SERVICE_NAMES

app = typer.Typer(help="Gardien: GDPR obligations as running machinery.", no_args_is_help=True)
stack_app = typer.Typer(help="The embedded Kafka-protocol broker and MongoDB server.")
topics_app = typer.Typer(help="Kafka topics.")
apikey_app = typer.Typer(help="API keys for the HTTP API (only hashes are stored).")
app.add_typer(stack_app, name="stack")
app.add_typer(topics_app, name="topics")
app.add_typer(apikey_app, name="apikey")
app.add_typer(rules_app, name="rules")
app.add_typer(audit_app, name="audit")

HOME = Annotated[Path, typer.Option("--home", help="Where state, data and logs live.")]


def fail(message: str, code: int = 2) -> None:
    """Print one clear line on stderr and exit non-zero."""
    typer.echo(f"gardien: {message}", err=True)
    raise typer.Exit(code)


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
        kafka, own_kafka = f"127.0.0.1:{_port_or_free(9092)}", True
    if env_mongo:
        mongo, own_mongo = env_mongo, False
    elif running:
        mongo, own_mongo = running.mongodb_uri, False
    else:
        mongo, own_mongo = f"mongodb://127.0.0.1:{_port_or_free(27017)}", True
    return kafka, mongo, own_kafka, own_mongo


def _port_or_free(preferred: int) -> int:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            return stack.free_port()
    return preferred


@app.command()
def up(
    home: HOME = DEFAULT_HOME,
    http_port: Annotated[int, typer.Option(help="HTTP API port [default: GARDIEN_HTTP_PORT].")] = 0,
    base_port: Annotated[int, typer.Option(help="Services listen on base+1 … base+4.")] = 8100,
    with_reference_systems: Annotated[
        bool, typer.Option(help="Also run the reference CRM, newsletter, billing and vendor.")
    ] = False,
) -> None:
    """Start the embedded stack (unless env points elsewhere), every service and the API."""
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
        extra_env=_local_env(home),
    )
    run(launcher)


def _local_env(home: Path) -> dict[str, str]:
    """Settings `gardien up` gives its children unless the environment sets them.

    A signing secret for the HTTP connector, generated once per home directory, and a
    webhook allow-list for loopback so a receiver on this machine can subscribe.
    """
    import secrets

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
    from shared.auth import KeyStore

    store = KeyStore(home / "api-keys.json")
    if store.is_empty():
        key = store.create("local-admin", ["admin"])
        key_file = home / "admin-api-key"
        key_file.write_text(key + "\n")
        key_file.chmod(0o600)
        typer.echo(f"Created an admin API key for this machine: {key_file} (mode 600)")


@app.command()
def service(
    name: Annotated[str, typer.Argument(help="intake, deadlines, erasure, audit or api")],
) -> None:
    """Run one service against the configured Kafka and MongoDB."""
    import uvicorn

    settings = load_settings()
    from shared.logs import configure_logging
    from shared.pseudonyms import PseudonymKeyError

    configure_logging(settings.gardien_log_level, name)
    try:
        if name != "api":  # the gateway computes no pseudonyms: it does not get the key
            settings.pseudonymiser()
    except PseudonymKeyError as exc:
        fail(str(exc))
    if name == "api":
        from shared.gateway import create_gateway

        uvicorn.run(
            create_gateway(settings),
            host=settings.gardien_http_host,
            port=settings.gardien_http_port,
            log_level="warning",
        )
        return
    if name not in SERVICE_NAMES:
        fail(f"unknown service {name!r}; choose one of {', '.join(SERVICE_NAMES)}, api")
    module = __import__(f"services.{name}.app", fromlist=["create_app"])
    port = settings.gardien_service_port or 8080
    uvicorn.run(
        module.create_app(settings), host=settings.gardien_http_host, port=port, log_level="warning"
    )


def _read_events(source: str) -> list[dict[str, Any]]:
    text = sys.stdin.read() if source == "-" else _read_file(source)
    stripped = text.strip()
    if not stripped:
        fail("no event to publish: the input is empty")
    try:
        loaded = json.loads(stripped)
        items = loaded if isinstance(loaded, list) else [loaded]
    except json.JSONDecodeError:
        try:
            items = [json.loads(line) for line in stripped.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            fail(f"{source}: not JSON nor JSON Lines (line {exc.lineno}: {exc.msg})")
    return items


def _read_file(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    return ""


@app.command()
def publish(
    source: Annotated[
        str, typer.Argument(help="A JSON file of one or more CloudEvents, or - for stdin")
    ],
    topic: Annotated[
        str | None,
        typer.Option(help="Send as-is to this topic, unvalidated (to test dead-lettering)."),
    ] = None,
    home: HOME = DEFAULT_HOME,
) -> None:
    """Publish CloudEvents (a JSON object, array or JSON Lines) to the topic of their type."""
    from shared.events import aggregate_key, parse_event

    if topic is not None:
        items = _read_events(source)
        asyncio.run(_publish_raw(home, topic, [json.dumps(item).encode() for item in items]))
        typer.echo(f"sent {len(items)} record(s) unvalidated to {topic}")
        return
    events = []
    for index, item in enumerate(_read_events(source), start=1):
        try:
            events.append(parse_event(item))
        except EventRejected as exc:
            fail(f"event {index}: {exc.reason}")
    asyncio.run(_publish_all(home, events))
    for event in events:
        typer.echo(f"published {event.type} {event.id} (key {aggregate_key(event)})")


async def _publish_raw(home: Path, topic: str, bodies: list[bytes]) -> None:
    broker = await _connected_broker(home)
    try:
        for body in bodies:
            await broker.publish(body, topic=topic)
    finally:
        await broker.stop()


async def _connected_broker(home: Path) -> Any:
    import logging

    from shared.messaging import create_broker
    from shared.telemetry import setup_tracing

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the one line below says it
    settings = client_settings(home)
    broker = create_broker(settings, "cli", setup_tracing("cli", settings))
    try:
        await asyncio.wait_for(broker.connect(), timeout=15)
    except Exception as exc:
        await broker.stop()
        fail(f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {type(exc).__name__}")
    return broker


async def _publish_all(home: Path, events: list[Any]) -> None:
    from shared.events import aggregate_key
    from shared.messaging import publish_event

    broker = await _connected_broker(home)
    try:
        for event in events:
            await publish_event(broker, event, aggregate_key(event))
    finally:
        await broker.stop()


@topics_app.command("create")
def topics_create(home: HOME = DEFAULT_HOME) -> None:
    """Create every Gardien topic with its partition count (existing ones are kept)."""
    from shared.kafka_admin import ensure_topics
    from shared.topics import all_topics

    settings = client_settings(home)
    try:
        created = asyncio.run(
            asyncio.wait_for(ensure_topics(settings.kafka_bootstrap_servers, all_topics()), 30)
        )
    except Exception as exc:
        fail(f"cannot create topics on {settings.kafka_bootstrap_servers}: {type(exc).__name__}")
    typer.echo(f"{len(created)} topic(s) created, {len(all_topics()) - len(created)} already there")


@stack_app.command("start")
def stack_start(home: HOME = DEFAULT_HOME) -> None:
    """Start the embedded broker and MongoDB server in the background."""
    home.mkdir(parents=True, exist_ok=True)
    state = stack.load_state(home)
    if state and stack.alive(state.broker_pid) and stack.alive(state.mongo_pid):
        typer.echo(f"already running: Kafka {state.bootstrap}, MongoDB {state.mongodb_uri}")
        return
    kport, mport = _port_or_free(9092), _port_or_free(27017)
    broker = stack.start_broker(home, kport)
    mongo = stack.start_mongo(home, mport)
    state = stack.StackState(kport, mport, broker.pid, mongo.pid)
    stack.save_state(home, state)
    from shared.kafka_admin import ensure_topics
    from shared.topics import all_topics

    asyncio.run(ensure_topics(state.bootstrap, all_topics()))
    typer.echo(f"Kafka bootstrap {state.bootstrap}\nMongoDB URI     {state.mongodb_uri}")


@stack_app.command("stop")
def stack_stop(home: HOME = DEFAULT_HOME) -> None:
    """Stop the embedded servers started by `gardien stack start`."""
    state = stack.load_state(home)
    if state is None:
        typer.echo("no embedded stack recorded")
        return
    for pid in (state.broker_pid, state.mongo_pid):
        stack.terminate(pid)
    (home / stack.STATE_FILE).unlink(missing_ok=True)
    typer.echo("embedded stack stopped")


@stack_app.command("status")
def stack_status(home: HOME = DEFAULT_HOME) -> None:
    """Print the Kafka bootstrap address and MongoDB URI in use, and who runs them."""
    live = live_stack(home)
    settings = client_settings(home)

    def origin(var: str) -> str:
        if var in os.environ:
            return f"from {var}"
        return f"embedded, run by {live.owner}" if live else "nothing running; the default"

    typer.echo(
        f"Kafka bootstrap {settings.kafka_bootstrap_servers} ({origin('KAFKA_BOOTSTRAP_SERVERS')})"
    )
    typer.echo(f"MongoDB URI     {settings.mongodb_uri} ({origin('MONGODB_URI')})")


@app.command()
def asyncapi(
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print the AsyncAPI 3.0 description of every topic, generated from the code."""
    from shared.asyncapi import render

    text = render()
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)


@apikey_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Option(help="Who or what the key is for.")],
    scope: Annotated[
        list[str],
        typer.Option(help="intake:write, intake:read, audit:read, webhooks:admin or admin"),
    ],
    home: HOME = DEFAULT_HOME,
) -> None:
    """Create an API key; it is printed once and only its hash is kept."""
    from shared.auth import KeyStore

    path = Path(os.environ.get("GARDIEN_API_KEYS_FILE", home / "api-keys.json"))
    try:
        key = KeyStore(path).create(name, scope)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(key)


def main() -> None:
    """Entry point of the `gardien` console script."""
    app()


if __name__ == "__main__":
    main()
