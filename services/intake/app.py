"""The intake service: records data-subject requests, runs their lifecycle and decides."""

from __future__ import annotations

from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SpanExporter

from services.intake import handlers
from services.intake.actions import router as actions
from services.intake.http import router
from services.intake.repository import INDEXES
from services.intake.usecases import Intake
from shared import rules
from shared.clock import Clock, SystemClock
from shared.service import Runtime, ServiceSpec, create_service_app
from shared.settings import Settings


def active_policy(settings: Settings) -> rules.Policy:
    """The policy profile named by the settings, or the built-in default."""
    path = settings.gardien_policy_file
    return rules.load_policy(path) if path is not None else rules.default_policy()


def create_app(
    settings: Settings, exporter: SpanExporter | None = None, clock: Clock | None = None
) -> FastAPI:
    """The intake app: subscribers, routes, and a start-up relay of pending events."""
    policy = active_policy(settings)
    uses: dict[str, Intake] = {}

    def wire(runtime: Runtime) -> None:
        uses["intake"] = Intake(runtime, policy, clock or SystemClock())
        handlers.register(runtime, uses["intake"])

    async def relay_pending(runtime: Runtime) -> None:
        # Retired: subject hashes now use the deployment's pseudonym key (shared/pseudonyms).
        await runtime.db["vault"].delete_one({"_id": "subject-hash"})
        await uses["intake"].relay_pending()

    spec = ServiceSpec("intake", wire, INDEXES, [router, actions], after_start=[relay_pending])
    app = create_service_app(spec, settings, exporter)
    app.state.intake = uses["intake"]
    return app
