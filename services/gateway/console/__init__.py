"""The DPO's console at /console: server-rendered pages over the services' APIs."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from services.gateway.console import forms, pages
from services.gateway.console.web import HERE, Console
from shared.auth import KeyStore
from shared.rules import default_policy, load_policy
from shared.settings import Settings


def mount(app: FastAPI, settings: Settings) -> None:
    """Add the console's pages, forms and static files to the gateway ``app``."""
    path = settings.gardien_policy_file
    policy = load_policy(path) if path is not None else default_policy()
    app.state.console = Console(timezone=policy.timezone)
    app.state.keys = KeyStore(settings.gardien_api_keys_file)
    app.include_router(forms.router)
    app.include_router(pages.router)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
