"""One error shape for every HTTP answer: RFC 9457 problem details (`application/problem+json`).

Every service (through `shared.service.create_service_app`) and the gateway install the same
exception handlers (`install`), so a 401, 404, 409, 422 or 503 has the same body wherever it
comes from: ``type`` (``about:blank``: the status says it all), ``title`` (the status's
phrase), ``status``, ``detail`` (what is wrong, one sentence), ``instance`` (the path asked)
and, for a request that fails validation, ``errors`` (one entry per field, without the value
sent: it may be personal data). `responses` declares them in OpenAPI.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

PROBLEM_JSON = "application/problem+json"
REF = "#/components/schemas/{model}"


class FieldError(BaseModel):
    """One invalid part of a request: where (``loc``), what is wrong (``msg``), its kind."""

    loc: list[str | int] = Field(description="Where: body, query, path or header, then names")
    msg: str
    type: str


class Problem(BaseModel):
    """An error (RFC 9457 problem details)."""

    type: str = Field("about:blank", description="`about:blank`: the status code says it all")
    title: str = Field(description="The HTTP status's phrase, e.g. `Not Found`")
    status: int = Field(ge=400, le=599)
    detail: str = Field(description="What is wrong with this request, in one sentence")
    instance: str = Field(description="The path of the request")
    errors: list[FieldError] | None = Field(
        None, description="Each invalid field (422 for a malformed request only)"
    )


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


WHY = {
    400: "The request URL is not valid (the gateway cannot forward it).",
    401: "No API key, or an unknown or revoked one (`X-API-Key` or `Authorization: Bearer`).",
    403: "The key lacks the operation's scope.",
    404: "The resource does not exist.",
    405: "The method is not allowed on this path (`Allow` lists those that are).",
    409: "The resource's state does not allow the operation now (the reason is given).",
    410: "The resource existed but is gone.",
    413: "The request body is too large.",
    422: "The request is not valid (`errors` lists each invalid field).",
    503: "The owning service is unreachable or still starting; retry shortly.",
}
AUTH = (401, 403, 422)
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def responses(
    *codes: int, auth: bool = True, text: dict[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for error statuses: 401, 403 and 422 (only 422 with
    ``auth=False``), plus ``codes``; ``text`` replaces the default description of a status."""
    wanted = sorted({*(AUTH if auth else (422,)), *codes})
    said = {**WHY, **(text or {})}
    return {
        code: {
            "description": said.get(code, HTTPStatus(code).phrase),
            "content": {PROBLEM_JSON: {"schema": {"$ref": REF.format(model="Problem")}}},
        }
        for code in wanted
    }


def problem(
    status: int, detail: str, instance: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    """A problem-details answer."""
    body = Problem(
        title=HTTPStatus(status).phrase, status=status, detail=detail, instance=instance, **extra
    )
    return ProblemResponse(
        body.model_dump(mode="json", exclude_none=True), status_code=status, headers=headers
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code < 400:  # a redirect raised as an exception (the console's sign-in)
        return Response(status_code=exc.status_code, headers=exc.headers)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = allowed(request)
    return problem(exc.status_code, detail, request.url.path, headers)


def allowed(request: Request) -> str:
    """Every method some route of the app serves on this path.

    Starlette's own ``Allow`` names only the first route matching the path, when several
    routes (one per method) share it; each method is asked of the router instead.
    """
    routes = request.app.router.routes
    methods = [
        method
        for method in METHODS
        if any(r.matches({**request.scope, "method": method})[0] is Match.FULL for r in routes)
    ]
    return ", ".join(methods)


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    found = [
        FieldError(loc=list(e.get("loc", ())), msg=str(e.get("msg", "")), type=str(e.get("type")))
        for e in exc.errors()
    ]
    where = "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in found[:3])
    more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
    return problem(422, f"the request is not valid: {where}{more}", request.url.path, errors=found)


async def _crash(request: Request, exc: Exception) -> Response:
    return problem(500, "an unexpected error; it is logged with its trace", request.url.path)


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` as problem details and declare the shape in its OpenAPI."""
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(Exception, _crash)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title, version=app.version, routes=app.routes, servers=app.servers
            )
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(schema_of(Problem))
            _drop_fastapi_validation(doc)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema and those it refers to, keyed by name for ``components``."""
    schema = model.model_json_schema(ref_template=REF)
    defs = schema.pop("$defs", {})
    return {model.__name__: schema, **defs}


def _drop_fastapi_validation(doc: dict[str, Any]) -> None:
    """FastAPI's own 422 schemas are unused once every 422 is a problem."""
    text = str(doc.get("paths"))
    for name in ("HTTPValidationError", "ValidationError"):
        if f"/{name}'" not in text:
            doc["components"]["schemas"].pop(name, None)
