"""The connected-system registry: YAML validated by pydantic, loaded once at start-up."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, model_validator

from shared.errors import GardienError
from shared.events.common import Category, Id
from shared.rules.register import Register, SystemLink, pointer_error


class Action(StrEnum):
    ERASE = "erase"
    ANONYMISE = "anonymise"
    RESTRICT = "restrict"
    SUPPRESS = "suppress"


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Retention(Frozen):
    """A legal retention that overrides erasure for one category (Art 17(3)(b)/(e))."""

    years: Annotated[int, Field(ge=1, le=100)]
    start: Literal["financial_year_end", "record_date", "contract_end"] = "financial_year_end"
    ground: Annotated[str, Field(min_length=1, max_length=256)]


class CategoryPolicy(Frozen):
    """What a system does with one category when asked to erase it."""

    action: Action = Action.ERASE
    retention: Retention | None = None
    activity: str | None = None  # the register activity (Art 30) this category belongs to
    # Art 20: the subject provided these data (on consent or contract): portability covers them.
    provided_by_subject: bool = False


class Retry(Frozen):
    """Backoff for silent or failing systems: initial * multiplier^(n-1), capped."""

    initial_seconds: Annotated[float, Field(gt=0)] | None = None
    max_seconds: Annotated[float, Field(gt=0)] | None = None
    multiplier: Annotated[float, Field(ge=1, le=10)] | None = None


class Transport(Frozen):
    """How commands reach the system: the commands topic, a signed POST, or not at all."""

    kind: Literal["kafka", "http", "none"] = "kafka"
    url: HttpUrl | None = None
    unreachable_reason: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> Transport:
        if self.kind == "http" and self.url is None:
            raise ValueError("an http transport needs a url")
        if self.kind == "none" and not self.unreachable_reason:
            raise ValueError("a system without transport needs unreachable_reason (Art 19)")
        return self


class System(Frozen):
    """One connected system (or a recipient only reachable outside Gardien)."""

    id: Id
    description: str = ""
    categories: dict[Category, CategoryPolicy]
    identifiers: Annotated[list[str], Field(min_length=1)]
    transport: Transport = Transport()
    ack_timeout_seconds: Annotated[float, Field(gt=0)] | None = None
    retry: Retry = Retry()
    recipient: bool = False  # data were disclosed to it: Art 19 applies
    processor: bool = False
    disproportionate_effort_documented: bool = False


class Registry(Frozen):
    """Every system, plus aliases that expand a decision's category into system categories."""

    systems: list[System]
    category_aliases: dict[Category, list[Category]] = {}

    @model_validator(mode="after")
    def _unique(self) -> Registry:
        ids = [s.id for s in self.systems]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate system ids: {', '.join(dupes)}")
        return self

    def get(self, system_id: str) -> System | None:
        """The system with ``system_id``, if registered."""
        return next((s for s in self.systems if s.id == system_id), None)

    def expand(self, category: str) -> list[str]:
        """The system categories a decision's category stands for."""
        return self.category_aliases.get(category, [category])


class RegistryError(GardienError):
    """The registry file is missing or invalid; the service refuses to start."""


def load_registry(path: Path) -> Registry:
    """Read and validate the registry file."""
    try:
        raw = yaml.safe_load(path.read_text())
        return Registry.model_validate(raw)
    except OSError as exc:
        raise RegistryError(f"cannot read registry {path}: {exc.strerror}") from exc
    except (yaml.YAMLError, ValidationError) as exc:
        raise RegistryError(f"invalid registry {path}: {exc}") from exc


def check_register(registry: Registry, register: Register) -> None:
    """Every system has categories and each points at a register activity; else one line."""
    for system in registry.systems:
        if not system.categories:
            why = "has no category, so no register entry"
            raise RegistryError(f"connected system {system.id!r} {why}")
        for name, policy in system.categories.items():
            owner = f"connected system {system.id!r} category {name!r}"
            problem = pointer_error(owner, policy.activity, register)
            if problem:
                raise RegistryError(problem)


def register_links(registry: Registry) -> dict[str, list[SystemLink]]:
    """Activity id -> the systems holding categories of it (for the register document)."""
    links: dict[str, list[SystemLink]] = {}
    for system in registry.systems:
        by_activity: dict[str, list[str]] = {}
        for name, policy in system.categories.items():
            if policy.activity:
                by_activity.setdefault(policy.activity, []).append(name)
        for activity, names in by_activity.items():
            link = SystemLink(
                system=system.id,
                description=system.description,
                categories=tuple(sorted(names)),
                processor=system.processor,
                recipient=system.recipient,
            )
            links.setdefault(activity, []).append(link)
    return links
