"""The `gardien` command: run the system, publish events, manage the stack and topics."""

from __future__ import annotations

import typer

from gardien.admin import apikey_app, asyncapi, stack_app, topics_app
from gardien.dlq import dlq_app
from gardien.endpoints import client_settings
from gardien.publish import publish
from gardien.serve import service, up
from services.audit.cli import SETTINGS_FOR, audit_app
from shared.rules.cli import rules_app

app = typer.Typer(help="Gardien: GDPR obligations as running machinery.", no_args_is_help=True)


@app.callback()
def _root(ctx: typer.Context) -> None:
    """Gardien: GDPR obligations as running machinery."""
    # `gardien audit` finds the database in the environment, else the running stack.
    ctx.obj = {SETTINGS_FOR: lambda uri: client_settings(mongodb_uri=uri)}


for command in (up, service, publish, asyncapi):
    app.command()(command)
for group, name in (
    (stack_app, "stack"),
    (topics_app, "topics"),
    (apikey_app, "apikey"),
    (dlq_app, "dlq"),
    (rules_app, "rules"),
    (audit_app, "audit"),
):
    app.add_typer(group, name=name)


def main() -> None:
    """Entry point of the `gardien` console script."""
    app()


if __name__ == "__main__":
    main()
