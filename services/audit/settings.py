"""The audit service's own settings (env prefix ``GARDIEN_AUDIT_``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class AuditSettings(BaseSettings):
    """Checkpoints, verification and webhook delivery; one env variable per field."""

    model_config = SettingsConfigDict(env_prefix="GARDIEN_AUDIT_", extra="ignore", frozen=True)

    checkpoint_every: int = Field(
        default=1000, ge=1, description="Sign chain heads after this many new records."
    )
    checkpoint_seconds: float = Field(
        default=60.0, gt=0, description="Sign chain heads at least this often (if they moved)."
    )
    cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long subject keys and links read from MongoDB are reused in process"
        " (bounds how stale another replica's change can be; shredding clears them at once).",
    )
    cache_entries: int = Field(
        default=100_000, ge=1, description="Most subject keys (and links) kept in process."
    )
    verify_batch: int = Field(
        default=5000, ge=1, le=100_000, description="Records read per verification query."
    )
    webhook_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses or networks webhooks may reach although they are not public "
        "(comma separated, e.g. 127.0.0.1,10.0.0.0/8).",
    )
    webhook_poll_seconds: float = Field(
        default=1.0, gt=0, description="How often the sender looks for due deliveries."
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Time limit of one delivery attempt."
    )
    webhook_concurrency: int = Field(default=8, ge=1, le=256, description="Parallel sends.")
    webhook_backoff_base_seconds: float = Field(
        default=30.0, gt=0, description="Delay before the first retry; it quadruples after."
    )
    webhook_backoff_max_seconds: float = Field(
        default=12 * 3600.0, gt=0, description="Longest delay between two attempts."
    )
    webhook_max_attempts: int = Field(
        default=12, ge=1, description="Attempts of one delivery before it is given up (~3 days)."
    )
    webhook_disable_after_failures: int = Field(
        default=50, ge=1, description="Consecutive failed attempts that can disable a webhook."
    )
    webhook_disable_after_hours: float = Field(
        default=120.0, ge=0, description="...provided it has been failing for this long."
    )
    webhook_subscriptions_ttl_seconds: float = Field(
        default=2.0, ge=0, description="How long the writer caches the subscription list."
    )

    @field_validator("webhook_allow", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
