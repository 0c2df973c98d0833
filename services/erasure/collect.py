"""Collection use cases (access, portability): open the cases, take the systems' answers and
uploads, and have the package built once every system is done (``collection.py`` decides).

They run on the erasure use cases (``Erasure``): same repositories, batches, lost races,
outbox relay, HTTP connector and sweeper. The blob store and the package builder are the
package side's (``shared/blobs.py``, ``services/erasure/packages.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from services.erasure import collection
from services.erasure.collection import UploadRefused
from services.erasure.domain import Case, Effect
from services.erasure.exports import CONTENT_TYPES, Counted, Upload, upload_blob_id
from services.erasure.packages import PackageOrder, SystemAnswer
from services.erasure.uploads import check
from services.erasure.usecases import Erasure, Item, Refusals, Step
from shared.blobs import BlobStore, BlobTooLarge
from shared.events.inbound import ExportResult
from shared.events.internal import AccessWorkRequested

log = logging.getLogger(__name__)
BUILD_RETRY = timedelta(seconds=60)
TOKEN_STATUS = {"missing": 401, "malformed": 401, "wrong": 403, "expired": 403}


class PackageBuilder(Protocol):
    """What collection needs of the package side (``Packages`` in ``package_store.py``)."""

    async def expect(self, request_ids: Sequence[str], now: datetime) -> None: ...

    async def build(self, order: PackageOrder, now: datetime) -> Any: ...


@dataclass
class Collector:
    """The collection use cases, on the erasure ones and the package side's ports."""

    erasure: Erasure
    blobs: BlobStore
    packages: PackageBuilder
    upload_key: bytes

    async def open(self, works: Sequence[tuple[str, AccessWorkRequested]]) -> Refusals:
        """Open a collection case per work item (once each, whatever the deliveries)."""
        if not works:
            return {}
        erasure = self.erasure
        with erasure.span("erasure.open_collections") as span:
            span.set_attribute("gardien.batch", len(works))
            now, registry = erasure.clock.now(), await erasure._routed()
            items = []
            for event_id, work in works:
                case = collection.plan_collection(work, registry, erasure.settings, now)
                case.subject_refs = erasure.refs(work.subject.identifiers.present())
                items.append(Item(case.case_id, event_id, erasure._opening, new=case))
            refused = await erasure.apply_steps(items)
            # the downloads say "not ready" until built
            await self.packages.expect([work.request_id for _, work in works], now)
            return refused

    async def results(self, results: Sequence[tuple[str, ExportResult]]) -> Refusals:
        """Apply ``gdpr.export.result`` answers, per case in order; duplicates change nothing."""

        def step_of(key: str, data: ExportResult) -> Step:
            counted = Counted(records=data.records, bytes=data.bytes)
            return self.erasure.export_step(key, data.outcome.value, counted, data.detail)

        return await self.erasure.apply_answers(results, step_of, "erasure.record_exports")

    async def upload(
        self,
        command_id: str,
        token: str | None,
        content_type: str | None,
        body: AsyncIterable[bytes],
    ) -> Upload:
        """Stream one system's data into the blob store; ``UploadRefused`` says why not."""
        now = self.erasure.clock.now()
        self.authorise(command_id, token)
        kind = CONTENT_TYPES.get((content_type or "").split(";")[0].strip().lower())
        if kind is None:
            raise UploadRefused(415, "send application/json or application/x-ndjson")
        case_id, _, key = command_id.rpartition(":")
        case = await self._case(case_id)
        collection.accept_upload(case, key)
        assert case.collection is not None  # accept_upload refuses other cases
        blob_id = upload_blob_id(command_id)
        limit = self.erasure.settings.upload_max_bytes
        try:
            info = await self.blobs.write(blob_id, case.collection.kid, body, now=now, limit=limit)
        except BlobTooLarge:
            raise UploadRefused(413, f"the upload is larger than {limit} bytes") from None
        upload = Upload(
            blob_id=blob_id, size=info.size, sha256=info.sha256, content_type=kind, at=now
        )
        await self._record(case_id, key, upload)
        return upload

    def authorise(self, command_id: str, token: str | None) -> None:
        """Refuse (401, 403) a token that is missing, malformed, wrong or expired."""
        verdict = check(self.upload_key, command_id, token, self.erasure.clock.now())
        if verdict != "ok":
            raise UploadRefused(TOKEN_STATUS[verdict], f"upload token {verdict}")

    async def _case(self, case_id: str) -> Case:
        found = await self.erasure.repos.cases.get_many([case_id])
        if case_id not in found:
            raise UploadRefused(404, "no such export command")
        return found[case_id].case

    async def _record(self, case_id: str, key: str, upload: Upload) -> None:
        def step(case: Case) -> list[Effect] | None:
            return collection.uploaded(case, key, upload)

        refused = await self.erasure.apply_steps([Item(case_id, None, step)])
        if refused:  # the case closed while the data streamed in: keep nothing
            await self.blobs.delete([upload.blob_id])
            reason = next(iter(refused.values()))
            raise reason if isinstance(reason, UploadRefused) else UploadRefused(409, str(reason))

    async def build_ready(self, cases: list[Case]) -> None:
        """Build the packages of the cases ready for one (together), then close each on it."""
        now = self.erasure.clock.now()
        built = await asyncio.gather(*(self._build(c, now) for c in cases), return_exceptions=True)
        items = []
        for case, package_id in zip(cases, built, strict=True):
            if isinstance(package_id, asyncio.CancelledError):
                raise package_id
            if isinstance(package_id, BaseException):  # the store may be briefly away
                log.error("package of case %s not built: %r", case.case_id, package_id)
                items.append(Item(case.case_id, None, _retry(now + BUILD_RETRY)))
            else:
                items.append(Item(case.case_id, None, _built(package_id, now)))
        await self.erasure.apply_steps(items)

    async def _build(self, case: Case, now: datetime) -> str:
        coll = case.collection
        assert coll is not None  # only collection cases are ever ready
        assert case.request_id is not None
        order = PackageOrder(
            request_id=case.request_id,
            right=coll.right,
            kid=coll.kid,
            answers=[SystemAnswer(**a) for a in collection.answers(case)],
            received_at=coll.received_at,
            subject=min(case.subject_refs) if case.subject_refs else None,
        )
        info = await self.packages.build(order, now)
        return str(getattr(info, "package_id", None) or f"package:{case.request_id}")


def _built(package_id: str, now: datetime) -> collection.Step:
    def step(case: Case) -> list[Effect] | None:
        return collection.built(case, package_id, now)

    return step


def _retry(at: datetime) -> collection.Step:
    def step(case: Case) -> list[Effect] | None:
        return collection.build_failed(case, at)

    return step
