"""The example policy profiles load and validate; a bad profile fails clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.rules.policy import PolicyError, default_policy, load_policy

PROFILES = Path(__file__).resolve().parents[2] / "examples" / "policies"
MINIMAL_REGISTER = """\
register:
  controller: {organisation: X, contact: {name: X contact, email: privacy@x.example}}
  activities:
    - id: a
      name: A
      purposes: [p]
      legal_bases: [contract]
      data_subjects: [customers]
      data_categories: [identity]
      recipients: [staff]
      security_measures: [access control]
"""


@pytest.mark.parametrize("name", ["serenicity", "senef", "seipra-score", "msi"])
def test_profile_loads(name: str) -> None:
    policy = load_policy(PROFILES / f"{name}.yaml")
    assert policy.name == name
    assert policy.breach.notification_hours == 72
    assert policy.rights.extension_total_months == 3
    assert policy.retention["customer"].duration_months == 60
    assert policy.retention["prospect"].duration_months == 36


def test_profile_specifics() -> None:
    serenicity = load_policy(PROFILES / "serenicity.yaml")
    assert serenicity.max_retention_months == 60
    assert serenicity.rights.access_max_per_12_months == 4
    assert serenicity.contractual.processor_end_choice == "delete"
    assert serenicity.retention["accounting"].statutory
    seipra = load_policy(PROFILES / "seipra-score.yaml")
    assert "postmortem_directives" in seipra.rights.rights
    assert seipra.retention["candidate"].duration_months == 24
    assert seipra.retention["accounting"].duration_months == 120
    senef = load_policy(PROFILES / "senef.yaml")
    assert senef.rights.erasure_only_after_contract_end
    assert senef.rights.reminder_days() == [7, 1]
    assert senef.breach.reminder_hours() == [48, 24, 6]


def test_default_policy_matches_rules_table() -> None:
    schedule = default_policy().schedule()
    assert schedule["accounting"].months == 120
    assert schedule["cctv"].months == 1


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("name: x\nretention: {}\n", "retention"),
        (
            "name: x\nretention:\n  customer: {start_event: e, duration_months: -1, basis: b}\n",
            "duration_months",
        ),
        (
            "name: x\nbreach: {notification_hours: 96}\nretention:\n"
            "  customer: {start_event: e, duration_months: 60, basis: b}\n",
            "notification_hours",
        ),
        (
            "name: x\nmax_retention_months: 12\nretention:\n"
            "  customer: {start_event: e, duration_months: 60, basis: b, activity: a}\n"
            + MINIMAL_REGISTER,
            "customer",
        ),
        (
            "name: x\nrights: {request_reminders: [7 days]}\nretention:\n"
            "  customer: {start_event: e, duration_months: 60, basis: b}\n",
            "request_reminders",
        ),
        ("- not a mapping\n", "mapping"),
        ("name: [unclosed\n", "YAML"),
    ],
)
def test_bad_profile_gives_clear_error(tmp_path: Path, body: str, fragment: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert info.value.code == "INVALID_POLICY"
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_profile_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "absent.yaml")
