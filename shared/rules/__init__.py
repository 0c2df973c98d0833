"""Gardien's pure GDPR rules engine (France): deadlines, decisions and retention.

The rules are pure: dates and instants come in as parameters, the clock is never read,
nothing is read or written, and bad inputs raise ``RuleError(code, message)``. The one
exception is ``load_policy``, which reads a YAML policy profile from a file (bad profiles
raise ``PolicyError``); callers load it once at start-up and pass the ``Policy`` in.
"""

from shared.rules.breaches import BreachDeadline, BreachGates, breach_deadline, breach_gates
from shared.rules.calendar import (
    add_hours,
    add_months,
    is_working_day,
    local_date,
    parse_date,
    parse_instant,
    roll_forward,
)
from shared.rules.erasure import (
    DataCategory,
    ErasureContext,
    ErasureDecision,
    ErasureOutcome,
    erasure_decisions,
    ordered_erasure,
)
from shared.rules.errors import ERROR_CODES, RuleError
from shared.rules.evaluate import evaluate, evaluate_case, evaluate_cases
from shared.rules.policy import Policy, PolicyError, default_policy, load_policy
from shared.rules.postmortem import (
    DIRECTIVE_ERASURE_GROUND,
    Directives,
    PostMortemResult,
    directives_valid,
    orders_erasure,
    postmortem,
)
from shared.rules.processors import ProcessorStatus, processor_status
from shared.rules.requests import (
    Extension,
    ExtensionResult,
    FeeDecision,
    FrequencyResult,
    Pause,
    RequestDue,
    access_frequency,
    extension,
    fee,
    on_time,
    receipt_date,
    request_due,
)
from shared.rules.retention import (
    HeldRetention,
    LegalHold,
    Retention,
    RetentionRule,
    apply_holds,
    e_contract_terms,
    financial_year_close,
    retention_until,
    schedule_rule,
)
from shared.rules.rights import (
    art19_notifications,
    automated_decision,
    objection,
    portability,
    restriction,
)

__all__ = [
    "DIRECTIVE_ERASURE_GROUND",
    "ERROR_CODES",
    "BreachDeadline",
    "BreachGates",
    "DataCategory",
    "Directives",
    "ErasureContext",
    "ErasureDecision",
    "ErasureOutcome",
    "Extension",
    "ExtensionResult",
    "FeeDecision",
    "FrequencyResult",
    "HeldRetention",
    "LegalHold",
    "Pause",
    "Policy",
    "PolicyError",
    "PostMortemResult",
    "ProcessorStatus",
    "RequestDue",
    "Retention",
    "RetentionRule",
    "RuleError",
    "access_frequency",
    "add_hours",
    "add_months",
    "apply_holds",
    "art19_notifications",
    "automated_decision",
    "breach_deadline",
    "breach_gates",
    "default_policy",
    "directives_valid",
    "e_contract_terms",
    "erasure_decisions",
    "evaluate",
    "evaluate_case",
    "evaluate_cases",
    "extension",
    "fee",
    "financial_year_close",
    "is_working_day",
    "load_policy",
    "local_date",
    "objection",
    "on_time",
    "ordered_erasure",
    "orders_erasure",
    "parse_date",
    "parse_instant",
    "portability",
    "postmortem",
    "processor_status",
    "receipt_date",
    "request_due",
    "restriction",
    "retention_until",
    "roll_forward",
    "schedule_rule",
]
