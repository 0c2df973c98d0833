"""One contract for the blob store, run on MemoryBlobs and on MongoBlobs (embedded MongoDB)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.blobs import (
    CHUNKS,
    BlobMissing,
    BlobStore,
    BlobTooLarge,
    MemoryBlobs,
    MemoryKeys,
    MongoBlobs,
)
from shared.mongo import service_database
from shared.settings import Settings
from shared.subject_vault import SubjectVault

NOW = datetime(2027, 3, 6, 9, tzinfo=UTC)
KID = "case:req:R-1"
SMALL = 1000  # chunk size in the tests: several chunks per blob


@dataclass
class Store:
    blobs: BlobStore
    destroy: Callable[[str], Awaitable[bool]]


async def stream(data: bytes, piece: int = 333) -> AsyncIterator[bytes]:
    for start in range(0, len(data), piece):
        yield data[start : start + piece]


async def read_all(blobs: BlobStore, blob_id: str, kid: str = KID) -> bytes:
    return b"".join([p async for p in blobs.read(blob_id, kid)])


class BlobContract:
    """Behaviour every BlobStore has; subclasses give ``store``."""

    @pytest.fixture
    def store(self) -> Store:
        raise NotImplementedError

    async def test_a_blob_reads_back_as_written_in_fixed_chunks(self, store: Store) -> None:
        data = os.urandom(4_321)
        info = await store.blobs.write("upload:a", KID, stream(data), now=NOW)
        assert (info.blob_id, info.size, info.chunks) == ("upload:a", 4_321, 5)
        assert info.sha256 == hashlib.sha256(data).hexdigest()
        assert await store.blobs.info("upload:a") == info
        pieces = [p async for p in store.blobs.read("upload:a", KID)]
        assert b"".join(pieces) == data and [len(p) for p in pieces] == [SMALL] * 4 + [321]

    async def test_an_empty_blob_exists_with_no_chunks(self, store: Store) -> None:
        info = await store.blobs.write("upload:empty", KID, stream(b""), now=NOW)
        assert (info.size, info.chunks) == (0, 0)
        assert await read_all(store.blobs, "upload:empty") == b""

    async def test_an_unknown_blob_is_missing(self, store: Store) -> None:
        assert await store.blobs.info("upload:none") is None
        with pytest.raises(BlobMissing):
            await read_all(store.blobs, "upload:none")

    async def test_rewriting_an_id_replaces_the_blob(self, store: Store) -> None:
        await store.blobs.write("package:R-1", KID, stream(b"x" * 5_000), now=NOW)
        info = await store.blobs.write("package:R-1", KID, stream(b"short"), now=NOW)
        assert info.chunks == 1 and await read_all(store.blobs, "package:R-1") == b"short"
        assert await store.blobs.info("package:R-1") == info

    async def test_over_the_limit_nothing_is_kept(self, store: Store) -> None:
        with pytest.raises(BlobTooLarge, match="limit of 2500"):
            await store.blobs.write("upload:big", KID, stream(b"y" * 2_501), now=NOW, limit=2_500)
        assert await store.blobs.info("upload:big") is None
        await store.blobs.write("upload:big", KID, stream(b"y" * 2_500), now=NOW, limit=2_500)
        with pytest.raises(BlobTooLarge):  # a failed rewrite keeps the complete blob
            await store.blobs.write("upload:big", KID, stream(b"z" * 9_000), now=NOW, limit=2_500)
        assert await read_all(store.blobs, "upload:big") == b"y" * 2_500

    async def test_a_blob_is_visible_only_once_complete(self, store: Store) -> None:
        await store.blobs.write("upload:v", KID, stream(b"old"), now=NOW)
        seen: list[Any] = []

        async def slow() -> AsyncIterator[bytes]:
            for _ in range(4):
                yield b"n" * SMALL
                info = await store.blobs.info("upload:v")
                seen.append((info.size if info else None, await read_all(store.blobs, "upload:v")))

        await store.blobs.write("upload:v", KID, slow(), now=NOW)
        assert seen == [(3, b"old")] * 4
        assert await read_all(store.blobs, "upload:v") == b"n" * 4 * SMALL

    async def test_a_failing_stream_leaves_nothing(self, store: Store) -> None:
        async def broken() -> AsyncIterator[bytes]:
            yield b"a" * 3 * SMALL
            raise ConnectionResetError("client went away")

        with pytest.raises(ConnectionResetError):
            await store.blobs.write("upload:broken", KID, broken(), now=NOW)
        assert await store.blobs.info("upload:broken") is None

    async def test_another_key_does_not_open_a_blob(self, store: Store) -> None:
        await store.blobs.write("upload:k", KID, stream(b"secret"), now=NOW)
        await store.blobs.write("upload:other", "case:req:R-2", stream(b"x"), now=NOW)
        with pytest.raises(ValueError, match="context"):
            await read_all(store.blobs, "upload:k", "case:req:R-2")

    async def test_destroying_the_key_shreds_the_blob(self, store: Store) -> None:
        await store.blobs.write("upload:s", "case:req:R-3", stream(b"data " * 500), now=NOW)
        assert await store.destroy("case:req:R-3")
        with pytest.raises(BlobMissing, match="destroyed"):
            await read_all(store.blobs, "upload:s", "case:req:R-3")

    async def test_delete_removes_blobs_and_counts_them(self, store: Store) -> None:
        for name in ("upload:d1", "upload:d2"):
            await store.blobs.write(name, KID, stream(b"q" * 2_500), now=NOW)
        assert await store.blobs.delete(["upload:d1", "upload:d2", "upload:none"]) == 2
        assert await store.blobs.info("upload:d1") is None
        assert await store.blobs.delete([]) == 0
        with pytest.raises(BlobMissing):
            await read_all(store.blobs, "upload:d2")


class TestMemoryBlobs(BlobContract):
    @pytest.fixture
    def store(self) -> Store:
        keys = MemoryKeys()
        return Store(MemoryBlobs(keys, chunk_size=SMALL), lambda kid: keys.destroy(kid, NOW))


@pytest.mark.integration
class TestMongoBlobs(BlobContract):
    @pytest.fixture
    def store(self, settings: Settings, mongo_client: Any) -> Store:
        db = service_database(mongo_client, settings, "erasure")
        blobs = MongoBlobs(db, chunk_size=SMALL, per_write=3)
        return Store(blobs, lambda kid: SubjectVault(db).destroy(kid, NOW))

    async def test_chunks_are_sealed_text_and_old_generations_go(
        self, store: Store, settings: Settings, mongo_client: Any
    ) -> None:
        db = service_database(mongo_client, settings, "erasure")
        await store.blobs.write("upload:t", KID, stream(b"alice@example.org;" * 300), now=NOW)
        await store.blobs.write("upload:t", KID, stream(b"bob@example.org;" * 100), now=NOW)
        docs = [d async for d in db[CHUNKS].find({"blob": "upload:t"})]
        assert len(docs) == 2 and {type(d["c"]) for d in docs} == {str}
        assert "example.org" not in json.dumps(docs)
        assert await store.blobs.delete(["upload:t"]) == 1
        assert await db[CHUNKS].count_documents({"blob": "upload:t"}) == 0
