"""Schemathesis on every HTTP action and console read, through the gateway: no server error.

Bounded (a few examples per operation); `make chaos` runs the whole API harder.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ACTIONS = (
    r"^/v1/(breaches|holds|processors)"
    r"|^/v1/requests/\{request_id\}/[a-z-]+$"
    r"|^/v1/erasure/(systems|cases/\{case_id\}/systems/)"
)
EXAMPLES = 3


def test_no_server_error_on_any_action(up: tuple[str, str], tmp_path: Path) -> None:
    api, key = up
    exe = Path(sys.executable).with_name("schemathesis")
    done = subprocess.run(
        [
            str(exe), "run", f"{api}/openapi.json", "--url", api,
            "--include-path-regex", ACTIONS,
            "--checks", "not_a_server_error,status_code_conformance",
            "--max-examples", str(EXAMPLES), "--seed", "15",
            "--phases", "examples,fuzzing,stateful",
            "--header", f"X-API-Key: {key}", "--request-timeout", "20", "--no-color",
        ],
        capture_output=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    out = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    assert done.returncode == 0, out[-4000:]
    assert "Server error" not in out
