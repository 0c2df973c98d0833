"""One normalisation and one keyed hash for every service (shared/pseudonyms.py)."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from shared.pseudonyms import (
    Pseudonymiser,
    PseudonymKeyError,
    decode_key,
    ensure_key_file,
    generate_key,
    load_pseudonymiser,
)
from shared.settings import Settings

KEY = bytes(range(32))


def test_case_and_spaces_do_not_change_the_pseudonym() -> None:
    p = Pseudonymiser(KEY)
    assert p.ref("Alice@Example.com") == p.ref("  alice@example.com ")
    assert p.ref("alice@example.com") != p.ref("bob@example.com")


def test_the_pseudonym_is_keyed_not_a_plain_hash() -> None:
    ref = Pseudonymiser(KEY).ref("alice@example.com")
    assert ref != hashlib.sha256(b"alice@example.com").hexdigest()
    assert ref != Pseudonymiser(bytes(32)).ref("alice@example.com")


def test_refs_skip_empty_values_and_deduplicate() -> None:
    p = Pseudonymiser(KEY)
    refs = p.refs({"email": "A@x.fr", "alias": "a@x.fr", "customer_id": "", "phone": None})
    assert refs == [p.ref("a@x.fr")]


def test_short_key_is_refused() -> None:
    with pytest.raises(PseudonymKeyError, match="at least 32 bytes"):
        Pseudonymiser(b"short")


def test_generated_key_round_trips_as_hex() -> None:
    assert len(decode_key(generate_key())) == 32


def test_key_file_is_created_once_private(tmp_path: Path) -> None:
    path = ensure_key_file(tmp_path / "k" / "pseudonym.key")
    first = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ensure_key_file(path)
    assert path.read_text() == first
    assert load_pseudonymiser(None, path).key == decode_key(first)


def test_missing_key_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(PseudonymKeyError) as info:
        load_pseudonymiser(None, tmp_path / "absent.key")
    assert "\n" not in str(info.value)
    assert "GARDIEN_PSEUDONYM_KEY" in str(info.value)


def test_settings_prefer_the_inline_key(tmp_path: Path) -> None:
    settings = Settings(
        gardien_pseudonym_key=KEY.hex(), gardien_pseudonym_key_file=tmp_path / "none"
    )
    assert settings.pseudonymiser().key == KEY
