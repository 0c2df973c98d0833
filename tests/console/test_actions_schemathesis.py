"""Schemathesis on every operation of the gateway's merged OpenAPI document: no failure.

Every check schemathesis has (``--checks all``), on reads and actions alike, through the
gateway of a real `gardien up`. Bounded: a few examples per operation, a fixed seed, the
examples, fuzzing and stateful phases (the coverage phase walks every boundary of every
schema, which alone takes minutes on two loaded cores; `make chaos` runs the API harder).

Two adjustments, each because the API is right and the check cannot know it:

- ``schemathesis_hooks.py`` gives each valid drawn ``Idempotency-Key`` a unique suffix:
  reusing a key with another body is refused (422, as the IETF Idempotency-Key draft asks),
  and schemathesis draws keys from a tiny space, so it would reuse them across bodies.
- ``POST /v1/webhooks`` may answer 422 to a schema-valid body: the URL must resolve to a
  public address allowed by the deployment (SSRF protection), which no schema can state.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
EXAMPLES = 2
CONFIG = """
[[operations]]
include-path = "/v1/webhooks"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]
"""


def test_schemathesis_finds_no_failure_on_any_operation(
    up: tuple[str, str], tmp_path: Path
) -> None:
    api, key = up
    exe = Path(sys.executable).with_name("schemathesis")
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "SCHEMATHESIS_HOOKS": "tests.console.schemathesis_hooks",
    }
    done = subprocess.run(
        [
            str(exe), "--config-file", str(tmp_path / "schemathesis.toml"),
            "run", f"{api}/openapi.json", "--url", api,
            "--checks", "all",
            "--max-examples", str(EXAMPLES), "--seed", "15",
            "--phases", "examples,fuzzing,stateful",
            "--header", f"X-API-Key: {key}", "--request-timeout", "20", "--no-color",
        ],
        capture_output=True, timeout=600, cwd=tmp_path, env=env,
    )  # fmt: skip
    out = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
    assert done.returncode == 0, out[-6000:]
    doc = httpx.get(f"{api}/openapi.json", timeout=20).json()
    operations = sum(len(item) for item in doc["paths"].values())
    assert f"{operations} selected / {operations} total" in out, out[-2000:]
