"""What every `gardien` command shares: the --home option and the one-line failure."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

HOME = Annotated[Path, typer.Option("--home", help="Where state, data and logs live.")]


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one clear line on stderr and exit non-zero."""
    typer.echo(f"gardien: {message}", err=True)
    raise typer.Exit(code)
