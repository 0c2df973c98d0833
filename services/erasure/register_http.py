"""``GET /v1/register``: the register of processing (Art 30) as JSON, CSV or a printable page.

Served by the erasure service because it is the one that loads and checks both halves of
the register (the policy profile and the connected-system registry) at start-up: what it
serves is exactly what it validated and whose hash it audits. The gateway forwards the
path like any other.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from services.erasure.register_page import csv_text, html_page
from shared.auth import Scope, StoredKey, require
from shared.problems import responses
from shared.rules.register import RegisterDocument

router = APIRouter(prefix="/v1/register", tags=["register"])
Reader = Annotated[StoredKey, require(Scope.AUDIT_READ)]


EXAMPLE = {
    "policy": "serenicity",
    "controller": {
        "organisation": "Serenicity",
        "contact": {"name": "Serenicity data protection contact", "email": "privacy@x.example"},
    },
    "activities": [
        {
            "id": "customers",
            "name": "Customer management",
            "purposes": ["performing the contract with the customer"],
            "legal_bases": ["contract (Art 6(1)(b))"],
            "data_subjects": ["customers"],
            "data_categories": ["identity", "contact details"],
            "recipients": ["customer-service staff"],
            "transfers": [],
            "security_measures": ["role-based access"],
            "retention": [
                {
                    "category": "customer",
                    "start_event": "contract_end",
                    "duration_months": 60,
                    "basis": "C. civ. 2224",
                    "action": "delete_or_anonymise",
                    "statutory": False,
                }
            ],
            "systems": [{"system": "crm", "categories": ["profile", "contact"]}],
        }
    ],
    "hash": "9c4ed8865e57...",
}
RESPONSES: dict[int | str, dict[str, Any]] = {
    **responses(),
    200: {
        "description": "The register: JSON (default), CSV (one row per activity) or HTML.",
        "content": {
            "application/json": {"example": EXAMPLE},
            "text/csv": {
                "schema": {"type": "string"},
                "example": "activity_id,activity_name,controller,...\r\n",
            },
            "text/html": {
                "schema": {"type": "string"},
                "example": "<!DOCTYPE html><html>...</html>",
            },
        },
    },
}


@router.get("", response_model=RegisterDocument, responses=RESPONSES)
async def get_register(
    request: Request,
    key: Reader,
    format: Annotated[
        Literal["json", "csv", "html"],
        Query(description="json (default), csv for record keeping, html to print"),
    ] = "json",
) -> Response:
    """The register of processing activities (GDPR Art 30(1)) of the active policy profile.

    Each activity carries the Art 30 fields, the retention categories pointing at it and the
    connected systems holding its data. ``hash`` is the canonical SHA-256 that the audit
    trail records when the register changes (`gardien.register.changed`).
    """
    doc: RegisterDocument = request.app.state.register
    if format == "csv":
        name = f"register-{doc.policy}.csv"
        return Response(
            csv_text(doc),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    if format == "html":
        return HTMLResponse(html_page(doc))
    return JSONResponse(doc.model_dump(mode="json"))
