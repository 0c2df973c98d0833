"""``gardien rules``: evaluate golden cases and explain computations."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from shared.rules.errors import RuleError
from shared.rules.evaluate import evaluate_cases
from shared.rules.explain import explain_case

rules_app = typer.Typer(
    help="GDPR rules engine (France): evaluate golden cases, explain a computation.",
    no_args_is_help=True,
)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


@rules_app.command("eval")
def eval_cases() -> None:
    """Read a JSON array of {id, rule, input} on stdin; write [{id, output}] on stdout."""
    try:
        cases = json.loads(sys.stdin.read())
    except json.JSONDecodeError as exc:
        raise _fail(f"stdin is not JSON ({exc.msg}, line {exc.lineno})") from None
    if isinstance(cases, dict):
        cases = [cases]
    if not isinstance(cases, list):
        raise _fail("stdin must be a JSON array of cases")
    typer.echo(json.dumps(evaluate_cases(cases), ensure_ascii=False, indent=1))


@rules_app.command("explain")
def explain(
    case_file: Annotated[Path, typer.Argument(help="JSON file holding one case {rule, input}")],
) -> None:
    """Print a case's computation step by step, with its legal sources."""
    try:
        case = json.loads(case_file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(f"cannot read {case_file} ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _fail(f"{case_file} is not JSON") from None
    if not isinstance(case, dict) or not isinstance(case.get("input"), dict):
        raise _fail(f"{case_file} must hold one object with 'rule' and 'input'")
    try:
        lines = explain_case(case)
    except RuleError as exc:
        raise _fail(f"{exc.code}: {exc.message}") from None
    typer.echo("\n".join(lines))
