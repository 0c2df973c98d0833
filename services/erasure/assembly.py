"""The package ZIP, streamed from the systems' uploads in the blob store.

Each upload is read three times, never held whole: once to check that it parses and to
learn its CSV columns (a system whose upload does not parse is marked failed, and nothing
of it enters the archive), once for ``records.json``, once for ``records.csv``. The
manifest comes last, when every system's outcome is known. Bytes are yielded as the
compressor produces them, so memory stays flat whatever the size of the answers.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from services.erasure.packages import (
    Outcome,
    PackageOrder,
    SystemAnswer,
    manifest,
    outcome_before_parsing,
    portable_categories,
    record_category,
    system_files,
)
from services.erasure.records import RecordParser, RecordsError, csv_lines, flatten, json_record
from services.erasure.registry import Registry
from services.erasure.zipstream import ZipStream
from shared.blobs import BlobInfo, BlobMissing, BlobStore
from shared.rules import Policy

FLUSH = 64 * 1024  # characters of JSON/CSV text handed to the compressor at once
HELD = 4 * 1024 * 1024  # an upload up to this size is read once and parsed from memory
Keep = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class Sources:
    """What the package is read from and described with."""

    blobs: BlobStore
    policy: Policy
    registry: Registry


class HeldUploads:
    """The blob store, with one small upload held in memory: read once, parsed three times.

    Most answers are a few kilobytes; reading them from the store once instead of three
    times is most of a package's round trips. Larger ones are streamed on every pass.
    """

    def __init__(self, blobs: BlobStore, limit: int | None = None) -> None:
        self.blobs, self.limit = blobs, HELD if limit is None else limit
        self.held: tuple[str, bytes] | None = None

    async def hold(self, blob_id: str, kid: str) -> None:
        """Keep ``blob_id`` in memory if it is small (errors surface when it is read)."""
        self.held = None
        found = await self.blobs.info(blob_id)
        if found is not None and found.size <= self.limit:
            self.held = (blob_id, b"".join([p async for p in self.blobs.read(blob_id, kid)]))

    async def write(
        self,
        blob_id: str,
        kid: str,
        chunks: AsyncIterable[bytes],
        *,
        now: datetime,
        limit: int | None = None,
    ) -> BlobInfo:
        return await self.blobs.write(blob_id, kid, chunks, now=now, limit=limit)

    async def read(self, blob_id: str, kid: str) -> AsyncIterator[bytes]:
        if self.held is not None and self.held[0] == blob_id:
            yield self.held[1]
            return
        async for piece in self.blobs.read(blob_id, kid):
            yield piece

    async def info(self, blob_id: str) -> BlobInfo | None:
        return await self.blobs.info(blob_id)

    async def delete(self, blob_ids: Sequence[str]) -> int:
        return await self.blobs.delete(blob_ids)


async def records(
    sources: Sources, answer: SystemAnswer, kid: str
) -> AsyncIterator[dict[str, Any]]:
    """The records of a system's upload, parsed as they are read."""
    assert answer.blob_id is not None
    parser = RecordParser(answer.content_type)
    async for piece in sources.blobs.read(answer.blob_id, kid):
        for record in parser.feed(piece):
            yield record
    for record in parser.close():
        yield record


def keeper(sources: Sources, order: PackageOrder, answer: SystemAnswer) -> Keep:
    """Which records go in: all for access, the portable categories for portability."""
    if order.right == "access":
        return lambda _: True
    portable = portable_categories(sources.policy, sources.registry, answer)
    return lambda record: record_category(record, answer) in portable


async def scan(
    sources: Sources, order: PackageOrder, answer: SystemAnswer
) -> tuple[Outcome, list[str]]:
    """First pass: does the upload parse, how many records go in, which CSV columns."""
    keep, columns, kept, left = keeper(sources, order, answer), dict[str, None](), 0, 0
    try:
        if isinstance(sources.blobs, HeldUploads) and answer.blob_id is not None:
            await sources.blobs.hold(answer.blob_id, order.kid)
        async for record in records(sources, answer, order.kid):
            if not keep(record):
                left += 1
                continue
            kept += 1
            columns.update(dict.fromkeys(flatten(record)))
    except RecordsError as exc:
        return Outcome("failed", f"the upload does not parse: {exc}"), []
    except BlobMissing:
        return Outcome("failed", "the upload is missing from the store"), []
    except ValueError:  # sealed under another key than the case's
        return Outcome("failed", "the upload does not open under the case's key"), []
    return Outcome("answered", None, kept, left, list(system_files(answer.system))), list(columns)


async def _texts(
    sources: Sources,
    order: PackageOrder,
    answer: SystemAnswer,
    render: Callable[[dict[str, Any]], str],
) -> AsyncIterator[str]:
    keep, pending, size = keeper(sources, order, answer), list[str](), 0
    async for record in records(sources, answer, order.kid):
        if keep(record):
            text = render(record)
            pending.append(text)
            size += len(text)
            if size >= FLUSH:
                yield "".join(pending)
                pending, size = [], 0
    if pending:
        yield "".join(pending)


async def json_entry(
    sources: Sources, order: PackageOrder, answer: SystemAnswer, zipped: ZipStream, when: datetime
) -> AsyncIterator[bytes]:
    """``<system>/records.json``: a JSON array, one record per line."""
    yield zipped.start(system_files(answer.system)[0], when)
    first = [True]

    def render(record: dict[str, Any]) -> str:
        lead = "[\n" if first[0] else ",\n"
        first[0] = False
        return lead + json_record(record)

    async for text in _texts(sources, order, answer, render):
        yield zipped.write(text.encode())
    yield zipped.write(b"[]\n" if first[0] else b"\n]\n")
    yield zipped.end()


async def csv_entry(
    sources: Sources,
    order: PackageOrder,
    answer: SystemAnswer,
    columns: list[str],
    zipped: ZipStream,
    when: datetime,
) -> AsyncIterator[bytes]:
    """``<system>/records.csv``: a header of dotted column names, one row per record."""
    yield zipped.start(system_files(answer.system)[1], when)
    if columns:
        yield zipped.write(csv_lines(columns, [dict(zip(columns, columns, strict=True))]).encode())

    def render(record: dict[str, Any]) -> str:
        return csv_lines(columns, [flatten(record)])

    async for text in _texts(sources, order, answer, render):
        yield zipped.write(text.encode())
    yield zipped.end()


async def package_stream(
    sources: Sources, order: PackageOrder, now: datetime, outcomes: dict[str, Outcome]
) -> AsyncIterator[bytes]:
    """The ZIP's bytes; ``outcomes`` is filled per system as it goes (for the caller)."""
    zipped = ZipStream()
    sources = replace(sources, blobs=HeldUploads(sources.blobs))
    for answer in order.answers:
        known = outcome_before_parsing(answer)
        if known is not None:
            outcomes[answer.system] = known
            continue
        outcome, columns = await scan(sources, order, answer)
        outcomes[answer.system] = outcome
        if outcome.status != "answered":
            continue
        async for piece in json_entry(sources, order, answer, zipped, now):
            yield piece
        async for piece in csv_entry(sources, order, answer, columns, zipped, now):
            yield piece
        if isinstance(sources.blobs, HeldUploads):
            sources.blobs.held = None
    described = manifest(order, sources.policy, sources.registry, outcomes, now)
    text = json.dumps(described.model_dump(mode="json"), ensure_ascii=False, indent=2)
    yield zipped.entry("manifest.json", now, text.encode())
    yield zipped.close()
