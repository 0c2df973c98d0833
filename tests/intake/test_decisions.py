"""Decisions at intake through the rules engine and the policy (pure)."""

from __future__ import annotations

from datetime import date

import pytest

from services.intake.decisions import decide
from services.intake.details import parse_details
from shared import rules

RECEIPT = date(2027, 3, 5)
POLICY = rules.default_policy()


def actions(details: dict[str, object], kind: str = "customer") -> dict[str, tuple[str, object]]:
    d = decide("erasure", kind, parse_details(details), RECEIPT, POLICY)
    return {x["category"]: (x["action"], x.get("retain_until")) for x in d.decisions}


def test_terminated_customer_defaults_erase_profile_and_retain_records() -> None:
    d = decide(
        "erasure",
        "customer",
        parse_details({"contract_status": "terminated", "contract_end_date": "2026-06-30"}),
        RECEIPT,
        POLICY,
    )
    got = {x["category"]: (x["action"], x.get("retain_until")) for x in d.decisions}
    assert got == {
        "profile": ("erase", None),
        "marketing": ("erase", None),
        "customer": ("retain_restricted", date(2031, 6, 30)),
        "accounting": ("retain_restricted", date(2036, 12, 31)),
    }
    assert d.work_case == "req"
    assert [(w["category"], w["action"]) for w in d.work] == [
        ("profile", "erase"),
        ("marketing", "erase"),
        ("customer", "restrict"),
        ("accounting", "restrict"),
    ]
    assert "partial_refusal" not in d.flags


def test_active_contract_refuses_contract_data_and_flags_partial_refusal() -> None:
    # ERA-01 of the golden vectors.
    details = {
        "contract_status": "active",
        "categories": [
            {"category": "contract_data", "lawful_basis": "contract"},
            {"category": "marketing_preferences", "lawful_basis": "consent"},
            {
                "category": "invoices",
                "lawful_basis": "legal_obligation",
                "financial_year_end": "2026-12-31",
            },
        ],
    }
    d = decide("erasure", "customer", parse_details(details), RECEIPT, POLICY)
    got = {x["category"]: (x["action"], x.get("retain_until")) for x in d.decisions}
    assert got == {
        "contract_data": ("refuse", None),
        "marketing_preferences": ("erase", None),
        "invoices": ("retain_restricted", date(2036, 12, 31)),
    }
    assert "partial_refusal" in d.flags
    assert [w["category"] for w in d.work] == ["marketing_preferences", "invoices"]


def test_unknown_contract_status_counts_as_active_and_is_flagged() -> None:
    d = decide("erasure", "customer", parse_details({}), RECEIPT, POLICY)
    assert "contract_status_unknown" in d.flags
    assert {x["category"]: x["action"] for x in d.decisions}["profile"] == "refuse"


def test_legal_hold_refuses_while_held() -> None:
    got = actions(
        {
            "contract_end_date": "2026-06-30",
            "categories": ["profile", "marketing"],
            "legal_holds": [{"matter": "M-1", "categories": ["profile"]}],
        }
    )
    assert got == {"profile": ("refuse_while_hold", None), "marketing": ("erase", None)}


def test_prospect_defaults_are_erased() -> None:
    got = actions({}, kind="prospect")
    assert got == {"prospect": ("erase", None), "marketing": ("erase", None)}


def test_category_without_known_basis_is_an_error() -> None:
    with pytest.raises(ValueError, match="needs a lawful_basis"):
        decide("erasure", "customer", parse_details({"categories": ["hobbies"]}), RECEIPT, POLICY)


def test_malformed_details_name_the_field_not_the_value() -> None:
    with pytest.raises(ValueError, match=r"details\.contract_end_date") as err:
        parse_details({"contract_end_date": "31/06/2026-secret"})
    assert "secret" not in str(err.value)


def test_fifth_access_request_in_twelve_months_is_flagged_never_refused() -> None:
    history = [date(2026, 3, 16), date(2026, 6, 1), date(2026, 9, 1), date(2026, 12, 1)]
    d = decide("access", "customer", parse_details({}), date(2027, 3, 15), POLICY, history)
    assert d.flags == ["art12_5_review"]
    assert d.frequency is not None and d.frequency["count_in_window"] == 5
    assert d.frequency["auto_refuse"] is False
    fourth = decide("access", "customer", parse_details({}), date(2027, 3, 15), POLICY, history[1:])
    assert fourth.flags == [] and not fourth.anything


def test_objection_to_direct_marketing_is_a_suppression() -> None:
    d = decide("objection", "prospect", parse_details({}), RECEIPT, POLICY)
    assert d.work_case == "obj"
    assert d.work == [
        {
            "category": "direct_marketing",
            "action": "suppress",
            "ground": "Art 21(2)-(3) objection to direct marketing",
        }
    ]


