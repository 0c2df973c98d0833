"""Settings shared by every Gardien process, read from the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.pseudonyms import Pseudonymiser, load_pseudonymiser

SERVICE_NAMES = ("intake", "deadlines", "erasure", "audit")


class Settings(BaseSettings):
    """Connection and runtime settings; every field maps to one environment variable."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Kafka bootstrap servers, comma separated."
    )
    mongodb_uri: str = Field(default="mongodb://127.0.0.1:27017", description="MongoDB URI.")
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP endpoint; traces are exported only when set."
    )
    otel_service_name: str | None = Field(
        default=None, description="Overrides the service name reported in traces."
    )
    gardien_db_prefix: str = Field(
        default="gardien_", description="Prefix of each service's MongoDB database name."
    )
    gardien_http_host: str = Field(default="127.0.0.1", description="HTTP API bind address.")
    gardien_http_port: int = Field(default=8000, ge=1, le=65535, description="HTTP API port.")
    gardien_service_port: int = Field(
        default=0, ge=0, le=65535, description="Port of one service's own HTTP face (0 = none)."
    )
    gardien_api_keys_file: Path = Field(
        default=Path(".gardien/api-keys.json"),
        description="File of hashed API keys and their scopes.",
    )
    gardien_policy_file: Path | None = Field(
        default=None, description="Active policy profile (YAML); the built-in default if unset."
    )
    gardien_pseudonym_key: SecretStr | None = Field(
        default=None,
        description="Key of the subject pseudonyms (hex or base64, >= 32 bytes), the same for"
        " every service; takes precedence over the key file.",
    )
    gardien_pseudonym_key_file: Path = Field(
        default=Path(".gardien/pseudonym.key"),
        description="File holding the pseudonym key when GARDIEN_PSEUDONYM_KEY is unset"
        " (gardien up creates it).",
    )
    gardien_log_level: str = Field(default="INFO", description="Log level of every service.")
    gardien_log_format: Literal["auto", "json", "text"] = Field(
        default="auto",
        description="json (one object per line), text, or auto: text on a terminal, else json.",
    )
    gardien_fetch_max_wait_ms: int = Field(
        default=50, ge=1, le=5000, description="Consumer fetch wait; lower means lower latency."
    )
    gardien_poll_max_records: int = Field(
        default=500, ge=1, le=10_000, description="Most records one consumer poll hands over."
    )

    gardien_kafka_session_timeout_ms: int = Field(
        default=10_000,
        ge=1_000,
        le=300_000,
        description="Consumer-group session timeout. Apache Kafka refuses < 6000 by default;"
        " the embedded broker delays each group join by half of it.",
    )
    gardien_intake_url: str = Field(
        default="http://127.0.0.1:8101", description="Base URL of intake's HTTP face."
    )
    gardien_deadlines_url: str = Field(
        default="http://127.0.0.1:8102", description="Base URL of deadlines' HTTP face."
    )
    gardien_erasure_url: str = Field(
        default="http://127.0.0.1:8103", description="Base URL of erasure's HTTP face."
    )
    gardien_audit_url: str = Field(
        default="http://127.0.0.1:8104", description="Base URL of audit's HTTP face."
    )

    @field_validator("kafka_bootstrap_servers", "mongodb_uri")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    def pseudonymiser(self) -> Pseudonymiser:
        """The deployment's subject pseudonymiser (one key for every service)."""
        inline = self.gardien_pseudonym_key
        return load_pseudonymiser(
            inline.get_secret_value() if inline else None, self.gardien_pseudonym_key_file
        )

    def database_name(self, service: str) -> str:
        """Name of the MongoDB database owned by ``service``."""
        return f"{self.gardien_db_prefix}{service}"
