"""The built-in register of the default policy: one activity per default retention category.

The default policy has no real controller: its register says so, and holds generic
activities (customers, prospecting, accounting, CCTV, building access, technical logs,
recruitment) written from the law and CNIL referentials, for development and tests. A
deployment sets GARDIEN_POLICY_FILE to a profile with its own register.
"""

from __future__ import annotations

from typing import Any

from shared.rules.register import Register

# Default retention category -> register activity.
DEFAULT_ACTIVITY = {
    "customer": "customers",
    "contract": "customers",
    "e_contract": "customers",
    "prospect": "prospecting",
    "accounting": "accounting",
    "cctv": "cctv",
    "building_access": "building-access",
    "technical": "technical-logs",
    "candidate": "recruitment",
}

_SECURITY = [
    "access to personal data restricted by role, with individual accounts",
    "encryption in transit (TLS) and of backups",
    "actions on personal data traced in Gardien's hash-chained audit trail",
]
_ASSUMED = "built-in default register: not a real controller's; replace it with your profile's"

_ACTIVITIES: list[dict[str, Any]] = [
    {
        "id": "customers",
        "name": "Customer management (contracts, orders, delivery, after-sales)",
        "purposes": ["performing contracts with customers", "evidence for legal claims"],
        "legal_bases": ["contract (Art 6(1)(b))", "legal obligation (Art 6(1)(c))"],
        "data_subjects": ["customers"],
        "data_categories": ["identity", "contact details", "orders and payments"],
        "recipients": ["staff in charge of sales and customer service", "processors (CRM)"],
        "security_measures": _SECURITY,
    },
    {
        "id": "prospecting",
        "name": "Commercial prospecting and newsletters",
        "purposes": ["sending commercial offers and newsletters"],
        "legal_bases": ["consent (Art 6(1)(a))", "legitimate interest (Art 6(1)(f))"],
        "data_subjects": ["prospects", "customers who did not object"],
        "data_categories": ["identity", "contact details", "marketing preferences"],
        "recipients": ["marketing staff", "processors (newsletter and advertising tools)"],
        "security_measures": _SECURITY,
    },
    {
        "id": "accounting",
        "name": "Accounting and invoicing",
        "purposes": ["keeping the books and invoices the law requires"],
        "legal_bases": ["legal obligation (Art 6(1)(c); C. com. L123-22)"],
        "data_subjects": ["customers", "suppliers"],
        "data_categories": ["identity", "invoices and payments"],
        "recipients": ["accounting staff", "statutory auditor", "tax authorities on request"],
        "security_measures": _SECURITY,
    },
    {
        "id": "cctv",
        "name": "Video surveillance of the premises",
        "purposes": ["security of people and property"],
        "legal_bases": ["legitimate interest (Art 6(1)(f))"],
        "data_subjects": ["staff", "visitors"],
        "data_categories": ["images"],
        "recipients": ["authorised security staff", "police on request"],
        "security_measures": _SECURITY,
    },
    {
        "id": "building-access",
        "name": "Building access control",
        "purposes": ["controlling access to the premises"],
        "legal_bases": ["legitimate interest (Art 6(1)(f))"],
        "data_subjects": ["staff", "visitors"],
        "data_categories": ["identity", "badge and access logs"],
        "recipients": ["authorised security staff"],
        "security_measures": _SECURITY,
    },
    {
        "id": "technical-logs",
        "name": "Technical and connection logs",
        "purposes": ["security of the information system", "legal retention of traffic data"],
        "legal_bases": ["legal obligation (Art 6(1)(c); Décret 2021-1362)"],
        "data_subjects": ["users of the website and services"],
        "data_categories": ["connection data (IP address, timestamps)"],
        "recipients": ["IT staff", "hosting provider (processor)", "judicial authorities"],
        "security_measures": _SECURITY,
    },
    {
        "id": "recruitment",
        "name": "Recruitment",
        "purposes": ["assessing applications"],
        "legal_bases": ["pre-contractual steps (Art 6(1)(b))", "consent to keep a file"],
        "data_subjects": ["candidates"],
        "data_categories": ["identity", "contact details", "CV and professional history"],
        "recipients": ["hiring managers", "HR staff"],
        "security_measures": _SECURITY,
    },
]


def default_register() -> Register:
    """The register of the built-in default policy."""
    return Register.model_validate(
        {
            "controller": {
                "organisation": "Controller not configured (built-in default policy)",
                "contact": {
                    "name": "not configured",
                    "role": "set GARDIEN_POLICY_FILE",
                    "address": "not configured",
                },
                "dpo_note": "not configured",
            },
            "activities": [{**a, "assumptions": [_ASSUMED]} for a in _ACTIVITIES],
        }
    )