def test_other_objection_goes_to_a_balancing_review() -> None:
    details = parse_details({"purpose": "fraud_analytics", "lawful_basis": "legitimate_interest"})
    d = decide("objection", "customer", details, RECEIPT, POLICY)
    assert d.work == [] and d.flags == ["art21_1_balancing_review"]
    assert d.objection is not None and d.objection["balancing_test"] is True


def test_post_mortem_heirs_default_rights() -> None:
    details = parse_details(
        {
            "requester_role": "heir",
            "proofs": ["death_certificate", "proof_of_heir_status"],
            "requested_actions": ["close_user_accounts", "full_communication_of_data"],
        }
    )
    d = decide("post_mortem", "customer", details, RECEIPT, POLICY)
    assert d.post_mortem is not None
    assert d.post_mortem["allowed_actions"] == ["close_user_accounts"]
    assert d.post_mortem["refused_actions"] == ["full_communication_of_data"]
    assert d.flags == ["partial_refusal"]


def test_post_mortem_valid_directives_bind_the_heirs() -> None:
    details = parse_details(
        {
            "requester_role": "heir",
            "directives": {
                "type": "particular",
                "specific_consent": True,
                "registered_with_controller": True,
                "content": ["no_communication_to_anyone"],
                "designated_person": "executor_x",
            },
            "requested_actions": ["full_communication_of_data"],
        }
    )
    d = decide("post_mortem", "customer", details, RECEIPT, POLICY)
    assert d.post_mortem is not None and d.post_mortem["allowed_actions"] == []
    assert d.post_mortem["competent_requester"] == "executor_x"


DIRECTIVE = {
    "type": "particular",
    "specific_consent": True,
    "registered_with_controller": True,
    "content": ["erase_all_data"],
    "designated_person": "executor_x",
}


def test_post_mortem_directive_ordering_erasure_decides_like_an_erasure_request() -> None:
    # Issue 10 item 10: per-category decisions and erasure work shaped like R-DSR-6; the
    # invoices (C. com. L123-22) stay restricted until their own end.
    details = parse_details(
        {
            "requester_role": "designated_person",
            "requester_id": "executor_x",
            "directives": DIRECTIVE,
            "requested_actions": ["erase_all_data"],
            "date_of_death": "2027-02-10",
            "categories": [
                "profile",
                "marketing",
                "customer",
                {
                    "category": "invoices",
                    "lawful_basis": "legal_obligation",
                    "financial_year_end": "2026-12-31",
                },
            ],
        }
    )
    d = decide("post_mortem", "customer", details, RECEIPT, POLICY)
    got = {x["category"]: (x["action"], x.get("retain_until")) for x in d.decisions}
    assert got == {
        "profile": ("erase", None),
        "marketing": ("erase", None),
        "customer": ("retain_restricted", date(2032, 2, 10)),
        "invoices": ("retain_restricted", date(2036, 12, 31)),
    }
    assert d.decisions[0]["ground"] == "LIL art 85: the deceased's directives order erasure"
    assert d.work_case == "req"
    assert [(w["category"], w["action"], w.get("retain_until")) for w in d.work] == [
        ("profile", "erase", None),
        ("marketing", "erase", None),
        ("customer", "restrict", date(2032, 2, 10)),
        ("invoices", "restrict", date(2036, 12, 31)),
    ]
    assert d.post_mortem is not None and d.post_mortem["erasure_ordered"] is True
    assert "partial_refusal" not in d.flags


def test_post_mortem_erasure_defaults_to_the_subject_kind_categories() -> None:
    details = parse_details(
        {
            "requester_role": "designated_person",
            "directives": DIRECTIVE,
            "requested_actions": ["erase_all_data"],
            "contract_end_date": "2027-02-10",
        }
    )
    d = decide("post_mortem", "customer", details, RECEIPT, POLICY)
    assert [(x["category"], x["action"]) for x in d.decisions] == [
        ("profile", "erase"),
        ("marketing", "erase"),
        ("customer", "retain_restricted"),
        ("accounting", "retain_restricted"),
    ]


def test_post_mortem_without_an_erasure_order_sends_no_work() -> None:
    heir = {"requester_role": "heir", "directives": DIRECTIVE, "categories": ["profile"]}
    d = decide("post_mortem", "customer", parse_details(heir), RECEIPT, POLICY)
    assert d.decisions == [] and d.work == [] and d.work_case is None
    assert d.post_mortem is not None and d.post_mortem["erasure_ordered"] is False


def test_post_mortem_retention_without_an_end_is_flagged() -> None:
    details = parse_details(
        {"requester_role": "designated_person", "directives": DIRECTIVE, "categories": ["customer"]}
    )
    d = decide("post_mortem", "customer", details, RECEIPT, POLICY)
    assert d.decisions[0]["action"] == "retain_restricted" and "retain_until" not in d.decisions[0]
    assert "retention_end_unknown" in d.flags
