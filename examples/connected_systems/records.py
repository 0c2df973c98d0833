"""What each reference system stores, and how it erases, anonymises or restricts it.

Every system keeps real documents in its own MongoDB database (``refsys_<id>``). A
category maps to collections and to the fields that hold the subject's identifiers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

Db = AsyncDatabase[dict[str, Any]]


@dataclass(frozen=True)
class Store:
    """One collection: the command identifier each field matches, the personal fields."""

    collection: str
    match: dict[str, str]  # command identifier name -> document field
    personal: tuple[str, ...]


CUSTOMERS = Store(
    "customers",
    {"customer_id": "customer_id", "email": "email"},
    ("name", "email", "phone", "address"),
)
NOTES = Store("notes", {"customer_id": "customer_id"}, ("text",))
SUBSCRIBERS = Store("subscribers", {"email": "email"}, ("email", "first_name"))
ACCOUNTS = Store(
    "accounts", {"customer_id": "customer_id", "email": "email"}, ("name", "email", "iban_last4")
)
INVOICES = Store(
    "invoices", {"customer_id": "customer_id", "email": "email"}, ("name", "email", "address")
)
PROFILES = Store("profiles", {"email": "email"}, ("email", "segments", "events"))

# system kind -> category -> stores holding it
CATALOGUE: dict[str, dict[str, list[Store]]] = {
    "crm": {"profile": [CUSTOMERS, NOTES], "contact": [CUSTOMERS]},
    "newsletter": {"marketing": [SUBSCRIBERS]},
    "billing": {"invoices": [INVOICES], "payment": [ACCOUNTS]},
    "vendor": {"behaviour": [PROFILES]},
}


def _demo(kind: str, email: str, customer_id: str) -> dict[str, list[dict[str, Any]]]:
    name, now = "Alice Martin", datetime.now(UTC)
    demo: dict[str, dict[str, list[dict[str, Any]]]] = {
        "crm": {
            "customers": [
                {
                    "customer_id": customer_id,
                    "email": email,
                    "name": name,
                    "phone": "+33 6 12 34 56 78",
                    "address": "12 rue des Lilas, Lyon",
                }
            ],
            "notes": [
                {"customer_id": customer_id, "text": "Called about delivery"},
                {"customer_id": customer_id, "text": "Asked for a discount"},
            ],
        },
        "newsletter": {
            "subscribers": [
                {"email": email, "first_name": "Alice", "lists": ["weekly"], "consent_at": now}
            ]
        },
        "billing": {
            "accounts": [
                {"customer_id": customer_id, "email": email, "name": name, "iban_last4": "4242"}
            ],
            "invoices": [
                {
                    "invoice_id": f"INV-{customer_id}-{year}",
                    "customer_id": customer_id,
                    "email": email,
                    "name": name,
                    "address": "12 rue des Lilas, Lyon",
                    "amount_eur": 120.0 + year % 10,
                    "issued_on": f"{year}-05-10",
                    "fy_end": f"{year}-12-31",
                }
                for year in (2025, 2026)
            ],
        },
        "vendor": {
            "profiles": [
                {
                    "email": email,
                    "segments": ["sports"],
                    "events": ["viewed:shoes", "clicked:ad-17"],
                }
            ]
        },
    }
    return demo[kind]


async def seed(db: Db, kind: str, email: str, customer_id: str) -> int:
    """Insert demo records for one subject; return how many."""
    count = 0
    for collection, docs in _demo(kind, email, customer_id).items():
        await db[collection].insert_many([dict(d) for d in docs])
        count += len(docs)
    return count


async def matching(db: Db, store: Store, identifiers: dict[str, str]) -> list[dict[str, Any]]:
    found: dict[Any, dict[str, Any]] = {}
    for name, field in store.match.items():
        if name in identifiers:
            async for doc in db[store.collection].find({field: identifiers[name]}):
                found[doc["_id"]] = doc
    return list(found.values())


def _retain_until(doc: dict[str, Any], line: dict[str, Any]) -> str | None:
    """The date kept records go: the command's, else the document's year end + retention.

    None for a restriction with no end (Art 18: until the ground is resolved).
    """
    if line.get("retain_until"):
        return str(line["retain_until"])[:10]
    start_text = doc.get("fy_end") or doc.get("issued_on")
    if not line.get("retention") or not start_text:
        return None
    years = int(line["retention"].get("years", 10))
    start = date.fromisoformat(str(start_text))
    return start.replace(year=start.year + years).isoformat()


async def apply_line(
    db: Db, store: Store, line: dict[str, Any], identifiers: dict[str, str]
) -> tuple[int, str | None]:
    """Carry out one command line on one store; (documents touched, latest retain-until)."""
    docs = await matching(db, store, identifiers)
    action, latest = line["action"], None
    for doc in docs:
        if action == "restrict":
            until = _retain_until(doc, line)
            if until is not None:
                latest = max(latest or until, until)
            # Intermediate archiving (CNIL): a separate store, legal and audit staff only.
            await db[f"{store.collection}_restricted"].replace_one(
                {"_id": doc["_id"]},
                {
                    **doc,
                    "retain_until": until,
                    "restricted_at": datetime.now(UTC),
                    "access": "legal_and_audit_only",
                    "ground": line.get("ground", ""),
                },
                upsert=True,
            )
            await db[store.collection].delete_one({"_id": doc["_id"]})
        elif action == "anonymise":
            await db[store.collection].update_one(
                {"_id": doc["_id"]},
                {
                    "$set": {f: "anonymised" for f in store.personal},
                    "$unset": {f: "" for f in store.match.values() if f not in store.personal},
                },
            )
        else:  # erase, suppress, delete, return: the record goes
            await db[store.collection].delete_one({"_id": doc["_id"]})
            if action == "suppress" and "email" in identifiers:
                digest = hashlib.sha256(identifiers["email"].lower().encode()).hexdigest()
                await db["suppression"].replace_one({"_id": digest}, {"_id": digest}, upsert=True)
    return len(docs), latest
