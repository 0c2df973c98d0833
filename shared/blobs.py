"""Encrypted, chunked blobs (uploads, access packages) in a service's own database.

A blob is written as a stream: the bytes are re-cut into fixed-size chunks, each sealed
with AES-256-GCM under a subject key of the service's ``SubjectVault`` (so destroying that
key shreds the blob with the rest of the subject's data) and bound to its blob, generation
and position. Chunks are stored a few at a time, so memory stays flat whatever the size.

A blob becomes visible only once its last chunk is stored: the chunks are written under
a fresh *generation*, then the head document (size, digest, chunk count, generation) is
replaced; readers follow the head, so a half-written or replaced generation is never
read, and it is deleted afterwards. MongoDB shapes keep to what nx-27017 handles: strings
and integers only (ciphertext as base64 text), one document per chunk.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from shared.errors import GardienError
from shared.subject_vault import KeyShredded, SubjectVault, open_with, seal_with

Document = dict[str, Any]
HEADS = "blobs"
CHUNKS = "blob_chunks"
BLOB_INDEXES = {CHUNKS: [IndexModel([("blob", ASCENDING)], name="blob")]}

CHUNK_SIZE = 256 * 1024  # plaintext bytes per stored chunk
CHUNKS_PER_WRITE = 4  # chunks per insert_many: ~1.4 MB of base64 per round trip


@dataclass(frozen=True)
class BlobInfo:
    """A complete blob: its plaintext size and SHA-256, and how many chunks hold it."""

    blob_id: str
    size: int
    sha256: str
    chunks: int


class BlobTooLarge(GardienError):
    """The stream went past the write's limit; nothing of it was kept."""


class BlobMissing(GardienError):
    """No complete blob with that id, or its key was destroyed (the blob is noise)."""


class BlobStore(Protocol):
    """Where blobs live: MongoDB in a service, memory in tests (one contract suite)."""

    async def write(
        self,
        blob_id: str,
        kid: str,
        chunks: AsyncIterable[bytes],
        *,
        now: datetime,
        limit: int | None = None,
    ) -> BlobInfo:
        """Stream ``chunks`` in sealed under ``kid``; visible once complete; replaces."""
        ...

    def read(self, blob_id: str, kid: str) -> AsyncIterator[bytes]:
        """The plaintext, chunk by chunk (``BlobMissing`` when absent or shredded)."""
        ...

    async def info(self, blob_id: str) -> BlobInfo | None:
        """The complete blob's description, or None."""
        ...

    async def delete(self, blob_ids: Sequence[str]) -> int:
        """Delete these blobs (all generations); how many existed."""
        ...


class ChunkKeys(Protocol):
    """What a blob store needs of a vault: seal and open bytes under a subject key."""

    async def seal_bytes(self, kid: str, data: bytes, aad: str, now: datetime | None) -> str: ...

    async def open_bytes(self, kid: str, sealed: str, aad: str) -> bytes | None: ...


def chunk_aad(blob_id: str, generation: str, index: int) -> str:
    """What a chunk is bound to: a chunk moved to another blob or place does not open."""
    return f"blob|{blob_id}|{generation}|{index}"


def new_generation() -> str:
    """A random generation id for one write of a blob."""
    return os.urandom(8).hex()


