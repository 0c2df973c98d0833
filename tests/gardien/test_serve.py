"""`gardien service NAME` runs the app of each of the four services, or the gateway for `api`."""

from __future__ import annotations

import pytest
import typer

from gardien.serve import _service_app
from shared.settings import SERVICE_NAMES, Settings

SETTINGS = Settings(gardien_http_port=8010, gardien_service_port=8111)


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_each_service_runs_its_own_app_on_the_service_port(name: str) -> None:
    app, port = _service_app(name, SETTINGS)
    assert port == 8111
    assert app.state.runtime.service == name
    assert any(getattr(r, "path", "") == "/readyz" for r in app.routes)


def test_api_runs_the_gateway_on_the_http_port() -> None:
    app, port = _service_app("api", SETTINGS)
    assert port == 8010
    assert app.title == "Gardien API"
    assert any(getattr(r, "path", "") == "/v1/{path:path}" for r in app.routes)


def test_an_unknown_service_is_refused() -> None:
    with pytest.raises(typer.Exit) as raised:
        _service_app("gateway", SETTINGS)
    assert raised.value.exit_code == 2
