"""Operator commands: `gardien stack`, `gardien topics`, `gardien apikey`, `gardien asyncapi`."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer

from gardien import stack
from gardien.console import HOME, fail
from gardien.endpoints import DEFAULT_HOME, client_settings, live_stack
from shared.auth import KeyStore
from shared.kafka_admin import ensure_topics
from shared.topics import all_topics

stack_app = typer.Typer(help="The embedded Kafka-protocol broker and MongoDB server.")
topics_app = typer.Typer(help="Kafka topics.")
apikey_app = typer.Typer(help="API keys for the HTTP API (only hashes are stored).")


@topics_app.command("create")
def topics_create(home: HOME = DEFAULT_HOME) -> None:
    """Create every Gardien topic with its partition count (existing ones are kept)."""
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
    kport, mport = stack.port_or_free(9092), stack.port_or_free(27017)
    broker = stack.start_broker(home, kport)
    mongo = stack.start_mongo(home, mport)
    state = stack.StackState(kport, mport, broker.pid, mongo.pid)
    stack.save_state(home, state)
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


def asyncapi(
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print the AsyncAPI 3.0 description of every topic, generated from the code."""
    from gardien.asyncapi import render

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
        typer.Option(
            help="intake:write, intake:read, audit:read, audit:reveal, webhooks:admin, "
            "breaches:write, holds:write, erasure:write or admin"
        ),
    ],
    home: HOME = DEFAULT_HOME,
) -> None:
    """Create an API key; it is printed once and only its hash is kept."""
    try:
        key = _keys(home).create(name, scope)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(key)


@apikey_app.command("list")
def apikey_list(home: HOME = DEFAULT_HOME) -> None:
    """List every key: id, name, scopes, created, revoked (never the key or its hash)."""
    keys = _keys(home).listing()
    if not keys:
        typer.echo("no API keys")
        return
    typer.echo(f"{'id':<10}{'name':<24}{'scopes':<32}{'created':<27}revoked")
    for k in keys:
        scopes = ",".join(sorted(k.scopes))
        created = (k.created_at or "-")[:25]
        typer.echo(
            f"{k.key_id:<10}{k.name[:23]:<24}{scopes[:31]:<32}{created:<27}{k.revoked_at or '-'}"
        )


@apikey_app.command("revoke")
def apikey_revoke(
    key: Annotated[str, typer.Argument(help="The key's id or its (unique) name.")],
    home: HOME = DEFAULT_HOME,
) -> None:
    """Revoke a key at once; running services refuse it from their next request."""
    try:
        revoked = _keys(home).revoke(key)
    except KeyError as exc:
        fail(str(exc.args[0]))
    typer.echo(f"revoked {revoked.key_id} ({revoked.name}) at {revoked.revoked_at}")


def _keys(home: Path) -> KeyStore:
    return KeyStore(Path(os.environ.get("GARDIEN_API_KEYS_FILE", home / "api-keys.json")))
