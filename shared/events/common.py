"""Field types shared by the event data models."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic.config import JsonDict

Id = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]*$")
]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=256)]
LongText = Annotated[str, StringConstraints(min_length=1, max_length=4000)]


def _json_integer(value: object) -> object:
    """A JSON integer (``12`` or ``12.0``), not ``true`` nor the text ``"12"``."""
    if isinstance(value, bool | str | bytes):
        raise ValueError("a JSON integer is expected")
    return value


Count = Annotated[int, Field(ge=0), BeforeValidator(_json_integer)]
Category = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
]
ISO_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _iso_only(value: object) -> object:
    """Refuse numbers and numeric strings, which pydantic would read as Unix timestamps."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and ISO_INSTANT.match(value.strip()):
        return value
    raise ValueError("must be an ISO 8601 date-time with an offset, e.g. 2027-03-05T16:45:00+01:00")


Instant = Annotated[AwareDatetime, BeforeValidator(_iso_only)]
Categories = Annotated[list[Category], Field(max_length=64)]


class Data(BaseModel):
    """Base of event data: unknown fields are ignored so producers can add fields."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)


class SubjectKind(StrEnum):
    CUSTOMER = "customer"
    PROSPECT = "prospect"
    CANDIDATE = "candidate"
    EMPLOYEE = "employee"
    VISITOR = "visitor"


KNOWN = ("email", "customer_id", "phone")


def _named(name: str) -> JsonDict:
    """The schema of "identifier ``name`` is given and not null"."""
    return {"required": [name], "properties": {name: {"type": "string"}}}


class Identifiers(BaseModel):
    """How connected systems know the subject; at least one identifier is required."""

    # At least one identifier that is not null, for schema readers (OpenAPI, AsyncAPI).
    model_config = ConfigDict(
        extra="allow",
        frozen=True,
        str_strip_whitespace=True,
        json_schema_extra={
            "anyOf": [
                *[_named(n) for n in KNOWN],
                {
                    "minProperties": 1,
                    "propertyNames": {"not": {"enum": list(KNOWN)}},
                    "additionalProperties": {"not": {"type": "null"}},
                },
            ]
        },
    )

    email: (
        Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")] | None
    ) = None
    customer_id: Id | None = None
    phone: (
        Annotated[str, StringConstraints(max_length=32, pattern=r"^\+?[0-9 .()-]{4,}$")] | None
    ) = None

    def present(self) -> dict[str, str]:
        """The identifiers that are set, by name (extra identifiers included)."""
        values = {k: v for k, v in self.model_dump().items() if v is not None}
        return {k: str(v)[:256] for k, v in values.items()}


class Subject(BaseModel):
    """The data subject an event is about."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: SubjectKind
    identifiers: Identifiers

    @model_validator(mode="after")
    def _has_identifier(self) -> Subject:
        if not self.identifiers.present():
            raise ValueError("subject.identifiers needs at least one identifier")
        return self
