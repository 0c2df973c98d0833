"""Run one reference connected system: ``python -m examples.connected_systems --system crm``.

Kafka and MongoDB come from KAFKA_BOOTSTRAP_SERVERS and MONGODB_URI (as for Gardien).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys

import uvicorn
from faststream.kafka import KafkaBroker

from examples.connected_systems.records import CATALOGUE, seed
from examples.connected_systems.server import http_app, subscribe
from examples.connected_systems.system import ReferenceSystem
from services.erasure.settings import ErasureSettings
from shared.mongo import create_client
from shared.settings import Settings

DEFAULT_TRANSPORT = {"crm": "kafka", "newsletter": "http", "billing": "kafka", "vendor": "kafka"}
DEFAULT_DELAY = {"vendor": 3.0}
DEFAULT_EXPORT_LATE = {"vendor": 1}  # the vendor answers an export only when it is retried
# Ids of the systems whose exports fail (comma-separated), e.g. REFSYS_EXPORT_FAIL=billing.
EXPORT_FAIL_ENV = "REFSYS_EXPORT_FAIL"
# Where the systems keep their data: <prefix><id> (a test on a shared server takes its own).
DB_PREFIX_ENV = "REFSYS_DB_PREFIX"


def parse(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m examples.connected_systems")
    p.add_argument("--system", required=True, choices=sorted(CATALOGUE))
    p.add_argument("--id", help="system id in the registry (default: the kind)")
    p.add_argument("--transport", choices=["kafka", "http"])
    p.add_argument("--port", type=int, default=8311, help="HTTP port (http transport)")
    p.add_argument("--delay", type=float, help="seconds before answering (vendor: 3)")
    p.add_argument("--fail-mode", choices=["none", "never-answer", "fail"], default="none")
    p.add_argument(
        "--export-fail", action="store_true", help=f"exports fail (or {EXPORT_FAIL_ENV})"
    )
    p.add_argument("--export-late", type=int, help="export attempts left unanswered (vendor: 1)")
    p.add_argument("--seed", action="store_true", help="insert demo records first")
    p.add_argument("--email", default="alice.martin@example.org")
    p.add_argument("--customer-id", default="C-1042")
    p.add_argument(
        "--db-prefix",
        default=os.environ.get(DB_PREFIX_ENV, "refsys_"),
        help=f"database name prefix (or {DB_PREFIX_ENV}): refsys_<id> by default",
    )
    return p.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    """Seed if asked, then serve commands until interrupted."""
    settings = Settings()
    client = create_client(settings)
    system_id = args.id or args.system
    system = ReferenceSystem(
        kind=args.system,
        system_id=system_id,
        db=client[f"{args.db_prefix}{system_id}"],
        delay=DEFAULT_DELAY.get(args.system, 0.0) if args.delay is None else args.delay,
        fail_mode=args.fail_mode,
        export_fail=args.export_fail or system_id in _listed(os.environ.get(EXPORT_FAIL_ENV)),
        export_late=DEFAULT_EXPORT_LATE.get(args.system, 0)
        if args.export_late is None
        else args.export_late,
    )
    if args.seed:
        count = await seed(system.db, args.system, args.email, args.customer_id)
        print(f"{system_id}: seeded {count} records", flush=True)
    transport = args.transport or DEFAULT_TRANSPORT[args.system]
    if transport == "http":
        secret = ErasureSettings().signing_secret.get_secret_value().encode()
        config = uvicorn.Config(
            http_app(system, secret), host="127.0.0.1", port=args.port, log_level="warning"
        )
        server = uvicorn.Server(config)
        print(f"{system_id}: ready (http :{args.port})", flush=True)
        await server.serve()
        return
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers, client_id=f"refsys-{system_id}", log_level=logging.DEBUG
    )
    subscribe(broker, system)
    await broker.start()
    print(f"{system_id}: ready (kafka)", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await broker.stop()
        await client.close()


def _listed(value: str | None) -> set[str]:
    return {part.strip() for part in (value or "").split(",") if part.strip()}


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(parse(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    main()
