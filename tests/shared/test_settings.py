"""Settings come from the environment and refuse nonsense."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.settings import Settings


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("GARDIEN_HTTP_PORT", "9000")
    settings = Settings()
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert settings.gardien_http_port == 9000
    assert settings.database_name("audit") == "gardien_audit"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GARDIEN_HTTP_PORT", "70000"),
        ("MONGODB_URI", "  "),
        ("GARDIEN_KAFKA_SESSION_TIMEOUT_MS", "10"),
    ],
)
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_http_client_logs_are_quiet_so_urls_with_queries_are_not_logged() -> None:
    import logging

    from shared.logs import configure_logging

    configure_logging("INFO", "api")
    for name in ("httpx", "httpcore"):
        assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING
