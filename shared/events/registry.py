"""Which data model and which topic belong to each event type."""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel

from shared import topics
from shared.events import inbound as m
from shared.events import internal as g
from shared.events.common import Data

# type -> (data model, topic). Inbound types are the external contract (ARCHITECTURE.md).
EVENT_TYPES: Final[dict[str, tuple[type[Data], str]]] = {
    "gdpr.request.received": (m.RequestReceived, topics.REQUESTS),
    "gdpr.request.identity_verified": (m.RequestStep, topics.REQUESTS),
    "gdpr.request.info_requested": (m.RequestStep, topics.REQUESTS),
    "gdpr.request.info_received": (m.RequestStep, topics.REQUESTS),
    "gdpr.request.extended": (m.RequestExtended, topics.REQUESTS),
    "gdpr.request.responded": (m.RequestResponded, topics.REQUESTS),
    "gdpr.contract.ended": (m.ContractEnded, topics.CONTRACTS),
    "gdpr.contact.recorded": (m.ContactRecorded, topics.CONTRACTS),
    "gdpr.breach.detected": (m.BreachDetected, topics.BREACHES),
    "gdpr.breach.authority_notified": (m.BreachNotified, topics.BREACHES),
    "gdpr.breach.subjects_notified": (m.BreachNotified, topics.BREACHES),
    "gdpr.processor.replaced": (m.ProcessorReplaced, topics.PROCESSORS),
    "gdpr.processor.deletion_certified": (m.ProcessorDeletionCertified, topics.PROCESSORS),
    "gdpr.legal_hold.placed": (m.LegalHold, topics.LEGAL_HOLDS),
    "gdpr.legal_hold.released": (m.LegalHold, topics.LEGAL_HOLDS),
    "gdpr.erasure.result": (m.ErasureResult, topics.ERASURE_RESULTS),
    "gdpr.export.result": (m.ExportResult, topics.ERASURE_RESULTS),
}

# Gardien's own event types: each has its model (shared/events/internal.py), checked when the
# producer builds the data and when a consumer reads it.
INTERNAL_TYPES: Final[dict[str, type[BaseModel]]] = {
    "gardien.request.accepted": g.RequestAccepted,
    "gardien.request.decided": g.RequestDecided,
    "gardien.request.status_changed": g.RequestStatusChanged,
    "gardien.request.transition_refused": g.RequestTransitionRefused,
    "gardien.erasure.work.requested": g.WorkRequested,
    "gardien.access.work.requested": g.AccessWorkRequested,
    "gardien.erasure.command.issued": g.CommandIssued,
    **{f"gardien.erasure.case.{kind}": g.CaseEvent for kind in g.CASE_KINDS},
    **{f"gardien.deadline.{kind}": g.DeadlineEvent for kind in g.DEADLINE_KINDS},
    "gardien.access.package.built": g.PackageBuilt,
    "gardien.access.package.delivered": g.PackageDelivered,
    "gardien.access.package.downloaded": g.PackageDownloaded,
    "gardien.access.package.link_issued": g.PackageLinkIssued,
    "gardien.access.package.deleted": g.PackageDeleted,
    "gardien.register.changed": g.RegisterChanged,
    "gardien.operation.dlq_redriven": g.DlqRedriven,
}

# Gardien's own event types, by the prefix that routes them to their topic.
INTERNAL_PREFIXES: Final[dict[str, str]] = {
    "gardien.request.": topics.REQUEST_EVENTS,
    "gardien.erasure.work.": topics.ERASURE_WORK,
    "gardien.access.work.": topics.ERASURE_WORK,
    "gardien.erasure.command.": topics.ERASURE_COMMANDS,
    "gardien.erasure.case.": topics.ERASURE_CASES,
    "gardien.access.package.": topics.ERASURE_CASES,
    "gardien.deadline.": topics.DEADLINES,
    "gardien.register.": topics.REGISTER,
    "gardien.operation.": topics.OPERATIONS,
}


def data_model(event_type: str) -> type[BaseModel] | None:
    """Data model of ``event_type``, or None when the type is unknown."""
    if event_type in EVENT_TYPES:
        return EVENT_TYPES[event_type][0]
    return INTERNAL_TYPES.get(event_type)


def topic_for_type(event_type: str) -> str:
    """Topic an event of ``event_type`` is published to; KeyError when unknown."""
    if event_type in EVENT_TYPES:
        return EVENT_TYPES[event_type][1]
    for prefix, topic in INTERNAL_PREFIXES.items():
        if event_type.startswith(prefix):
            return topic
    raise KeyError(event_type)
