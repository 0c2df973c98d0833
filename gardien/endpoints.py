"""Where the Kafka broker and MongoDB server in use are, for commands run beside them.

In order: the environment (`KAFKA_BOOTSTRAP_SERVERS`, `MONGODB_URI`), a running `gardien up`
(its `<home>/up.json`), a running `gardien stack start` (`<home>/stack.json`), else the
settings' defaults.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import typer
from pydantic import ValidationError

from gardien import stack
from shared.settings import Settings

DEFAULT_HOME = Path(".gardien")
UP_STATE = "up.json"


@dataclass(frozen=True)
class Live:
    """A running embedded stack and who runs it."""

    bootstrap: str
    mongodb_uri: str
    owner: str


def live_stack(home: Path = DEFAULT_HOME) -> Live | None:
    """The stack a running `gardien up` or `gardien stack start` uses under ``home``."""
    up = home / UP_STATE
    if up.exists():
        try:
            data = json.loads(up.read_text())
            pid = int(data["launcher_pid"])
            if stack.alive(pid):
                return Live(
                    str(data["bootstrap"]), str(data["mongodb_uri"]), f"gardien up, pid {pid}"
                )
        except (ValueError, KeyError, OSError):
            pass
    state = stack.load_state(home)
    if state is not None and stack.alive(state.broker_pid) and stack.alive(state.mongo_pid):
        return Live(state.bootstrap, state.mongodb_uri, "gardien stack start")
    return None


def load_settings(**overrides: str) -> Settings:
    """Settings from the environment, or one clear line and exit 2 when one is invalid."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        typer.echo(f"gardien: invalid setting {name}: {first['msg']}", err=True)
        raise typer.Exit(2) from None


def client_settings(home: Path = DEFAULT_HOME, mongodb_uri: str | None = None) -> Settings:
    """Settings for a command that talks to the running system."""
    live = live_stack(home)
    defaults = load_settings()
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or (
        live.bootstrap if live else defaults.kafka_bootstrap_servers
    )
    mongo = (
        mongodb_uri
        or os.environ.get("MONGODB_URI")
        or (live.mongodb_uri if live else defaults.mongodb_uri)
    )
    return load_settings(kafka_bootstrap_servers=kafka, mongodb_uri=mongo)


def kafka_target(home: Path = DEFAULT_HOME) -> tuple[Settings, str]:
    """Settings for a command that sends to Kafka, and where its broker address came from.

    Refuses to guess: without ``KAFKA_BOOTSTRAP_SERVERS`` and without a running stack under
    ``home``, a record would go to a default address nobody may be listening on.
    """
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return client_settings(home), "from KAFKA_BOOTSTRAP_SERVERS"
    live = live_stack(home)
    if live is None:
        typer.echo(
            f"gardien: no running Gardien stack under {home} (start one with `gardien up`),"
            " and KAFKA_BOOTSTRAP_SERVERS is not set",
            err=True,
        )
        raise typer.Exit(2)
    return client_settings(home), f"the stack of {live.owner}"
