"""Pure rules of erasure cases: planning, backoff, retries, escalation, closing, Art 19."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.erasure import domain, planning
from services.erasure.registry import Registry
from services.erasure.settings import ErasureSettings

NOW = datetime(2027, 3, 6, 9, 0, tzinfo=UTC)
DEFAULTS = ErasureSettings(retry_initial_seconds=10, retry_max_seconds=40, ack_timeout_seconds=100)
REGISTRY = Registry.model_validate(
    {
        "category_aliases": {
            "customer": ["profile", "marketing", "payment"],
            "accounting": ["invoices"],
        },
        "systems": [
            {"id": "crm", "categories": {"profile": {}}, "identifiers": ["email", "customer_id"]},
            {
                "id": "newsletter",
                "categories": {"marketing": {}},
                "identifiers": ["email"],
                "transport": {"kind": "http", "url": "http://127.0.0.1:1/x"},
                "processor": True,
            },
            {
                "id": "billing",
                "identifiers": ["customer_id"],
                "categories": {
                    "invoices": {
                        "action": "restrict",
                        "retention": {"years": 10, "ground": "Art 17(3)(b) legal obligation"},
                    },
                    "payment": {"action": "anonymise"},
                },
            },
            {"id": "phone-only", "categories": {"profile": {}}, "identifiers": ["phone"]},
            {
                "id": "partner",
                "categories": {"profile": {}},
                "identifiers": ["email"],
                "recipient": True,
                "transport": {"kind": "none", "unreachable_reason": "ceased trading"},
            },
        ],
    }
)


def work(*categories: dict[str, str], origin: str = "request") -> planning.WorkRequested:
    return planning.WorkRequested.model_validate(
        {
            "case_id": "req:R-1",
            "origin": origin,
            "request_id": "R-1",
            "due_by": "2027-04-05",
            "subject": {
                "kind": "customer",
                "identifiers": {"email": "a@example.org", "customer_id": "C-1"},
            },
            "categories": list(categories),
        }
    )


def open_case(*categories: dict[str, str]) -> domain.Case:
    return planning.plan_case(work(*categories), REGISTRY, DEFAULTS, NOW)


def test_backoff_doubles_and_is_capped() -> None:
    waits = [domain.backoff(n, 10, 2, 40).total_seconds() for n in range(1, 6)]
    assert waits == [10, 20, 40, 40, 40]


def test_plan_reaches_only_systems_that_hold_the_data_and_know_the_subject() -> None:
    case = open_case(
        {"category": "customer", "action": "erase", "ground": "Art 17(1)(b)"},
        {"category": "accounting", "action": "erase"},
    )
    assert sorted(case.systems) == ["billing", "crm", "newsletter"]
    assert case.systems["crm"].identifiers == {"email": "a@example.org", "customer_id": "C-1"}
    assert case.systems["newsletter"].identifiers == {"email": "a@example.org"}
    assert case.systems["crm"].command_id == "req:R-1:crm"
    billing = {line.category: line for line in case.systems["billing"].lines}
    assert billing["invoices"].action == "restrict" and billing["invoices"].kind == "retention"
    assert billing["invoices"].retention is not None
    assert billing["payment"].action == "anonymise"
    assert case.systems["billing"].action == "mixed"
    skipped = {s["system"]: s["reason"] for s in case.skipped}
    assert "identifiers" in skipped["phone-only"] and "ceased" in skipped["partner"]


def test_refused_categories_send_nothing_and_retention_dates_pass_through() -> None:
    case = open_case(
        {"category": "profile", "action": "refuse"},
        {"category": "payment", "action": "retain_restricted", "retain_until": "2031-06-30"},
    )
    assert list(case.systems) == ["billing"]
    assert case.systems["billing"].lines[0].retain_until == "2031-06-30"


def test_a_system_rule_per_record_replaces_the_decisions_single_date() -> None:
    # Each invoice ends at its own financial year end + 10 years (issue 10, item 8).
    case = open_case(
        {"category": "invoices", "action": "retain_restricted", "retain_until": "2036-12-31"}
    )
    line = case.systems["billing"].lines[0]
    assert (line.action, line.kind, line.retain_until) == ("restrict", "retention", None)
    assert line.retention is not None and line.retention.years == 10


def test_restrict_until_a_date_is_retention_with_that_date() -> None:
    # Intake sends retained categories as `restrict` with their retain-until date.
    case = open_case({"category": "payment", "action": "restrict", "retain_until": "2031-06-30"})
    line = case.systems["billing"].lines[0]
    assert (line.action, line.kind, line.retain_until) == ("restrict", "retention", "2031-06-30")
    bare = open_case({"category": "payment", "action": "restrict"}).systems["billing"].lines[0]
    assert (bare.kind, bare.retain_until) == ("restriction", None)


def test_commands_are_retried_with_backoff_then_escalated_once() -> None:
    case = open_case({"category": "profile", "action": "erase"})
    effects = domain.advance(case, NOW)
    assert [(e.kind, e.attempt) for e in effects] == [("issue", 1)]
    crm = case.systems["crm"]
    assert crm.state == "sent" and crm.next_attempt_at == NOW + timedelta(seconds=10)
    assert domain.advance(case, NOW + timedelta(seconds=9)) == []
    attempts, at = [], NOW
    while (at := at + timedelta(seconds=5)) < NOW + timedelta(seconds=200):
        attempts += [e.kind for e in domain.advance(case, at)]
    # First sent at 0 s, retried at 10 s, 30 s and 70 s; escalated at 100 s (the timeout).
    assert attempts == ["issue", "issue", "issue", "escalate"]
    assert crm.attempts == 4
    assert case.state == "escalated" and crm.escalated_at is not None
    assert not domain.ready_to_close(case) and case.next_due_at is None


def test_case_closes_only_when_every_system_has_a_final_outcome() -> None:
    case = open_case({"category": "customer", "action": "erase"})
    domain.advance(case, NOW)
    assert domain.acknowledge(case, "crm", "erased", NOW)
    assert domain.acknowledge(case, "billing", "anonymised", NOW)
    assert not domain.ready_to_close(case)  # the newsletter has not answered: no guess
    assert domain.acknowledge(case, "newsletter", "failed", NOW, "HTTP 422")
    assert not domain.ready_to_close(case)
    assert case.systems["newsletter"].next_attempt_at == NOW + timedelta(seconds=10)
    assert domain.acknowledge(case, "newsletter", "not_found", NOW)
    assert domain.ready_to_close(case)
    domain.close(case, NOW, planning.art19_record(case, REGISTRY))
    assert case.state == "closed" and case.systems["crm"].identifiers == {}


def test_a_duplicate_acknowledgement_changes_nothing() -> None:
    case = open_case({"category": "profile", "action": "erase"})
    domain.advance(case, NOW)
    assert domain.acknowledge(case, "crm", "erased", NOW)
    before = case.model_dump()
    assert not domain.acknowledge(case, "crm", "not_found", NOW + timedelta(hours=1))
    assert case.model_dump() == before


def test_art19_notifies_recipients_and_records_why_not() -> None:
    case = open_case({"category": "customer", "action": "erase"})
    for name in list(case.systems):
        domain.acknowledge(case, name, "erased", NOW)
    record = planning.art19_record(case, REGISTRY)
    assert record["triggered"] and record["action"] == "erasure"
    assert record["notified"] == ["newsletter"]
    assert record["not_notified"] == [
        {
            "id": "partner",
            "reason": "impossible_document_why",
            "detail": "no transport: ceased trading",
        }
    ]


def test_art19_is_not_triggered_by_retention_only() -> None:
    case = open_case({"category": "accounting", "action": "erase"})
    domain.acknowledge(case, "billing", "retained", NOW, retained_until="2036-12-31")
    assert planning.art19_record(case, REGISTRY)["triggered"] is False


def processor_case() -> domain.Case:
    change = planning.ProcessorChange(
        old="mailer-old",
        new="mailer-new",
        controller_choice="delete",
        contractual_days=30,
        effective_at=NOW,
    )
    return planning.plan_processor_case(
        "proc:mailer-old:2027-03-06", change, REGISTRY, DEFAULTS, NOW
    )


def test_processor_case_orders_deletion_and_closes_on_the_certificate() -> None:
    case = processor_case()
    assert case.processor is not None and case.processor.due_date == "2027-04-05"
    assert case.systems["mailer-old"].action == "delete_all"
    domain.advance(case, NOW)
    assert not domain.ready_to_close(case)
    assert domain.certify(case, NOW.date() + timedelta(days=3), "CERT-1", NOW)
    assert case.processor.status == "closed" and domain.ready_to_close(case)
    assert not domain.certify(case, NOW.date(), "CERT-2", NOW)


def test_processor_certificate_overdue_is_flagged_once() -> None:
    case = processor_case()
    domain.advance(case, NOW)
    domain.acknowledge(case, "mailer-old", "erased", NOW)
    late = datetime(2027, 4, 6, 9, 0, tzinfo=UTC)
    assert case.next_due_at == datetime(2027, 4, 5, 22, 0, tzinfo=UTC)  # 24:00 Paris
    assert [e.reason for e in domain.advance(case, late)] == ["processor_certificate_overdue"]
    assert case.processor is not None and case.processor.status == "overdue"
    assert domain.advance(case, late + timedelta(days=1)) == []
    assert not domain.ready_to_close(case)


def test_routes_send_replaced_categories_to_the_new_processor() -> None:
    routed = planning.apply_routes(REGISTRY, {"newsletter": {"new": "mailer-2", "categories": []}})
    case = planning.plan_case(
        work({"category": "marketing", "action": "erase"}), routed, DEFAULTS, NOW
    )
    assert list(case.systems) == ["mailer-2"]
    assert case.systems["mailer-2"].transport == "http"


@pytest.mark.parametrize(
    "bad",
    [
        {"systems": [{"id": "a", "categories": {}, "identifiers": ["email"]}] * 2},
        {
            "systems": [
                {
                    "id": "a",
                    "categories": {},
                    "identifiers": ["email"],
                    "transport": {"kind": "http"},
                }
            ]
        },
        {
            "systems": [
                {"id": "a", "categories": {"x": {"action": "shred"}}, "identifiers": ["email"]}
            ]
        },
    ],
)
def test_registry_refuses_invalid_configuration(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Registry.model_validate(bad)
