"""Pure hold gating of erasure cases: held lines are kept back, a release frees them."""

from __future__ import annotations

from datetime import timedelta

from services.erasure import domain, holds, planning
from tests.erasure.test_domain import DEFAULTS, NOW, REGISTRY, open_case, work

REFS = ["ref-a", "ref-b"]


def hold(hold_id: str, *categories: str, refs: tuple[str, ...] = ("ref-a",)) -> holds.Hold:
    return holds.Hold(hold_id, f"matter-{hold_id}", frozenset(refs), frozenset(categories))


def held_case(*active: holds.Hold) -> domain.Case:
    case = open_case(
        {"category": "customer", "action": "erase", "ground": "Art 17(1)(b)"},
        {"category": "accounting", "action": "erase"},
    )
    holds.withhold(case, list(active), REFS, REGISTRY)
    return case


def test_a_scoped_hold_keeps_back_its_categories_only() -> None:
    case = held_case(hold("H1", "accounting"))  # accounting -> billing's invoices
    billing = case.systems["billing"]
    assert [line.category for line in billing.lines] == ["payment"]
    assert billing.command_id == "req:R-1:billing" and billing.state == "pending"
    part = case.systems["billing/h1"]
    assert [line.category for line in part.lines] == ["invoices"]
    assert part.state == "held" and part.next_attempt_at is None
    assert part.command_id == "req:R-1/h1:billing"
    assert part.held_by == [{"hold_id": "H1", "matter": "matter-H1"}]
    assert case.holds_pending == ["H1"]
    issued = {e.system for e in domain.advance(case, NOW) if e.kind == "issue"}
    assert issued == {"crm", "newsletter", "billing"}  # the held part is not sent
    assert not domain.ready_to_close(case)


def test_a_hold_on_another_subject_or_released_scope_holds_nothing() -> None:
    case = held_case(hold("H1", refs=("someone-else",)))
    assert case.holds_pending == [] and all(p.state == "pending" for p in case.systems.values())


def test_a_system_wholly_held_keeps_its_own_key_and_command_id() -> None:
    case = held_case(hold("H1", "profile"))
    crm = case.systems["crm"]
    assert crm.state == "held" and crm.command_id == "req:R-1:crm"


def test_release_frees_what_no_other_hold_covers_as_one_command_per_system() -> None:
    case = held_case(hold("H1"), hold("H2", "invoices"))  # H1: everything, H2: invoices
    domain.advance(case, NOW)
    assert all(p.state == "held" for p in case.systems.values())
    later = NOW + timedelta(days=30)
    freed = holds.release(case, "H1", later)
    assert sorted(freed) == ["billing", "crm", "newsletter"]
    billing = case.systems["billing"]
    assert [line.category for line in billing.lines] == ["payment"]
    assert billing.state == "pending" and billing.next_attempt_at == later
    assert case.systems["billing/h1"].held_by == [{"hold_id": "H2", "matter": "matter-H2"}]
    assert case.holds_pending == ["H2"]
    first = domain.advance(case, later)
    assert sorted(e.system for e in first if e.kind == "issue") == ["billing", "crm", "newsletter"]
    assert holds.release(case, "H2", later) == ["billing/h1"]
    effects = domain.advance(case, later)
    assert sorted(e.system for e in effects if e.kind == "issue") == ["billing/h1"]


def test_release_merges_freed_lines_of_one_system() -> None:
    case = held_case(hold("H1", "customer", "accounting"))
    assert {"billing", "billing/h1"} <= set(case.systems)
    holds.release(case, "H1", NOW)
    billing = case.systems["billing"]
    assert sorted(line.category for line in billing.lines) == ["invoices", "payment"]
    assert "billing/h1" not in case.systems and billing.action == "mixed"


def test_a_later_hold_extends_held_parts_it_covers() -> None:
    case = held_case(hold("H1", "accounting"))
    case.subject_refs = REFS
    assert holds.extend(case, hold("H2", "invoices"), REGISTRY) == ["billing/h1"]
    assert holds.release(case, "H1", NOW) == []
    assert case.systems["billing/h1"].state == "held"


def test_command_ids_map_back_to_case_keys() -> None:
    assert holds.locate("req:R-1:billing", "billing") == ("req:R-1", "billing")
    assert holds.locate("req:R-1/h2:billing", "billing") == ("req:R-1", "billing/h2")
    assert holds.command_id("req:R-1", "billing/h2", "billing") == "req:R-1/h2:billing"


def test_art19_counts_a_recipient_commanded_under_a_part_key() -> None:
    case = held_case(hold("H1", "customer"))
    holds.release(case, "H1", NOW)
    for key in case.systems:
        domain.advance(case, NOW)
        domain.acknowledge(case, key, "erased", NOW)
    record = planning.art19_record(case, REGISTRY)
    assert "newsletter" in record["notified"]


def test_a_retention_purge_reaching_erasure_under_a_hold_is_kept_back() -> None:
    purge = work({"category": "customer", "action": "erase"}, origin="retention")
    case = planning.plan_case(purge, REGISTRY, DEFAULTS, NOW)
    holds.withhold(case, [hold("H1", "customer")], REFS, REGISTRY)
    assert {p.state for p in case.systems.values()} == {"held"}
    assert not [e for e in domain.advance(case, NOW) if e.kind == "issue"]
