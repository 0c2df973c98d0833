"""``PUT /v1/uploads/{command_id}?token=...``: a connected system's export data, streamed.

No API key: the signed, expiring token of the command (``uploads.py``) is the credential.
The body goes to the blob store chunk by chunk (never held whole); a refused upload
changes nothing (docs/access.md, Collection).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel

from services.erasure.collect import Collector
from services.erasure.collection import UploadRefused
from shared import problems
from shared.apidoc import UtcInstant

router = APIRouter(prefix="/v1/uploads", tags=["access"])


class UploadView(BaseModel):
    command_id: str
    blob_id: str
    size: int
    sha256: str
    content_type: str
    received_at: UtcInstant


def _collector(request: Request) -> Collector:
    collector = getattr(request.app.state, "collector", None)
    if collector is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "erasure is starting")
    found: Collector = collector
    return found


@router.put(
    "/{command_id}",
    status_code=status.HTTP_201_CREATED,
    responses=problems.responses(
        401, 403, 404, 409, 413, 415, 503,
        auth=False,
        text={
            401: "No token, or not a token (the command's upload URL carries it).",
            403: "A wrong or expired token.",
            404: "No such export command.",
            409: "The case is closed or the system already answered.",
            413: "Larger than GARDIEN_ERASURE_UPLOAD_MAX_BYTES.",
            415: "Neither JSON nor JSON Lines.",
        },
    ),
)  # fmt: skip
async def upload(
    request: Request,
    command_id: str,
    token: Annotated[str | None, Query(max_length=200)] = None,
) -> UploadView:
    """Store one export command's data (JSON array, ``{"records": [...]}`` or JSON Lines)."""
    collector = _collector(request)
    limit = collector.erasure.settings.upload_max_bytes
    declared = request.headers.get("content-length", "")
    try:
        collector.authorise(command_id, token)
        if declared.isdigit() and int(declared) > limit:
            raise UploadRefused(status.HTTP_413_CONTENT_TOO_LARGE, f"over {limit} bytes")
        done = await collector.upload(
            command_id, token, request.headers.get("content-type"), request.stream()
        )
    except UploadRefused as exc:
        raise HTTPException(exc.status, exc.reason) from None
    return UploadView(
        command_id=command_id,
        blob_id=done.blob_id,
        size=done.size,
        sha256=done.sha256,
        content_type=done.content_type,
        received_at=done.at,
    )
