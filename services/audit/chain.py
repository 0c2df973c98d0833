"""Pure hash-chain arithmetic: canonical form, record hash, verification."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

GENESIS = "0" * 64
# Fields that are not covered by a record's own hash (the hash itself and storage ids).
UNHASHED = {"hash", "_id"}


def _default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds")
    raise TypeError(f"cannot canonicalise {type(value).__name__}")


def canonical(record: dict[str, Any]) -> bytes:
    """Canonical JSON of a record: sorted keys, no spaces, ms-precision UTC datetimes."""
    body = {k: v for k, v in record.items() if k not in UNHASHED}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=_default).encode()


def record_hash(record: dict[str, Any]) -> str:
    """SHA-256 of the record's canonical form (which includes the previous hash)."""
    return hashlib.sha256(canonical(record)).hexdigest()


@dataclass(frozen=True)
class Problem:
    """The first bad record of a chain and why it is bad."""

    chain: str
    seq: int
    kind: str  # altered | missing | reordered | broken_link
    detail: str


def verify(
    chain: str, records: Iterable[dict[str, Any]], start_seq: int = 1, start_hash: str = GENESIS
) -> tuple[int, str, Problem | None]:
    """Walk records in ``seq`` order; return (last seq, last hash, first problem or None)."""
    expected_seq, prev = start_seq, start_hash
    for rec in records:
        seq = int(rec.get("seq", -1))
        if seq < expected_seq:
            return expected_seq - 1, prev, Problem(chain, seq, "reordered", "sequence goes back")
        if seq > expected_seq:
            return (
                expected_seq - 1,
                prev,
                Problem(
                    chain, expected_seq, "missing", f"records {expected_seq}..{seq - 1} are absent"
                ),
            )
        if record_hash(rec) != rec.get("hash"):
            return expected_seq - 1, prev, Problem(chain, seq, "altered", "content hash differs")
        if rec.get("prev_hash") != prev:
            return (
                expected_seq - 1,
                prev,
                Problem(
                    chain, seq, "broken_link", "previous-hash link does not match the prior record"
                ),
            )
        prev, expected_seq = rec["hash"], seq + 1
    return expected_seq - 1, prev, None
