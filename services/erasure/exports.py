"""What a collection case (access, portability) keeps besides its per-system progress.

The models only (pure pydantic); the decisions are ``collection.py``'s. A collection case is
an erasure ``Case`` whose commands say ``export``: same registry, identifiers, retries,
timeouts, escalation and sweeper; its ``collection`` holds the uploads received, what each
system said it exported, and the package once built.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict

EXPORT_OUTCOMES = frozenset({"exported", "not_found", "failed"})
CONTENT_TYPES = {
    "application/json": "application/json",
    "application/x-ndjson": "application/x-ndjson",
    "application/jsonl": "application/x-ndjson",
    "application/jsonlines": "application/x-ndjson",
}


def _utc(value: datetime) -> datetime:
    # Instants set with $set come back naive from nx-27017 (docs/devstack.md): UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


Instant = Annotated[datetime, AfterValidator(_utc)]


class Upload(BaseModel):
    """One system's data as received on its upload URL (stored in the blob store)."""

    model_config = ConfigDict(extra="ignore")

    blob_id: str
    size: int
    sha256: str
    content_type: str
    at: Instant


class Counted(BaseModel):
    """What a system's ``gdpr.export.result`` said it exported."""

    model_config = ConfigDict(extra="ignore")

    records: int | None = None
    bytes: int | None = None


class Collection(BaseModel):
    """The collection part of a case: right, key, uploads, counts and the package."""

    model_config = ConfigDict(extra="ignore")

    right: Literal["access", "portability"]
    kid: str  # the vault key the uploads (and the package) are sealed under
    received_at: Instant
    uploads: dict[str, Upload] = {}  # by system key
    counted: dict[str, Counted] = {}  # by system key
    provided: dict[str, list[str]] = {}  # portability: categories the subject provided
    package_id: str | None = None
    built_at: Instant | None = None
    build_after: Instant | None = None  # a failed build is tried again from then on


def package_kid(request_id: str) -> str:
    """The vault key of a request's uploads and package (not the case key, shredded at close)."""
    return f"access:{request_id}"


def upload_blob_id(command_id: str) -> str:
    """The blob an upload for ``command_id`` is stored as."""
    return f"upload:{command_id}"
