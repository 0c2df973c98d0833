"""The ``details`` a request may carry, validated (pure pydantic; docs/intake.md)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from shared.events.common import Category, Id, ShortText

LawfulBasis = Literal[
    "consent",
    "explicit_consent",
    "contract",
    "legal_obligation",
    "legal_claims",
    "legitimate_interest_legal_claims",
    "legitimate_interest",
    "legitimate_interests",
    "public_task",
    "vital_interests",
]
Action = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z_]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class CategoryDetail(_Strict):
    """One data category of the subject and what the controller knows about it."""

    category: Category
    lawful_basis: LawfulBasis | None = None
    purpose: ShortText | None = None
    financial_year_end: date | None = None
    retain_until: date | None = None
    legal_hold: Id | None = None
    exception: Literal["a", "b", "c", "d", "e"] | None = None
    unlawful: bool = False
    legal_obligation_to_erase: bool = False
    overriding_legitimate_grounds: bool = False


class HoldDetail(_Strict):
    """A legal hold known to the requesting system; no categories means all of them."""

    matter: Id
    categories: Annotated[list[Category], Field(max_length=64)] = []


class DirectivesDetail(_Strict):
    """Directives left by a deceased person (LIL art 85)."""

    type: Literal["general", "particular"]
    content: Annotated[list[ShortText], Field(max_length=32)] = []
    specific_consent: bool | None = None
    registered_with_controller: bool | None = None
    registered_with_certified_third_party: bool | None = None
    designated_person: ShortText | None = None
    designated_person_deceased: bool = False
    revoked: bool = False


class Details(BaseModel):
    """What intake reads in ``details``; other keys are kept but not interpreted."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)

    contract_status: Literal["active", "terminated", "none", "employed", "departed"] | None = None
    contract_end_date: date | None = None
    categories: Annotated[list[CategoryDetail | Category], Field(max_length=64)] | None = None
    legal_holds: Annotated[list[HoldDetail], Field(max_length=32)] = []
    await_identity: bool = False
    # objection
    purpose: ShortText | None = None
    lawful_basis: LawfulBasis | None = None
    # post-mortem (R-DSR-12)
    requester_role: Literal["heir", "designated_person", "other"] | None = None
    requester_id: ShortText | None = None
    proofs: Annotated[list[ShortText], Field(max_length=16)] | None = None
    directives: DirectivesDetail | None = None
    requested_actions: Annotated[list[Action], Field(max_length=32)] = []
    date_of_death: date | None = None  # ends the relationship for directed erasure


def parse_details(raw: dict[str, Any] | None) -> Details:
    """Validate ``details``; ValueError with field paths (never values) when malformed."""
    try:
        return Details.model_validate(raw or {})
    except ValidationError as exc:
        raise ValueError(describe(exc)) from None


def describe(exc: ValidationError) -> str:
    """Field paths and messages of a validation error, never the offending values."""
    parts = []
    for item in exc.errors(include_input=False, include_url=False)[:5]:
        where = ".".join(str(p) for p in item["loc"])
        parts.append(f"details.{where}: {item['msg']}")
    return "; ".join(parts)
