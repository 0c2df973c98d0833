"""The register of processing (Art 30) in the policy profile: validation, seeds, hashes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.rules.policy import PolicyError, default_policy, load_policy
from shared.rules.register import (
    CONTROLLER_PART,
    SystemLink,
    part_hashes,
    register_changes,
)

PROFILES = Path(__file__).resolve().parents[2] / "examples" / "policies"
SEEDS = ["serenicity", "senef", "seipra-score", "msi"]
ART30_LISTS = ("purposes", "legal_bases", "data_subjects", "data_categories", "recipients")


def activity(ident: str, **over: Any) -> dict[str, Any]:
    base = {
        "id": ident,
        "name": ident.title(),
        "purposes": ["p"],
        "legal_bases": ["contract"],
        "data_subjects": ["customers"],
        "data_categories": ["identity"],
        "recipients": ["staff"],
        "security_measures": ["access control"],
    }
    return {**base, **over}


def profile(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "x",
        "retention": {
            "customer": {
                "start_event": "contract_end",
                "duration_months": 60,
                "basis": "b",
                "activity": "customers",
            },
        },
        "register": {
            "controller": {"organisation": "X", "contact": {"name": "X", "email": "p@x.example"}},
            "activities": [activity("customers")],
        },
    }
    return {**base, **over}


def load(tmp_path: Path, raw: dict[str, Any]) -> Any:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_policy(path)


def error(tmp_path: Path, raw: dict[str, Any]) -> str:
    with pytest.raises(PolicyError) as info:
        load(tmp_path, raw)
    text = str(info.value)
    assert "\n" not in text
    return text


def test_minimal_profile_with_register_loads(tmp_path: Path) -> None:
    policy = load(tmp_path, profile())
    assert policy.records.ids() == ["customers"]


def test_retention_category_without_activity_is_one_clear_line(tmp_path: Path) -> None:
    raw = profile()
    del raw["retention"]["customer"]["activity"]
    text = error(tmp_path, raw)
    assert "retention category 'customer' has no register entry" in text
    assert "customers" in text  # the known ids, to pick from


def test_retention_category_pointing_at_unknown_activity(tmp_path: Path) -> None:
    raw = profile()
    raw["retention"]["customer"]["activity"] = "clients"
    text = error(tmp_path, raw)
    assert "retention category 'customer' points at unknown register activity 'clients'" in text


def test_profile_without_register_is_refused(tmp_path: Path) -> None:
    raw = profile()
    del raw["register"]
    assert "register: Field required" in error(tmp_path, raw)


def test_activity_without_retention_needs_a_note(tmp_path: Path) -> None:
    raw = profile()
    raw["register"]["activities"].append(activity("newsletter"))
    assert "register activity 'newsletter' has no retention" in error(tmp_path, raw)
    raw["register"]["activities"][-1]["retention_note"] = "until unsubscription"
    assert load(tmp_path, raw).records.ids() == ["customers", "newsletter"]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"purposes": []}, "purposes"),
        ({"recipients": []}, "recipients"),
        ({"security_measures": []}, "security_measures"),
        ({"id": "Not An Id"}, "id"),
        (
            {"transfers": [{"recipient": "r", "country": "US", "safeguard": "art_49_derogation"}]},
            "Art 49(1) transfer needs its safeguards documented",
        ),
    ],
)
def test_incomplete_activity_is_refused(
    tmp_path: Path, change: dict[str, Any], fragment: str
) -> None:
    raw = profile()
    raw["register"]["activities"] = [activity("customers", **change)]
    assert fragment in error(tmp_path, raw)


def test_controller_contact_must_be_reachable(tmp_path: Path) -> None:
    raw = profile()
    raw["register"]["controller"]["contact"] = {"name": "X"}
    assert "contact needs an email, phone or address" in error(tmp_path, raw)


def test_duplicate_activity_ids(tmp_path: Path) -> None:
    raw = profile()
    raw["register"]["activities"] = [activity("customers"), activity("customers")]
    assert "duplicate register activity ids: customers" in error(tmp_path, raw)


@pytest.mark.parametrize("name", SEEDS)
def test_seed_profile_has_a_complete_register(name: str) -> None:
    policy = load_policy(PROFILES / f"{name}.yaml")
    register = policy.records
    assert register.controller.organisation
    contact = register.controller.contact
    assert contact.email or contact.phone or contact.address
    ids = set(register.ids())
    assert {"customers", "prospecting", "accounting"} <= ids  # the example registry's
    assert {e.activity for e in policy.retention.values()} == ids
    for entry in register.activities:
        assert all(getattr(entry, field) for field in ART30_LISTS), entry.id
        assert entry.security_measures
        assert entry.assumptions, f"{entry.id}: what is assumed must be said"
    doc = policy.register_document({})
    assert all(a.retention for a in doc.activities)  # Art 30(1)(f) from the schedule


def test_default_policy_has_a_register_for_every_category() -> None:
    policy = default_policy()
    doc = policy.register_document({})
    covered = {line.category for a in doc.activities for line in a.retention}
    assert covered == set(policy.retention)


def test_hash_is_stable_and_diffs_name_the_changed_activity(tmp_path: Path) -> None:
    raw = profile()
    raw["register"]["activities"].append(activity("prospecting", retention_note="3 y"))
    first = load(tmp_path, raw).register_document({})
    again = load(tmp_path, raw).register_document({})
    assert first.hash == again.hash and len(first.hash) == 64
    raw["register"]["activities"][1]["purposes"] = ["newsletters"]
    changed = load(tmp_path, raw).register_document({})
    assert changed.hash != first.hash
    assert register_changes(part_hashes(first), part_hashes(changed)) == {
        "added": [],
        "removed": [],
        "changed": ["prospecting"],
    }


def test_system_links_are_part_of_the_register() -> None:
    policy = default_policy()
    alone = policy.register_document({})
    link = SystemLink(system="crm", categories=("profile",), processor=True)
    linked = policy.register_document({"customers": [link]})
    assert linked.hash != alone.hash
    assert linked.activities[0].systems == (link,)
    diff = register_changes(part_hashes(alone), part_hashes(linked))
    assert diff["changed"] == ["customers"]
    assert CONTROLLER_PART not in diff["changed"]


def test_additions_and_removals() -> None:
    assert register_changes({"a": "1", "b": "2"}, {"b": "2", "c": "3"}) == {
        "added": ["c"],
        "removed": ["a"],
        "changed": [],
    }
