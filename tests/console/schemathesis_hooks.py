"""Schemathesis hook for `test_actions_schemathesis.py`: a fresh Idempotency-Key per call.

Reusing an ``Idempotency-Key`` with another body is refused with 422, as the IETF
Idempotency-Key draft asks; schemathesis draws keys from a small space ("0", "00"...) and
would reuse one across different bodies, which is a misuse, not a schema-valid request the
API should accept. Each valid drawn key gets a unique suffix; invalid ones (negative cases)
are left as drawn. Replays with the same key are tested in `tests/actions/`.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import schemathesis

PRINTABLE = re.compile(r"^[\x21-\x7e]{1,160}$")


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    headers = case.headers or {}
    for name in [n for n in headers if n.lower() == "idempotency-key"]:
        value = headers[name]
        if isinstance(value, str) and PRINTABLE.match(value):
            headers[name] = f"{value}-{uuid.uuid4().hex}"
    for target in (kwargs.get("headers"),):
        if isinstance(target, dict):
            for name in [n for n in target if n.lower() == "idempotency-key"]:
                if name in headers:
                    target[name] = headers[name]
