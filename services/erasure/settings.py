"""Erasure settings (env prefix ``GARDIEN_ERASURE_``): registry, retries, HTTP signing."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "gardien-dev-only-erasure-signing-secret"  # noqa: S105 - documented dev default
PLACEHOLDERS = {"changeme", "change-me", "secret", "password", "todo", "xxx"}


class ErasureSettings(BaseSettings):
    """What the erasure service reads from the environment, beyond the shared settings."""

    model_config = SettingsConfigDict(env_prefix="GARDIEN_ERASURE_", extra="ignore", frozen=True)

    registry_path: Path = Field(
        default=Path("examples/connected_systems/registry.yaml"),
        description="YAML registry of connected systems.",
    )
    tick_seconds: float = Field(
        default=1.0, gt=0, le=60, description="How often the sweeper looks for due work."
    )
    sweep_batch: int = Field(default=100, ge=1, le=10_000, description="Cases per sweep.")
    ack_timeout_seconds: float = Field(
        default=3600.0, gt=0, description="Default time a system has to answer before escalation."
    )
    retry_initial_seconds: float = Field(default=30.0, gt=0, description="First retry delay.")
    retry_max_seconds: float = Field(default=900.0, gt=0, description="Longest retry delay.")
    retry_multiplier: float = Field(default=2.0, ge=1, le=10, description="Backoff factor.")
    http_timeout_seconds: float = Field(default=10.0, gt=0, description="HTTP connector timeout.")
    signing_secret: SecretStr = Field(
        default=SecretStr(DEV_SECRET),
        description="HMAC-SHA256 key signing HTTP connector calls (set it outside development).",
    )
    processor_choice: str = Field(
        default="delete", pattern="^(delete|return)$", description="Policy when events omit it."
    )
    processor_days: int = Field(
        default=30, ge=0, le=3650, description="Contractual days for certificates when omitted."
    )
    package_keep_days: float = Field(
        default=30.0,
        gt=0,
        le=3650,
        description="Days an access package is kept once delivered, then deleted with its uploads.",
    )
    package_link_seconds: float = Field(
        default=259_200.0,
        gt=0,
        le=2_592_000,
        description="How long a data subject's single-use package link stays valid.",
    )

    @field_validator("signing_secret")
    @classmethod
    def _not_placeholder(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if secret.lower() in PLACEHOLDERS or len(secret) < 16:
            raise ValueError("signing_secret must be a real secret of at least 16 characters")
        return value
