"""`gardien up`: run the embedded stack, the four services and the HTTP API, supervised.

With ``replicas`` > 1 each service runs that many members of its one consumer group
(``gardien-<service>``), each its own process on its own HTTP port (member k of a service
listens on its member-1 port + 10 x (k - 1)); the gateway talks to member 1 of each.
Every child runs in its own process group and is stopped on Ctrl-C or SIGTERM. A service
that exits is restarted with backoff. The embedded broker keeps everything in memory, so
when it restarts every topic, record and committed offset is gone and running consumers
stall silently: the launcher then recreates the topics and restarts every service.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import typer

from gardien import stack
from gardien.endpoints import UP_STATE
from shared.files import write_atomic
from shared.kafka_admin import ensure_topics, partition_counts
from shared.pseudonyms import ensure_key_file
from shared.topics import INBOUND, INTERNAL, PARTITIONS, all_topics

SERVICE_OFFSETS = {"intake": 1, "deadlines": 2, "erasure": 3, "audit": 4}
MEMBER_STRIDE = 10  # member k of a service listens on its member-1 port + 10 x (k - 1)
# The fewest partitions of a business topic: more members of a group than that sit idle.
MAX_REPLICAS = min(PARTITIONS[t] for t in INBOUND + INTERNAL)


def member_name(service: str, member: int) -> str:
    """The child's name: ``intake`` for member 1, ``intake-2`` for member 2, and so on."""
    return service if member == 1 else f"{service}-{member}"


def member_ports(base_port: int, replicas: int) -> dict[str, int]:
    """The HTTP port of every member of ``replicas`` per service from ``base_port``."""
    return {
        member_name(name, k): base_port + offset + MEMBER_STRIDE * (k - 1)
        for k in range(1, replicas + 1)
        for name, offset in SERVICE_OFFSETS.items()
    }


def check_replicas(replicas: int) -> str | None:
    """Why ``replicas`` members per service cannot run (None when they can)."""
    if replicas < 1:
        return "--replicas must be at least 1"
    if replicas > MAX_REPLICAS:
        return (
            f"--replicas {replicas}: the business topics have {MAX_REPLICAS} partitions "
            f"(shared/topics.py), so members beyond {MAX_REPLICAS} would get none"
        )
    return None


STATE_FILE = UP_STATE
REPO_ROOT = Path(__file__).resolve().parents[1]
# The reference connected systems (examples/connected_systems) and their extra arguments;
# the newsletter's port matches its URL in examples/connected_systems/registry.yaml.
REFERENCE_SYSTEMS = {
    "crm": [],
    "newsletter": ["--port", "8311"],
    "billing": [],
    "vendor": ["--delay", "3"],
}


