"""One pseudonym for a subject everywhere: one normalisation, one keyed hash (HMAC-SHA256).

Every service derives the same reference from the same identifier, so a legal hold on
``Alice@Example.com`` in deadlines matches a request for ``alice@example.com`` in intake and
the audit trail's ``?subject=`` look-up. The key is a deployment secret shared by all
services (``GARDIEN_PSEUDONYM_KEY`` or the file ``GARDIEN_PSEUDONYM_KEY_FILE``): without it a
reference cannot be recomputed from a guessed e-mail (an unkeyed hash falls to a dictionary).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shared.errors import GardienError

MIN_KEY_BYTES = 32


class PseudonymKeyError(GardienError):
    """The pseudonymisation key is missing or unusable; the message is one line."""


def normalise_identifier(value: str) -> str:
    """The form every identifier is hashed in: trimmed and case-folded."""
    return value.strip().casefold()


@dataclass(frozen=True)
class Pseudonymiser:
    """Keyed hashes of subject identifiers (never reversible without the key)."""

    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.key) < MIN_KEY_BYTES:
            raise PseudonymKeyError(
                f"the pseudonymisation key must be at least {MIN_KEY_BYTES} bytes"
            )

    def ref(self, identifier: str) -> str:
        """The keyed hash of one identifier (hex HMAC-SHA256 of its normal form)."""
        data = normalise_identifier(identifier).encode()
        return hmac.new(self.key, data, hashlib.sha256).hexdigest()

    def refs(self, identifiers: Mapping[str, object]) -> list[str]:
        """Sorted, de-duplicated references of every non-empty identifier value."""
        values = {str(v) for v in identifiers.values() if v is not None and str(v).strip()}
        return sorted({self.ref(v) for v in values})


def decode_key(text: str) -> bytes:
    """A key written as hex or base64 (url-safe or not), as ``generate_key`` writes it."""
    text = text.strip()
    try:
        return bytes.fromhex(text)
    except ValueError:
        pass
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=False)
    except (binascii.Error, ValueError):
        raise PseudonymKeyError("the pseudonymisation key is neither hex nor base64") from None


def generate_key() -> str:
    """A new random key, hex-encoded (what ``gardien up`` writes to its key file)."""
    return secrets.token_hex(MIN_KEY_BYTES)


def load_pseudonymiser(inline: str | None, path: Path | None) -> Pseudonymiser:
    """The deployment's pseudonymiser from the inline key, else the key file."""
    if inline:
        return Pseudonymiser(decode_key(inline))
    if path is None:
        raise PseudonymKeyError("no pseudonymisation key: set GARDIEN_PSEUDONYM_KEY")
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise PseudonymKeyError(
            f"no pseudonymisation key: {path} does not exist; set GARDIEN_PSEUDONYM_KEY"
            " or GARDIEN_PSEUDONYM_KEY_FILE (gardien up creates one)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PseudonymKeyError(f"cannot read the pseudonymisation key {path}: {exc}") from None
    return Pseudonymiser(decode_key(text))


def ensure_key_file(path: Path) -> Path:
    """Create the key file (mode 0600) when it does not exist yet; never overwrite one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(generate_key() + "\n")
    return path
