"""Pure hash-chain arithmetic: canonical form, record hash, checkpoints, verification."""

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
KINDS = ("altered", "missing", "reordered", "broken_link", "signature")


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


def checkpoint_message(chain: str, seq: int, digest: str, at: str, key_id: str) -> bytes:
    """The bytes an Ed25519 checkpoint signature covers."""
    body = {"chain": chain, "seq": seq, "hash": digest, "at": at, "key_id": key_id}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Problem:
    """The first bad record of a chain and why it is bad."""

    chain: str
    seq: int
    kind: str  # one of KINDS
    detail: str
    record_id: str | None = None


def position(record: dict[str, Any]) -> int | None:
    """The chain position a record is stored at (its ``chain_seq`` key), if readable."""
    try:
        return int(str(record["chain_seq"]).rsplit("#", 1)[1])
    except (KeyError, IndexError, ValueError):
        return None


@dataclass
class Walk:
    """Verification state of one chain: the last good (seq, hash)."""

    chain: str
    seq: int = 0
    hash: str = GENESIS

    def step(self, rec: dict[str, Any]) -> Problem | None:
        """Check the next record; advance on success, name the problem otherwise."""
        expected, rid = self.seq + 1, rec.get("_id")
        seq = int(rec.get("seq", -1))
        where = position(rec)
        if where is not None and where != seq:
            return Problem(
                self.chain, expected, "reordered", f"record of seq {seq} sits at {where}", rid
            )
        if seq < expected:
            return Problem(self.chain, expected, "reordered", "sequence goes back", rid)
        if seq > expected:
            gap = f"records {expected}..{seq - 1} are absent"
            return Problem(self.chain, expected, "missing", gap, None)
        if record_hash(rec) != rec.get("hash"):
            return Problem(self.chain, seq, "altered", "content hash differs", rid)
        if rec.get("prev_hash") != self.hash:
            detail = "previous-hash link does not match the prior record"
            return Problem(self.chain, seq, "broken_link", detail, rid)
        self.seq, self.hash = seq, str(rec["hash"])
        return None

    def end(self, expected_last: int) -> Problem | None:
        """After the last record: records promised by a head or checkpoint are absent."""
        if expected_last > self.seq:
            gap = f"records {self.seq + 1}..{expected_last} are absent"
            return Problem(self.chain, self.seq + 1, "missing", gap)
        return None


def verify(
    chain: str, records: Iterable[dict[str, Any]], start_seq: int = 1, start_hash: str = GENESIS
) -> tuple[int, str, Problem | None]:
    """Walk records in ``seq`` order; return (last seq, last hash, first problem or None)."""
    walk = Walk(chain, start_seq - 1, start_hash)
    for rec in records:
        problem = walk.step(rec)
        if problem is not None:
            return walk.seq, walk.hash, problem
    return walk.seq, walk.hash, None
