"""The one error the rules engine raises: a stable code plus a human message."""

from __future__ import annotations

ERROR_CODES: dict[str, str] = {
    "INVALID_DATE": "a date or instant is not a real calendar date/time (never coerced)",
    "NONEXISTENT_LOCAL_TIME": "a naive local time falls in a DST gap (R-CAL-1)",
    "AMBIGUOUS_LOCAL_TIME": "a naive local time occurs twice (DST fold); give an offset",
    "MISSING_FIELD": "a field the rule needs is absent or null",
    "INVALID_INPUT": "a field has the wrong type or an impossible value",
    "UNKNOWN_RULE": "the case names no rule this engine knows",
    "UNKNOWN_CALENDAR": "the holiday calendar is not FR-metropole or FR-alsace-moselle",
    "UNKNOWN_TIMEZONE": "the tz field is not an IANA time zone",
    "UNKNOWN_CATEGORY": "the retention category is not in the schedule",
    "INVALID_POLICY": "a policy profile failed to load or validate",
}


class RuleError(ValueError):
    """An input the rules refuse; ``code`` is one of ``ERROR_CODES``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
