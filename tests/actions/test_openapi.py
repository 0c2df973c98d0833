"""Every HTTP action is described in OpenAPI: examples, Idempotency-Key, declared errors."""

from __future__ import annotations

from importlib import import_module
from typing import Any

import pytest

from shared.settings import Settings

ACTIONS = {
    "intake": [
        "/v1/requests/{request_id}/identity-verification",
        "/v1/requests/{request_id}/information-request",
        "/v1/requests/{request_id}/information-received",
        "/v1/requests/{request_id}/extension",
        "/v1/requests/{request_id}/response",
        "/v1/requests/{request_id}/refusal",
    ],
    "deadlines": [
        "/v1/breaches",
        "/v1/breaches/{breach_id}",
        "/v1/breaches/{breach_id}/authority-notification",
        "/v1/breaches/{breach_id}/subjects-notification",
        "/v1/breaches/{breach_id}/public-communication",
        "/v1/holds",
        "/v1/holds/{hold_id}/release",
        "/v1/processors/{processor}/deletion-certificate",
    ],
    "erasure": ["/v1/erasure/cases/{case_id}/systems/{system}/manual-confirmation"],
}


@pytest.mark.parametrize("service", sorted(ACTIONS))
def test_actions_are_described(service: str, tmp_path: Any) -> None:
    app = import_module(f"services.{service}.app").create_app(Settings())
    paths = app.openapi()["paths"]
    for path in ACTIONS[service]:
        for method, op in paths[path].items():
            if method not in ("post", "put"):
                continue
            where = f"{method.upper()} {path}"
            assert {"202", "401", "403", "404", "409", "422"} <= set(op["responses"]), where
            body = op["requestBody"]["content"]["application/json"]
            assert body.get("examples"), f"{where} has no example"
            headers = [p["name"] for p in op["parameters"] if p["in"] == "header"]
            assert "Idempotency-Key" in headers, where
            assert op["security"], f"{where} is not scoped"
