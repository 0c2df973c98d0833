"""What the HTTP API's description shares: UTC instants, export media types, local `/docs`.

`/docs` is Swagger UI from the files the `swagger-ui-bundle` package ships, served by the
app itself under ``/docs/assets/``: the page names no outside address, so it works on a
machine without internet.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from pydantic import AfterValidator, AwareDatetime, BeforeValidator
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

ASSETS = "/docs/assets"
CSV = "text/csv"
NDJSON = "application/x-ndjson"


def as_utc(value: datetime) -> datetime:
    """Naive instants are UTC (the embedded MongoDB server returns them naive)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcInstant = Annotated[datetime, AfterValidator(as_utc)]
"""A datetime in a response model: always serialised with its offset (``+00:00``)."""


def _iso_only(value: Any) -> Any:
    """A query instant is RFC 3339 text; pydantic alone would also take ``0.5`` (epoch)."""
    if isinstance(value, str) and not ISO.match(value):
        raise ValueError("an RFC 3339 date-time with its offset, e.g. 2027-03-05T09:00:00+01:00")
    return value


ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]")
IsoInstant = Annotated[AwareDatetime, BeforeValidator(_iso_only)]
"""A date-time query parameter, with its offset (``format: date-time``)."""


class CsvResponse(PlainTextResponse):
    media_type = CSV


def text_body(media_type: str, description: str, example: str | None = None) -> dict[str, Any]:
    """One non-JSON 200 body for ``responses=``: text with ``media_type``."""
    body: dict[str, Any] = {"schema": {"type": "string"}}
    if example is not None:
        body["example"] = example
    return {"description": description, "content": {media_type: body}}


def mount_docs(app: FastAPI, openapi_url: str, title: str) -> None:
    """``GET /docs``: Swagger UI on ``openapi_url``, its script and style served locally."""
    app.mount(ASSETS, StaticFiles(directory=swagger_ui_path), name="swagger-ui")

    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=title,
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )

    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)