async def rechunk(chunks: AsyncIterable[bytes], size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
    """The stream re-cut into pieces of exactly ``size`` bytes (the last may be shorter)."""
    pending = bytearray()
    async for piece in chunks:
        pending += piece
        while len(pending) >= size:
            yield bytes(pending[:size])
            del pending[:size]
    if pending:
        yield bytes(pending)


@dataclass
class Tally:
    """Running size and digest of a blob being written; raises past ``limit``."""

    blob_id: str
    limit: int | None
    size: int = 0
    count: int = 0
    digest: hashlib._Hash = field(default_factory=hashlib.sha256)

    def add(self, piece: bytes) -> int:
        """Account for one chunk; its index."""
        self.size += len(piece)
        if self.limit is not None and self.size > self.limit:
            raise BlobTooLarge(f"blob {self.blob_id} is over its limit of {self.limit} bytes")
        self.digest.update(piece)
        self.count += 1
        return self.count - 1

    def info(self) -> BlobInfo:
        """The description of what was added."""
        return BlobInfo(self.blob_id, self.size, self.digest.hexdigest(), self.count)


class MemoryKeys:
    """Subject keys in memory (tests, benchmarks): the ``ChunkKeys`` of a vault."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes | None] = {}

    async def seal_bytes(self, kid: str, data: bytes, aad: str, now: datetime | None) -> str:
        if kid not in self.keys:
            self.keys[kid] = AESGCM.generate_key(256)
        key = self.keys[kid]
        if key is None:
            raise KeyShredded(f"the subject key {kid} was destroyed")
        return seal_with(key, kid, data, aad)

    async def open_bytes(self, kid: str, sealed: str, aad: str) -> bytes | None:
        key = self.keys.get(kid)
        return None if key is None else open_with(key, kid, sealed, aad)

    async def destroy(self, kid: str, now: datetime) -> bool:
        """Destroy ``kid`` (a tombstone stays); False if it was destroyed already."""
        was = self.keys.get(kid, b"")
        self.keys[kid] = None
        return was is not None


@dataclass
class _Blob:
    info: BlobInfo
    kid: str
    generation: str
    sealed: list[str]


class MemoryBlobs:
    """Blobs in a dict, sealed like the MongoDB ones (same contract suite)."""

    def __init__(self, keys: ChunkKeys | None = None, chunk_size: int = CHUNK_SIZE) -> None:
        self.keys: ChunkKeys = keys if keys is not None else MemoryKeys()
        self.chunk_size = chunk_size
        self.blobs: dict[str, _Blob] = {}

    async def write(
        self,
        blob_id: str,
        kid: str,
        chunks: AsyncIterable[bytes],
        *,
        now: datetime,
        limit: int | None = None,
    ) -> BlobInfo:
        generation, tally, sealed = new_generation(), Tally(blob_id, limit), []
        async for piece in rechunk(chunks, self.chunk_size):
            index = tally.add(piece)
            aad = chunk_aad(blob_id, generation, index)
            sealed.append(await self.keys.seal_bytes(kid, piece, aad, now))
        info = tally.info()
        self.blobs[blob_id] = _Blob(info, kid, generation, sealed)
        return info

    async def read(self, blob_id: str, kid: str) -> AsyncIterator[bytes]:
        blob = self.blobs.get(blob_id)
        if blob is None:
            raise BlobMissing(f"no blob {blob_id}")
        for index, sealed in enumerate(blob.sealed):
            aad = chunk_aad(blob_id, blob.generation, index)
            piece = await self.keys.open_bytes(kid, sealed, aad)
            if piece is None:
                raise BlobMissing(f"the key of blob {blob_id} was destroyed")
            yield piece

    async def info(self, blob_id: str) -> BlobInfo | None:
        blob = self.blobs.get(blob_id)
        return blob.info if blob else None

    async def delete(self, blob_ids: Sequence[str]) -> int:
        return sum(1 for b in blob_ids if self.blobs.pop(b, None) is not None)


def _chunk_id(blob_id: str, generation: str, index: int) -> str:
    return f"{blob_id}|{generation}|{index}"


class MongoBlobs:
    """Blobs in a service's database: a head per blob (``blobs``), sealed chunks beside it.

    Without ``keys`` each write and read uses a vault of its own on ``db``'s subject keys,
    so a key another replica destroyed is not used from a cache.
    """

    def __init__(
        self,
        db: AsyncDatabase[Document],
        keys: ChunkKeys | None = None,
        chunk_size: int = CHUNK_SIZE,
        per_write: int = CHUNKS_PER_WRITE,
    ) -> None:
        self.db, self._keys = db, keys
        self.heads, self.chunks = db[HEADS], db[CHUNKS]
        self.chunk_size, self.per_write = chunk_size, per_write

    def _vault(self) -> ChunkKeys:
        return self._keys if self._keys is not None else SubjectVault(self.db)

    async def write(
        self,
        blob_id: str,
        kid: str,
        chunks: AsyncIterable[bytes],
        *,
        now: datetime,
        limit: int | None = None,
    ) -> BlobInfo:
        generation, tally, vault = new_generation(), Tally(blob_id, limit), self._vault()
        try:
            await self._write_chunks(blob_id, kid, generation, chunks, tally, vault, now)
        except BaseException:
            await self.chunks.delete_many({"blob": blob_id, "gen": generation})
            raise
        info = tally.info()
        old = await self.heads.find_one({"_id": blob_id}, {"gen": 1})
        head = {
            "gen": generation,
            "size": info.size,
            "sha256": info.sha256,
            "chunks": info.chunks,
            "written_at": now.isoformat(),
        }
        # nx-27017: an upserting replace takes _id from the replacement, not the filter.
        await self.heads.replace_one({"_id": blob_id}, {"_id": blob_id, **head}, upsert=True)
        if old is not None and old.get("gen") != generation:
            await self.chunks.delete_many({"blob": blob_id, "gen": old.get("gen")})
        return info

    async def _write_chunks(
        self,
        blob_id: str,
        kid: str,
        generation: str,
        chunks: AsyncIterable[bytes],
        tally: Tally,
        vault: ChunkKeys,
        now: datetime,
    ) -> None:
        batch: list[Document] = []
        async for piece in rechunk(chunks, self.chunk_size):
            index = tally.add(piece)
            sealed = await vault.seal_bytes(kid, piece, chunk_aad(blob_id, generation, index), now)
            cid = _chunk_id(blob_id, generation, index)
            batch.append({"_id": cid, "blob": blob_id, "gen": generation, "i": index, "c": sealed})
            if len(batch) >= self.per_write:
                await self.chunks.insert_many(batch)
                batch = []
        if batch:
            await self.chunks.insert_many(batch)

    async def read(self, blob_id: str, kid: str) -> AsyncIterator[bytes]:
        head = await self.heads.find_one({"_id": blob_id})
        if head is None:
            raise BlobMissing(f"no blob {blob_id}")
        generation, count, vault = str(head["gen"]), int(head["chunks"]), self._vault()
        for start in range(0, count, self.per_write):
            indexes = range(start, min(start + self.per_write, count))
            ids = [_chunk_id(blob_id, generation, i) for i in indexes]
            found = {d["_id"]: d async for d in self.chunks.find({"_id": {"$in": ids}})}
            for index, cid in zip(indexes, ids, strict=True):
                if cid not in found:
                    raise BlobMissing(f"blob {blob_id} was replaced or deleted while read")
                aad = chunk_aad(blob_id, generation, index)
                piece = await vault.open_bytes(kid, str(found[cid]["c"]), aad)
                if piece is None:
                    raise BlobMissing(f"the key of blob {blob_id} was destroyed")
                yield piece

    async def info(self, blob_id: str) -> BlobInfo | None:
        head = await self.heads.find_one({"_id": blob_id})
        if head is None:
            return None
        return BlobInfo(blob_id, int(head["size"]), str(head["sha256"]), int(head["chunks"]))

    async def delete(self, blob_ids: Sequence[str]) -> int:
        ids = list(blob_ids)
        if not ids:
            return 0
        gone = await self.heads.delete_many({"_id": {"$in": ids}})
        await self.chunks.delete_many({"blob": {"$in": ids}})
        return gone.deleted_count
