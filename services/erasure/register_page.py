"""The register as CSV (one row per activity) and as a printable page, CNIL model layout.

The page follows the CNIL's model register: the controller's details and the list of
activities first, then one record sheet per activity (purposes, people and data concerned,
retention, recipients, transfers outside the EU, security measures). It is self-contained:
inline CSS with a print stylesheet, no script, no external asset.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from html import escape

from shared.rules.register import ActivityRecord, Contact, RegisterDocument, RetentionLine

CSV_COLUMNS = (
    "activity_id",
    "activity_name",
    "controller",  # Art 30(1)(a)
    "controller_contact",
    "representative",
    "dpo",
    "joint_controllers",
    "purposes",  # (b)
    "legal_bases",
    "data_subjects",  # (c)
    "data_categories",
    "sensitive_data",
    "recipients",  # (d)
    "connected_systems",
    "transfers_outside_eu",  # (e)
    "retention",  # (f)
    "security_measures",  # (g)
    "assumptions",
    "created",
    "updated",
    "policy",
    "register_hash",
)


def _contact(c: Contact | None) -> str:
    if c is None:
        return ""
    return ", ".join(x for x in (c.name, c.role, c.address, c.email, c.phone) if x)


def _retention(line: RetentionLine) -> str:
    law = " (statutory)" if line.statutory else ""
    return (
        f"{line.category}: {line.duration_months} months from {line.start_event}, then "
        f"{line.action.replace('_', ' ')}; {line.basis}{law}"
    )


def _retention_all(a: ActivityRecord) -> list[str]:
    return [_retention(r) for r in a.retention] + ([a.retention_note] if a.retention_note else [])


def _systems(a: ActivityRecord) -> list[str]:
    def role(processor: bool, recipient: bool) -> str:
        kinds = [k for k, on in (("processor", processor), ("recipient", recipient)) if on]
        return f" ({', '.join(kinds)})" if kinds else ""

    return [
        f"{s.system}: {', '.join(s.categories)}{role(s.processor, s.recipient)}" for s in a.systems
    ]


def _transfers(a: ActivityRecord) -> list[str]:
    return [
        f"{t.recipient}, {t.country}, {t.safeguard.replace('_', ' ')}"
        + (f" ({t.documentation})" if t.documentation else "")
        for t in a.transfers
    ]


def _join(items: Iterable[str]) -> str:
    return "; ".join(items)


def csv_text(doc: RegisterDocument) -> str:
    """The register as CSV: a header row, then one row per activity."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    ctl = doc.controller
    for a in doc.activities:
        writer.writerow(
            [
                a.id,
                a.name,
                ctl.organisation,
                _contact(ctl.contact),
                _contact(ctl.representative),
                _contact(ctl.dpo) or (ctl.dpo_note or ""),
                _join(a.joint_controllers),
                _join(a.purposes),
                _join(a.legal_bases),
                _join(a.data_subjects),
                _join(a.data_categories),
                _join(a.sensitive_data),
                _join(a.recipients),
                _join(_systems(a)),
                _join(_transfers(a)) or "none",
                _join(_retention_all(a)),
                _join(a.security_measures),
                _join(a.assumptions),
                a.created.isoformat() if a.created else "",
                a.updated.isoformat() if a.updated else "",
                doc.policy,
                doc.hash,
            ]
        )
    return out.getvalue()


CSS = """
body{font:11pt/1.4 Georgia,serif;margin:2em auto;max-width:60em;color:#111}
h1{font-size:18pt;border-bottom:2px solid #333}h2{font-size:14pt;margin-top:1.5em}
table{border-collapse:collapse;width:100%;margin:.5em 0}
th,td{border:1px solid #777;padding:.3em .5em;vertical-align:top;text-align:left}
th{background:#eee}.kv th{width:30%}.sheet{margin-top:2em}.muted{color:#555;font-size:9pt}
ul{margin:0;padding-left:1.2em}
@page{size:A4;margin:15mm}
@media print{body{margin:0;max-width:none}.sheet{page-break-before:always}
th{background:#ddd;-webkit-print-color-adjust:exact;print-color-adjust:exact}}
"""


def _list(items: Iterable[str], empty: str = "none") -> str:
    cells = [f"<li>{escape(i)}</li>" for i in items]
    return f"<ul>{''.join(cells)}</ul>" if cells else escape(empty)


def _rows(rows: Iterable[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _sheet(n: int, a: ActivityRecord) -> str:
    rows = [
        ("Reference", escape(a.id)),
        ("Created / last updated", escape(f"{a.created or '-'} / {a.updated or '-'}")),
        ("Joint controllers", _list(a.joint_controllers)),
        ("Purposes (Art 30(1)(b))", _list(a.purposes)),
        ("Legal bases (Art 6)", _list(a.legal_bases)),
        ("Data subjects (Art 30(1)(c))", _list(a.data_subjects)),
        ("Personal data (Art 30(1)(c))", _list(a.data_categories)),
        ("Sensitive data (Art 9, 10)", _list(a.sensitive_data)),
        ("Retention (Art 30(1)(f))", _list(_retention_all(a))),
        ("Recipients (Art 30(1)(d))", _list(a.recipients)),
        ("Connected systems", _list(_systems(a))),
        ("Transfers outside the EU (Art 30(1)(e))", _list(_transfers(a))),
        ("Security measures (Art 30(1)(g))", _list(a.security_measures)),
        ("Assumptions", _list(a.assumptions)),
    ]
    return (
        f'<section class="sheet" id="{escape(a.id)}">'
        f"<h2>Record sheet {n}: {escape(a.name)}</h2>{_rows(rows)}</section>"
    )


def html_page(doc: RegisterDocument) -> str:
    """The printable register page."""
    ctl = doc.controller
    head = _rows(
        [
            ("Organisation", escape(ctl.organisation)),
            ("Controller contact (Art 30(1)(a))", escape(_contact(ctl.contact))),
            ("Representative in the EU", escape(_contact(ctl.representative) or "none")),
            ("Data protection officer", escape(_contact(ctl.dpo) or ctl.dpo_note or "none")),
            ("Assumptions", _list(ctl.assumptions)),
        ]
    )
    listing = "".join(
        f'<tr><td>{n}</td><td><a href="#{escape(a.id)}">{escape(a.name)}</a></td>'
        f"<td>{escape(a.id)}</td></tr>"
        for n, a in enumerate(doc.activities, 1)
    )
    sheets = "".join(_sheet(n, a) for n, a in enumerate(doc.activities, 1))
    title = f"Register of processing activities: {ctl.organisation}"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1>{head}"
        "<h2>Processing activities</h2><table><tr><th>No.</th><th>Activity</th>"
        f"<th>Reference</th></tr>{listing}</table>{sheets}"
        f'<p class="muted">Policy profile {escape(doc.policy)}; register hash '
        f"{escape(doc.hash)} (GDPR Art 30; kept by Gardien).</p></body></html>"
    )
