"""`gardien audit ...`: verify the trail, export checkpoints for a third party.

Where the database is comes from the command that mounts this one: ``gardien.cli`` puts a
``SettingsFor`` in the context (the environment, else the running stack); on its own this
app reads the environment only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from pymongo.errors import ConnectionFailure
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from services.audit.checkpoints import public_key
from services.audit.mongo import mongo_repositories
from services.audit.repository import Repositories
from services.audit.settings import AuditSettings
from services.audit.verification import Report, Verifier
from shared.mongo import create_client, mongo_hosts, service_database
from shared.settings import Settings

audit_app = typer.Typer(help="The audit trail: verify chains and checkpoints, export them.")
checkpoints_app = typer.Typer(help="Signed checkpoints of the chain heads.")
audit_app.add_typer(checkpoints_app, name="checkpoints")

MongoUri = Annotated[
    str | None, typer.Option("--mongodb-uri", help="MongoDB URI [default: MONGODB_URI].")
]


SettingsFor = Callable[[str | None], Settings]  # --mongodb-uri -> the settings to use
SETTINGS_FOR = "audit_settings_for"  # its key in the context object


def _settings(ctx: typer.Context, uri: str | None) -> Settings:
    obj = ctx.find_root().obj
    given: SettingsFor | None = obj.get(SETTINGS_FOR) if isinstance(obj, dict) else None
    if given is not None:
        return given(uri)
    return Settings(mongodb_uri=uri) if uri else Settings()


async def _with_store(settings: Settings, work: Any) -> Any:
    """Run ``work`` on the audit store; an unreachable MongoDB is one line and exit 2."""
    client = create_client(settings)  # bounded: server selection gives up after 5 s
    try:
        return await work(mongo_repositories(service_database(client, settings, "audit")))
    except ConnectionFailure as exc:
        hosts = mongo_hosts(settings.mongodb_uri)
        typer.echo(f"gardien: MongoDB unreachable at {hosts} ({type(exc).__name__})", err=True)
        raise typer.Exit(2) from None
    finally:
        await client.close()


@audit_app.command()
def verify(
    ctx: typer.Context,
    mongodb_uri: MongoUri = None,
    from_checkpoint: Annotated[
        bool, typer.Option(help="Start each chain at its latest validly signed checkpoint.")
    ] = False,
    state: Annotated[
        Path | None, typer.Option(help="Progress file: resume from it, update it as we go.")
    ] = None,
    checkpoints: Annotated[
        Path | None,
        typer.Option(help="Checkpoints held by a third party (from `checkpoints export`)."),
    ] = None,
    chain: Annotated[str | None, typer.Option(help="Verify only this chain.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Verify every hash chain and signed checkpoint; exit 1 at the first bad record."""
    saved = _load_state(state)
    held = json.loads(checkpoints.read_text()) if checkpoints else None
    run = Run(saved, state, held, chain, from_checkpoint, as_json)
    report: Report = asyncio.run(_with_store(_settings(ctx, mongodb_uri), run.verify))
    _print(report, as_json)
    if not report.ok:
        raise typer.Exit(1)


@dataclass
class Run:
    """One `gardien audit verify`: where it resumes, what it checks, how it reports."""

    saved: dict[str, tuple[int, str]]
    state: Path | None
    held: dict[str, Any] | None  # checkpoints held by a third party
    chain: str | None
    from_checkpoint: bool
    as_json: bool

    async def verify(self, repos: Repositories) -> Report:
        """Walk the chains with a progress bar, saving the position after each range."""
        held = self.held
        key = bytes.fromhex(held["public_key"]["raw_hex"]) if held else None
        key = key or (await public_key(repos.keys)).raw
        heads = await repos.records.all_heads()
        start = {c: pos[0] for c, pos in self.saved.items()}
        total = sum(max(seq - start.get(c, 0), 0) for c, (seq, _) in heads.items())
        columns = (
            TextColumn("verifying"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, disable=self.as_json) as bar:
            task = bar.add_task("records", total=total or None)

            def progress(name: str, seq: int, digest: str) -> None:
                bar.advance(task, seq - start.get(name, 0))
                start[name] = seq
                self.saved[name] = (seq, digest)
                _save_state(self.state, self.saved)

            verifier = Verifier(repos, key, AuditSettings().verify_batch, progress)
            return await verifier.run(
                self.saved or None,
                from_checkpoint=self.from_checkpoint,
                only=self.chain,
                checkpoints=held["items"] if held else None,
            )


def _print(report: Report, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
        return
    typer.echo(
        f"{report.records} records in {len(report.chains)} chains, "
        f"{report.checkpoints} checkpoints checked"
    )
    for p in report.problems:
        where = f" (record {p.record_id})" if p.record_id else ""
        typer.echo(f"BAD {p.chain} seq {p.seq}: {p.kind}: {p.detail}{where}", err=True)
    if report.ok:
        typer.echo("OK: every chain verifies")


def _load_state(path: Path | None) -> dict[str, tuple[int, str]]:
    if path is None or not path.exists():
        return {}
    return {c: (int(s), str(h)) for c, (s, h) in json.loads(path.read_text()).items()}


def _save_state(path: Path | None, saved: dict[str, tuple[int, str]]) -> None:
    if path is not None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({c: list(v) for c, v in saved.items()}))
        tmp.replace(path)


@checkpoints_app.command("export")
def export(
    ctx: typer.Context,
    mongodb_uri: MongoUri = None,
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
) -> None:
    """Export every signed checkpoint and the public key, for a third party to hold."""

    async def work(repos: Repositories) -> dict[str, Any]:
        key = await public_key(repos.keys)
        items = [
            {k: v for k, v in d.items() if k != "_id"}
            for d in await repos.checkpoints.page(None, None)
        ]
        return {"public_key": {**key.export(), "raw_hex": key.raw.hex()}, "items": items}

    doc = asyncio.run(_with_store(_settings(ctx, mongodb_uri), work))
    text = json.dumps(doc, indent=2, sort_keys=True)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n")
        typer.echo(f"{len(doc['items'])} checkpoints written to {out}", err=True)
