"""The data of every internal event, one pydantic model per type (the intake -> erasure,
erasure -> intake, deadlines -> erasure ... contracts), checked when built and when read.

Producers build events from these models and handlers receive the typed model; the AsyncAPI
description takes its schemas from them. One section per producing service.
"""

from __future__ import annotations

# ---- intake: gardien.requests.v1, gardien.erasure.work.v1 (work requested by a request) ----


# ---- deadlines: gardien.deadlines.v1, gardien.erasure.work.v1 (retention purges) ----------


# ---- erasure: gardien.erasure.commands.v1, gardien.erasure.cases.v1 ------------------------


# ---- audit: audit-originated records --------------------------------------------------------
