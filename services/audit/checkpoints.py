"""Signed checkpoints: the head of every chain, signed with the service's Ed25519 key."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from services.audit import chain as chains
from services.audit import crypto
from services.audit.repository import KeyRepository, Repositories, chain_seq
from services.audit.settings import AuditSettings
from shared.clock import Clock

log = logging.getLogger(__name__)
SIGNING_SECRET = "checkpoint-ed25519"  # noqa: S105 - the vault entry name, not a secret


@dataclass(frozen=True)
class PublicKey:
    """The checkpoint verification key, as third parties receive it."""

    raw: bytes
    key_id: str

    def export(self) -> dict[str, str]:
        return {
            "key_id": self.key_id,
            "algorithm": "Ed25519",
            "public_key": crypto.b64(self.raw),
            "pem": crypto.public_pem(self.raw),
        }


async def public_key(keys: KeyRepository) -> PublicKey:
    """The public half of the checkpoint signing key kept in the vault."""
    raw = crypto.public_raw(crypto.signing_key(await keys.secret(SIGNING_SECRET)))
    return PublicKey(raw, crypto.key_id(raw))


class Checkpointer:
    """Signs chain heads every N records or T seconds, whichever comes first."""

    def __init__(self, repos: Repositories, settings: AuditSettings, clock: Clock) -> None:
        self.repos = repos
        self.settings = settings
        self.clock = clock
        self._since = 0
        self._wake = asyncio.Event()

    async def on_append(self, records: list[dict[str, Any]]) -> None:
        """Count appended records; wake the signer once N have accumulated."""
        self._since += len(records)
        if self._since >= self.settings.checkpoint_every:
            self._wake.set()

    async def sign_heads(self) -> list[dict[str, Any]]:
        """Sign every chain head that moved since its last checkpoint."""
        self._since = 0
        private = crypto.signing_key(await self.repos.keys.secret(SIGNING_SECRET))
        key_id = crypto.key_id(crypto.public_raw(private))
        latest = await self.repos.checkpoints.latest()
        made = []
        for chain, (seq, digest) in sorted((await self.repos.records.all_heads()).items()):
            if chain in latest and int(latest[chain]["seq"]) >= seq:
                continue
            at = self.clock.now().isoformat()
            message = chains.checkpoint_message(chain, seq, digest, at, key_id)
            doc = {
                "_id": chain_seq(chain, seq),
                "chain": chain,
                "seq": seq,
                "hash": digest,
                "at": at,
                "key_id": key_id,
                "signature": crypto.sign(private, message),
            }
            await self.repos.checkpoints.add(doc)
            made.append(doc)
        return made

    async def run(self) -> None:
        """The background loop: sign on N records or every T seconds."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.checkpoint_seconds)
            self._wake.clear()
            try:
                await self.sign_heads()
            except Exception:  # keep signing later; the next round covers this one
                log.exception("checkpoint round failed")


def checkpoint_valid(doc: dict[str, Any], public: bytes) -> bool:
    """Whether a stored checkpoint carries a valid signature by ``public``."""
    message = chains.checkpoint_message(
        str(doc["chain"]), int(doc["seq"]), str(doc["hash"]), str(doc["at"]), str(doc["key_id"])
    )
    return crypto.signature_ok(public, message, str(doc.get("signature", "")))
