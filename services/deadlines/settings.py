"""Deadlines' own settings (env prefix ``GARDIEN_DEADLINES_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DeadlinesSettings(BaseSettings):
    """How often the scheduler looks for due timers and how long a claim is leased."""

    model_config = SettingsConfigDict(env_prefix="GARDIEN_DEADLINES_", extra="ignore", frozen=True)

    tick_seconds: float = Field(default=1.0, gt=0, le=60, description="Scheduler tick interval.")
    lease_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="How long a claimed timer stays leased."
    )
    claim_batch: int = Field(
        default=500, ge=1, le=10_000, description="Due timers claimed per bulk claim."
    )
    claim_workers: int = Field(
        default=2, ge=1, le=16, description="Claim loops per tick (batches fired at once)."
    )
