"""Instants in responses carry their offset; instants in queries are RFC 3339 text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import BaseModel, ValidationError

from services.erasure.http import CaseView
from shared.apidoc import IsoInstant, UtcInstant


class Shown(BaseModel):
    at: UtcInstant


class Asked(BaseModel):
    at: IsoInstant


def test_a_naive_instant_from_the_store_is_shown_as_utc() -> None:
    # nx-27017 returns naive datetimes (UTC): the view must not drop the offset.
    assert Shown(at=datetime(2027, 3, 5, 9, 0)).model_dump_json() == '{"at":"2027-03-05T09:00:00Z"}'
    paris = datetime(2027, 3, 5, 10, 0, tzinfo=timezone(timedelta(hours=1)))
    assert Shown(at=paris).at == datetime(2027, 3, 5, 9, 0, tzinfo=UTC)


def test_case_view_instants_have_an_offset() -> None:
    case = CaseView(
        case_id="c",
        origin="request",
        request_id=None,
        state="open",
        due_by=None,
        opened_at=datetime(2027, 3, 5, 9, 0),  # naive, as read from the store
        closed_at=None,
        systems={},
        skipped=[],
        art19=None,
        processor=None,
        holds_pending=[],
    )
    shown = case.model_dump(mode="json")["opened_at"]
    assert datetime.fromisoformat(shown).utcoffset() == timedelta(0), shown


def test_a_query_instant_is_text_with_an_offset() -> None:
    assert Asked(at="2027-03-05T09:00:00+01:00").at.utcoffset() == timedelta(hours=1)  # type: ignore[arg-type]
    for bad in ("0.5", "1700000000", "2027-03-05T09:00:00"):
        with pytest.raises(ValidationError):
            Asked(at=bad)  # type: ignore[arg-type]
