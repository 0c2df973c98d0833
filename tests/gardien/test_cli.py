"""The command refuses bad input with one clear line and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support import REPO


def gardien(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gardien", *args],
        env={**os.environ, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_invalid_setting_is_one_line() -> None:
    done = gardien("stack", "status", GARDIEN_HTTP_PORT="abc")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "gardien: invalid setting GARDIEN_HTTP_PORT: Input should be a valid integer, "
        "unable to parse string as an integer"
    ]


def test_unknown_service_and_empty_input_are_refused() -> None:
    unknown = gardien("service", "billing")
    assert unknown.returncode == 2
    assert "unknown service 'billing'" in unknown.stderr
    empty = subprocess.run(
        [sys.executable, "-m", "gardien", "publish", "-"],
        input="",
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert empty.returncode == 2
    assert empty.stderr.strip() == "gardien: no event to publish: the input is empty"


def test_api_keys_are_listed_and_revoked(tmp_path: os.PathLike[str]) -> None:
    keys = f"{tmp_path}/api-keys.json"
    created = gardien(
        "apikey", "create", "--name", "dpo", "--scope", "audit:read", GARDIEN_API_KEYS_FILE=keys
    )
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    listed = gardien("apikey", "list", GARDIEN_API_KEYS_FILE=keys)
    assert listed.returncode == 0 and "dpo" in listed.stdout and "audit:read" in listed.stdout
    assert secret not in listed.stdout and secret.split("_")[-1] not in listed.stdout
    revoked = gardien("apikey", "revoke", "dpo", GARDIEN_API_KEYS_FILE=keys)
    assert revoked.returncode == 0 and revoked.stdout.startswith("revoked ")
    from pathlib import Path

    from shared.auth import KeyStore

    assert KeyStore(Path(keys)).authenticate(secret) is None
    again = gardien("apikey", "revoke", "nobody", GARDIEN_API_KEYS_FILE=keys)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [
        "gardien: no key with id or name 'nobody'; see `gardien apikey list`"
    ]
