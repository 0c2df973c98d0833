"""Webhook delivery: the writer queues in MongoDB, a background sender signs and retries."""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from services.audit import crypto, webhooks
from services.audit.repository import Repositories
from services.audit.settings import AuditSettings
from shared.clock import Clock

log = logging.getLogger(__name__)
SECRETS_KEY = "webhook-secrets"  # the vault entry name
LEASE_MS = 60_000
LocalRecord = Callable[[str, str, dict[str, Any]], Awaitable[None]]


def ms(clock: Clock) -> int:
    return int(clock.now().timestamp() * 1000)


class Dispatcher:
    """Queues deliveries of audited records and sends them without blocking the writer."""

    def __init__(
        self,
        repos: Repositories,
        settings: AuditSettings,
        clock: Clock,
        audit_local: LocalRecord,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.repos, self.settings, self.clock = repos, settings, clock
        self.audit_local = audit_local
        self.rng = rng or random.SystemRandom()
        self.transport = transport
        self._subs: list[dict[str, Any]] = []
        self._subs_at = -1.0

    def invalidate(self) -> None:
        """Forget the cached subscription list (after a change made in this process)."""
        self._subs_at = -1.0

    async def _subscriptions(self) -> list[dict[str, Any]]:
        age = time.monotonic() - self._subs_at
        if self._subs_at < 0 or age > self.settings.webhook_subscriptions_ttl_seconds:
            self._subs = await self.repos.webhooks.listed(active_only=True)
            self._subs_at = time.monotonic()
        return self._subs

    async def enqueue(self, records: list[dict[str, Any]]) -> None:
        """Queue ``records`` for every active subscription that wants their type, in one
        write (idempotent: a record queued before keeps its delivery)."""
        now, subs = ms(self.clock), await self._subscriptions()
        queued = [
            {
                "_id": webhooks.delivery_id(str(sub["_id"]), str(record["_id"])),
                "sub_id": sub["_id"],
                "record_id": record["_id"],
                "type": record["type"],
                "state": "pending",
                "attempts": 0,
                "next_at": now,
                "created_at": now,
            }
            for record in records
            for sub in subs
            if webhooks.matches(list(sub.get("event_types", [])), str(record["type"]))
        ]
        await self.repos.deliveries.enqueue(queued)

    async def secret_of(self, sub: dict[str, Any]) -> str:
        key = await self.repos.keys.secret(SECRETS_KEY)
        return str(crypto.unseal(key, sub["secret"], f"webhook|{sub['_id']}"))

    async def claim(self) -> dict[str, Any] | None:
        """Lease one due delivery (other replicas skip it until the lease ends)."""
        return await self.repos.deliveries.claim(ms(self.clock), LEASE_MS)

    async def run(self) -> None:
        """The sender loop: claim due deliveries, send them concurrently, sleep when idle."""
        limits = httpx.Limits(max_connections=self.settings.webhook_concurrency)
        async with httpx.AsyncClient(
            timeout=self.settings.webhook_timeout_seconds,
            follow_redirects=False,
            transport=self.transport,
            limits=limits,
        ) as client:
            while True:
                try:
                    sent = await self.round(client)
                except Exception:  # the next round retries; a delivery is never lost
                    log.exception("webhook round failed")
                    sent = 0
                if not sent:
                    await asyncio.sleep(self.settings.webhook_poll_seconds)

    async def round(self, client: httpx.AsyncClient) -> int:
        """Send up to ``webhook_concurrency`` due deliveries; how many were attempted."""
        batch = []
        for _ in range(self.settings.webhook_concurrency):
            claimed = await self.claim()
            if claimed is None:
                break
            batch.append(claimed)
        await asyncio.gather(*(self.send(client, d) for d in batch))
        return len(batch)

    async def send(self, client: httpx.AsyncClient, delivery: dict[str, Any]) -> None:
        """One attempt: check the destination again, sign, POST, record the outcome."""
        sub = await self.repos.webhooks.get(str(delivery["sub_id"]))
        found = await self.repos.records.records_by_id([str(delivery["record_id"])])
        record = found.get(str(delivery["record_id"]))
        if sub is None or sub.get("state") != "active" or record is None:
            await self._close(delivery, "cancelled", "subscription gone or disabled")
            return
        started = ms(self.clock)
        try:
            await webhooks.check_url(str(sub["url"]), self.settings.webhook_allow)
        except webhooks.UrlRefused as exc:
            await self._failed(delivery, sub, None, f"refused: {exc}", started)
            return
        body = webhooks.payload(record)
        headers = await self._signed(sub, str(delivery["_id"]), body)
        try:
            reply = await client.post(str(sub["url"]), content=body, headers=headers)
        except httpx.HTTPError as exc:
            await self._failed(delivery, sub, None, type(exc).__name__, started)
            return
        if 200 <= reply.status_code < 300:
            await self._delivered(delivery, sub, reply.status_code, started)
        else:
            await self._failed(delivery, sub, reply.status_code, "non-2xx reply", started)

    async def _signed(self, sub: dict[str, Any], delivery_id: str, body: bytes) -> dict[str, str]:
        """The headers of one attempt, signed with the subscription's secret (Standard Webhooks)."""
        stamp = int(self.clock.now().timestamp())
        signature = crypto.webhook_signature(await self.secret_of(sub), delivery_id, stamp, body)
        return {
            "content-type": "application/json",
            "webhook-id": delivery_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": signature,
            "user-agent": "Gardien-Webhooks/1",
        }

    async def _delivered(
        self, delivery: dict[str, Any], sub: dict[str, Any], status: int, started: int
    ) -> None:
        await self._log(delivery, {"at": started, "status": status, "ok": True})
        await self.repos.deliveries.delivered(str(delivery["_id"]), status)
        await self.repos.webhooks.succeeded(str(sub["_id"]))

    async def _failed(
        self,
        delivery: dict[str, Any],
        sub: dict[str, Any],
        status: int | None,
        error: str,
        started: int,
    ) -> None:
        attempts = int(delivery.get("attempts", 0)) + 1
        await self._log(delivery, {"at": started, "status": status, "ok": False, "error": error})
        next_at = None
        if attempts < self.settings.webhook_max_attempts:
            delay = webhooks.retry_delay(
                attempts,
                self.settings.webhook_backoff_base_seconds,
                self.settings.webhook_backoff_max_seconds,
                self.rng,
            )
            next_at = ms(self.clock) + int(delay * 1000)
        await self.repos.deliveries.failed(str(delivery["_id"]), attempts, status, error, next_at)
        await self._count_failure(sub, started)

    async def _count_failure(self, sub: dict[str, Any], now: int) -> None:
        """Disable a subscription after a long run of failures, and audit that."""
        updated = await self.repos.webhooks.failed(str(sub["_id"]), now)
        if updated is None:
            return
        since = updated["failing_since"]
        failures = int(updated.get("consecutive_failures", 0))
        hours = (now - int(since)) / 3_600_000
        if (
            failures >= self.settings.webhook_disable_after_failures
            and hours >= self.settings.webhook_disable_after_hours
        ):
            await self.disable(updated, failures, hours)

    async def disable(self, sub: dict[str, Any], failures: int, hours: float) -> None:
        if await self.repos.webhooks.disable(str(sub["_id"]), self.clock.now()):
            self.invalidate()
            data = {
                "webhook_id": sub["_id"],
                "reason": "consecutive delivery failures",
                "consecutive_failures": failures,
                "failing_hours": round(hours, 2),
            }
            rid = f"audit|webhook.disabled|{sub['_id']}|{failures}"
            await self.audit_local(rid, "gardien.audit.webhook_disabled", data)

    async def _log(self, delivery: dict[str, Any], attempt: dict[str, Any]) -> None:
        """Keep one attempt in the delivery log."""
        doc = {
            "_id": f"{delivery['_id']}@{secrets.token_hex(6)}",
            "delivery_id": delivery["_id"],
            "sub_id": delivery["sub_id"],
            **attempt,
        }
        await self.repos.deliveries.log_attempt(doc)

    async def _close(self, delivery: dict[str, Any], state: str, why: str) -> None:
        await self.repos.deliveries.close(str(delivery["_id"]), state, why)
