"""Delivery routes of the access package: the DPO's download and the subject's link.

``GET /v1/requests/{id}/package`` (scope ``packages:read``) streams the ZIP; ``POST
/v1/requests/{id}/package/link`` issues a single-use, expiring link, and ``GET
/v1/packages/{token}`` (no API key: the token is the credential) streams it once. Errors
are problem documents (``title``, ``status``, ``detail``, ``code``): 404 no package or
link, 409 not built yet, 410 deleted, shredded, used or expired.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request, Response, status
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from services.erasure.package_links import LinkExpired, LinkRefused
from services.erasure.package_store import (
    PackageGone,
    PackageInfo,
    PackageMissing,
    PackageNotReady,
    Packages,
)
from shared.auth import Scope, StoredKey, require
from shared.errors import GardienError

router = APIRouter(tags=["access packages"])
Reader = Annotated[StoredKey, require(Scope.PACKAGES_READ)]
RequestId = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")]
PROBLEMS: list[tuple[type[GardienError], int, str]] = [
    (LinkExpired, status.HTTP_410_GONE, "link_expired"),
    (LinkRefused, status.HTTP_404_NOT_FOUND, "no_such_link"),
    (PackageMissing, status.HTTP_404_NOT_FOUND, "no_package"),
    (PackageNotReady, status.HTTP_409_CONFLICT, "package_not_built"),
    (PackageGone, status.HTTP_410_GONE, "package_gone"),
]
ZIP = {"content": {"application/zip": {}}, "description": "The package (a ZIP), streamed."}
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No package (or link) for this id."},
    409: {"description": "The collection is under way: the package is not built yet."},
    410: {"description": "The package was deleted or shredded, or the link used or expired."},
}


class Problem(BaseModel):
    title: str
    status: int
    detail: str
    code: str


class Link(BaseModel):
    url: str  # on the gateway: the subject opens it once
    expires_at: str


def problem(exc: GardienError) -> JSONResponse:
    """The problem document of a refused delivery."""
    for kind, code, name in PROBLEMS:
        if isinstance(exc, kind):
            body = Problem(title=name.replace("_", " "), status=code, detail=str(exc), code=name)
            return JSONResponse(body.model_dump(), code, media_type="application/problem+json")
    raise exc


def _packages(request: Request) -> Packages:
    packages: Packages | None = getattr(request.app.state, "packages", None)
    if packages is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "erasure is starting")
    return packages


def _zip(found: PackageInfo, stream: AsyncIterator[bytes]) -> StreamingResponse:
    headers = {
        "Content-Disposition": f'attachment; filename="access-{found.request_id}.zip"',
        "Content-Length": str(found.size),
        "X-Gardien-Chargeable": "true" if found.chargeable else "false",
        "Cache-Control": "no-store",
    }
    return StreamingResponse(stream, media_type="application/zip", headers=headers)


@router.get(
    "/v1/requests/{request_id}/package",
    responses={200: ZIP, **ERRORS},
    response_class=StreamingResponse,
    response_model=None,
)
async def download(request: Request, request_id: RequestId, key: Reader) -> Response:
    """The access package of a request: a ZIP, streamed; the delivery is audited.

    The first download delivers it (the request is met); later ones are further copies,
    flagged chargeable (header ``X-Gardien-Chargeable``) within the policy's window, never refused.
    """
    packages = _packages(request)
    try:
        found, stream = await packages.open(request_id, key.name, packages.clock.now())
    except (PackageMissing, PackageNotReady, PackageGone) as exc:
        return problem(exc)
    return _zip(found, stream)


@router.post(
    "/v1/requests/{request_id}/package/link",
    status_code=status.HTTP_201_CREATED,
    responses=ERRORS,
    response_model=Link,
)
async def issue_link(request: Request, request_id: RequestId, key: Reader) -> Any:
    """A single-use, expiring download link to hand to the data subject."""
    packages = _packages(request)
    try:
        token, expires = await packages.link(request_id, key.name, packages.clock.now())
    except (PackageMissing, PackageNotReady, PackageGone) as exc:
        return problem(exc)
    return Link(url=f"/v1/packages/{token}", expires_at=expires.isoformat())


@router.get(
    "/v1/packages/{token}",
    responses={200: ZIP, **ERRORS},
    response_class=StreamingResponse,
    response_model=None,
)
async def open_link(request: Request, token: Annotated[str, Path(max_length=600)]) -> Response:
    """The data subject's download through a link: once, before it expires."""
    packages = _packages(request)
    try:
        found, stream = await packages.open_link(token, packages.clock.now())
    except (LinkRefused, PackageMissing, PackageNotReady, PackageGone) as exc:
        return problem(exc)
    return _zip(found, stream)
