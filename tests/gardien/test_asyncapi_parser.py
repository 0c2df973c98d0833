"""docs/asyncapi.yaml loads in AsyncAPI's own parser (@asyncapi/parser) without an error."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.support import REPO

CHECK = REPO / "tools" / "asyncapi-check"


@pytest.fixture(scope="module")
def parser_installed() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are not installed: AsyncAPI's parser cannot run here")
    if not (CHECK / "node_modules" / "@asyncapi" / "parser").is_dir():
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=CHECK,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"npm ci failed: {done.stderr[-2000:]}"


def test_asyncapi_document_loads_in_the_official_parser(parser_installed: None) -> None:
    done = subprocess.run(
        ["node", "check.mjs", str(REPO / "docs" / "asyncapi.yaml")],
        cwd=CHECK,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("0 error(s)")
