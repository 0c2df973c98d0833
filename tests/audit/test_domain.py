"""Pure personal-data separation: what is sealed, what stays in clear."""

from __future__ import annotations

from services.audit import domain


def test_an_order_naming_nobody_has_nothing_to_seal_and_keeps_its_empty_identifiers() -> None:
    order = {"command_id": "proc:m:2027-03-06:m", "action": "delete_all", "identifiers": {}}
    assert domain.subjects_in(order) == [[]]
    assert domain.personal_parts(order) == []
    assert domain.without_personal(order) == order


def test_parts_keep_the_position_of_their_subject_when_another_names_nobody() -> None:
    data = {
        "scope": {
            "subjects": [
                {"kind": "customer", "identifiers": {"email": ""}},
                {"kind": "customer", "identifiers": {"email": "bob@example.org"}},
            ]
        },
        "note": "Bob called",
    }
    parts = domain.personal_parts(data)
    assert [(p.path, p.subject) for p in parts] == [
        ("scope.subjects.1.identifiers", 1),
        ("note", None),
    ]
    assert domain.subjects_in(data)[1] == ["bob@example.org"]
    clean = domain.without_personal(data)
    assert clean["scope"]["subjects"][1] == {"kind": "customer"}
    assert "note" not in clean


def test_key_generations_only_a_new_request_or_contract_renews_a_destroyed_key() -> None:
    gen = domain.generation_for
    assert gen(None, [], False, True) == 1  # first use
    assert gen((1, True), [], False, False) == 1  # live key
    assert gen((1, False), [], False, True) == 2  # new request after the erasure
    assert gen((1, False), [], False, False) == 1  # nothing new: the destroyed generation
    assert gen((1, False), [], True, True) == 1  # an aggregate seen before: not new
    assert gen((2, True), [1], True, True) == 1  # the old case's late record: its generation
    assert gen((2, True), [2], True, True) == 2  # the new request's next record
