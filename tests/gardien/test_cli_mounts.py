"""The `gardien` command hands the audit commands where the running system is."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from gardien import cli


class Asked(Exception):
    pass


def test_gardien_audit_takes_its_settings_from_the_command_that_mounts_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str | None] = []

    def client_settings(mongodb_uri: str | None = None) -> None:
        asked.append(mongodb_uri)
        raise Asked

    monkeypatch.setattr(cli, "client_settings", client_settings)
    uri = "mongodb://127.0.0.1:1"
    result = CliRunner().invoke(cli.app, ["audit", "checkpoints", "export", "--mongodb-uri", uri])
    assert isinstance(result.exception, Asked) and asked == [uri]