@dataclass
class Child:
    """One supervised process."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    first_argv: list[str] | None = None
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0

    def start(self) -> None:
        """Start (or restart) the process; ``first_argv`` is used only the first time."""
        argv = self.first_argv if self.first_argv and self.proc is None else self.argv
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            argv,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.started_at = time.monotonic()

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None


@dataclass
class Launcher:
    """Owns every process `gardien up` starts; nothing outlives it."""

    home: Path
    http_host: str
    http_port: int
    own_broker: bool
    own_mongo: bool
    bootstrap: str
    mongodb_uri: str
    base_port: int = 8100
    reference_systems: bool = False
    replicas: int = 1
    extra_env: dict[str, str] = field(default_factory=dict)
    broker: subprocess.Popen[bytes] | None = None
    mongo: subprocess.Popen[bytes] | None = None
    children: list[Child] = field(default_factory=list)
    stopping: bool = False

    def start_servers(self) -> None:
        if self.own_broker:
            port = int(self.bootstrap.rsplit(":", 1)[1])
            self.broker = stack.start_broker(self.home, port)
        if self.own_mongo:
            port = int(self.mongodb_uri.rsplit(":", 1)[1])
            self.mongo = stack.start_mongo(self.home, port)
        self.ensure_topics()

    def ensure_topics(self) -> None:
        """Create missing topics; refuse existing ones with fewer partitions than members."""
        asyncio.run(ensure_topics(self.bootstrap, all_topics()))
        if self.replicas == 1:
            return
        counts = asyncio.run(partition_counts(self.bootstrap, sorted(PARTITIONS)))
        short = sorted(t for t, n in counts.items() if n < self.replicas)
        if short:
            raise SystemExit(
                f"gardien: {', '.join(short)} have fewer partitions than --replicas "
                f"{self.replicas}; some members would get none"
            )

    def service_env(self) -> dict[str, str]:
        env = {
            **os.environ,
            **self.extra_env,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "MONGODB_URI": self.mongodb_uri,
            "GARDIEN_API_KEYS_FILE": str(self.home / "api-keys.json"),
        }
        if not env.get("GARDIEN_PSEUDONYM_KEY"):
            key_file = env.get("GARDIEN_PSEUDONYM_KEY_FILE") or str(self.home / "pseudonym.key")
            env["GARDIEN_PSEUDONYM_KEY_FILE"] = str(ensure_key_file(Path(key_file)))
        for name, port in self.ports().items():  # the gateway talks to member 1
            env[f"GARDIEN_{name.upper()}_URL"] = f"http://127.0.0.1:{port}"
        # Export commands carry upload URLs on the gateway (docs/access.md).
        host = "127.0.0.1" if self.http_host in ("0.0.0.0", "::") else self.http_host  # noqa: S104
        env.setdefault("GARDIEN_ERASURE_UPLOAD_BASE_URL", f"http://{host}:{self.http_port}")
        return env

    def ports(self) -> dict[str, int]:
        """The HTTP port of member 1 of each service."""
        return {name: self.base_port + offset for name, offset in SERVICE_OFFSETS.items()}

    def member_ports(self) -> dict[str, int]:
        """The HTTP port of every member, by child name (``intake``, ``intake-2``…)."""
        return member_ports(self.base_port, self.replicas)

    def save_state(self) -> None:
        """Record every pid and address, for `gardien stack status` and for operators."""
        state = {
            "launcher_pid": os.getpid(),
            "bootstrap": self.bootstrap,
            "mongodb_uri": self.mongodb_uri,
            "broker_pid": self.broker.pid if self.broker else None,
            "mongo_pid": self.mongo.pid if self.mongo else None,
            "children": {c.name: c.proc.pid for c in self.children if c.proc},
            "ports": self.member_ports(),
            "http": f"http://{self.http_host}:{self.http_port}",
        }
        write_atomic(self.home / STATE_FILE, json.dumps(state, indent=2))

    def start_children(self) -> None:
        base = self.service_env()
        gardien = [sys.executable, "-m", "gardien"]
        for member, port in self.member_ports().items():
            service = member.split("-", 1)[0]
            env = {**base, "GARDIEN_SERVICE_PORT": str(port)}
            self.children.append(
                Child(member, [*gardien, "service", service], env, self.home / f"{member}.log")
            )
        api_env = {
            **base,
            "GARDIEN_HTTP_HOST": self.http_host,
            "GARDIEN_HTTP_PORT": str(self.http_port),
        }
        self.children.append(
            Child("api", [*gardien, "service", "api"], api_env, self.home / "api.log")
        )
        if self.reference_systems:
            self.children += self.reference_children(base)
        for child in self.children:
            child.start()

    def reference_children(self, env: dict[str, str]) -> list[Child]:
        """The reference systems; their demo records are seeded on the first start only."""
        seeded = self.home / "reference-systems-seeded"
        children = []
        for name, extra in REFERENCE_SYSTEMS.items():
            argv = [sys.executable, "-m", "examples.connected_systems", "--system", name, *extra]
            first = None if seeded.exists() else [*argv, "--seed"]
            children.append(
                Child(
                    f"refsys-{name}", argv, env, self.home / f"refsys-{name}.log", first_argv=first
                )
            )
        seeded.touch()
        return children

    def restart_all(self, why: str) -> None:
        typer.echo(f"gardien: {why}; restarting every service", err=True)
        stack.terminate_all([c.proc for c in self.children if c.proc is not None])
        if self.own_broker:
            port = int(self.bootstrap.rsplit(":", 1)[1])
            self.broker = stack.start_broker(self.home, port)
            self.ensure_topics()
        for child in self.children:
            child.restarts += 1
            child.start()
        self.save_state()

    def supervise_once(self) -> None:
        if self.own_broker and self.broker is not None and self.broker.poll() is not None:
            self.restart_all("the embedded broker exited (it keeps no data across restarts)")
            return
        if self.own_mongo and self.mongo is not None and self.mongo.poll() is not None:
            port = int(self.mongodb_uri.rsplit(":", 1)[1])
            typer.echo("gardien: the MongoDB server exited; restarting it", err=True)
            self.mongo = stack.start_mongo(self.home, port)
            self.save_state()
        for child in self.children:
            if child.exited():
                delay = min(2 ** min(child.restarts, 5), 30)
                if time.monotonic() - child.started_at >= delay:
                    code = child.proc.returncode if child.proc else "?"
                    typer.echo(
                        f"gardien: {child.name} exited ({code}); restarting (see {child.log})",
                        err=True,
                    )
                    child.restarts += 1
                    child.start()
                    self.save_state()

    def shutdown(self) -> None:
        """Stop the services together, then the servers; SIGKILL whatever lingers."""
        self.stopping = True
        stack.terminate_all([c.proc for c in self.children if c.proc is not None])
        stack.terminate_all([p for p in (self.broker, self.mongo) if p is not None])


def run(launcher: Launcher) -> None:
    """Start everything, print where it listens, supervise until a signal arrives."""

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # Installed explicitly: a shell starts background jobs with SIGINT ignored, and Python
    # then never turns Ctrl-C into KeyboardInterrupt. SIGHUP: the terminal went away.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        launcher.start_servers()
        launcher.start_children()
        launcher.save_state()
        _print_endpoints(launcher)
        while True:
            time.sleep(0.5)
            launcher.supervise_once()
    except KeyboardInterrupt:
        typer.echo("gardien: stopping…", err=True)
    finally:
        launcher.shutdown()
        (launcher.home / STATE_FILE).unlink(missing_ok=True)
        typer.echo("gardien: stopped; no process left running", err=True)


def _print_endpoints(launcher: Launcher) -> None:
    typer.echo(
        f"Kafka bootstrap   {launcher.bootstrap}" + (" (embedded)" if launcher.own_broker else "")
    )
    typer.echo(
        f"MongoDB           {launcher.mongodb_uri}" + (" (embedded)" if launcher.own_mongo else "")
    )
    for name, port in launcher.member_ports().items():
        typer.echo(f"{name:<17} http://127.0.0.1:{port}/healthz")
    typer.echo(
        f"HTTP API          http://{launcher.http_host}:{launcher.http_port}  (docs at /docs)"
    )
    if launcher.reference_systems:
        typer.echo(f"Reference systems {', '.join(REFERENCE_SYSTEMS)} (databases refsys_*)")
    typer.echo(f"Logs              {launcher.home}/")
    typer.echo("Press Ctrl-C to stop everything.")
