"""Case adapters for R-DSR-6..12 (erasure, objection, restriction, portability, Art 19, death)."""

from __future__ import annotations

from datetime import date
from typing import Any

from shared.rules import _inputs as i
from shared.rules._eval_requests import Out, has_receipt, receipt, with_due
from shared.rules.erasure import (
    RETAIN,
    DataCategory,
    ErasureContext,
    ErasureOutcome,
    erasure_decisions,
    ordered_erasure,
)
from shared.rules.errors import RuleError
from shared.rules.postmortem import DIRECTIVE_ERASURE_GROUND, Directives, postmortem
from shared.rules.retention import financial_year_close
from shared.rules.rights import (
    MARKETING_PURPOSES,
    PortableItem,
    Recipient,
    art19_notifications,
    automated_decision,
    objection,
    portability,
    restriction,
)


def _exception(raw: Any) -> str | None:
    if raw is None:
        return None
    letter = str(raw).replace("Art", "").replace("17(3)", "").strip(" ()_")[:1].lower()
    if letter not in "abcde" or not letter:
        raise RuleError("INVALID_INPUT", f"unknown Art 17(3) exception {raw!r}")
    return letter


def _covers(scope: Any, category: str) -> bool:
    if isinstance(scope, list):
        return category in scope
    return scope in (None, "all", category)


def _hold_matter(inp: i.Input, item: i.Input, on: date) -> str | None:
    own = item.get("legal_hold")
    if own is True or isinstance(own, str):
        return own if isinstance(own, str) else ""
    holds = [own] if isinstance(own, dict) else i.items(inp, "legal_holds")
    for raw in holds:
        h = i.mapping(raw, "legal hold")
        released = i.opt_day(h, "released_on")
        scope = h.get("categories", h.get("scope"))
        if _covers(scope, item["category"]) and (released is None or released >= on):
            return str(h.get("matter", ""))
    return None


def _category(inp: i.Input, raw: Any, on: date) -> DataCategory:
    item = i.mapping(raw, "data item")
    i.text(item, "category")
    fye = i.opt_day(item, "financial_year_end")
    if fye is None and i.present(item, "document_date"):
        fye = financial_year_close(i.day(item, "document_date"), None)
    return DataCategory(
        category=item["category"],
        lawful_basis=i.text(item, "lawful_basis"),
        financial_year_end=fye,
        retain_until=i.opt_day(item, "retain_until"),
        legal_hold=_hold_matter(inp, item, on),
        exception=_exception(item.get("exception")),
        unlawful=i.flag(item, "unlawful"),
        legal_obligation_to_erase=i.flag(item, "legal_obligation_to_erase"),
        overriding_legitimate_grounds=i.flag(item, "overriding_legitimate_grounds"),
        direct_marketing=item.get("purpose") in MARKETING_PURPOSES,
    )


def _erasure_inputs(inp: i.Input) -> tuple[list[DataCategory], ErasureContext]:
    on = receipt(inp) if has_receipt(inp) else i.any_day(inp, "evaluated_on")
    ctx = ErasureContext(
        on,
        i.text(inp, "subject_type", "customer"),
        inp.get("contract_status"),
        i.opt_day(inp, "contract_end_date"),
    )
    return [_category(inp, raw, on) for raw in i.items(inp, "data", required=True)], ctx


def _decisions(res: ErasureOutcome) -> Out:
    decisions = []
    for d in res.decisions:
        entry: Out = {"category": d.category, "action": d.action, "ground": d.ground}
        if d.action == RETAIN:
            entry["retain_until"] = d.retain_until
        decisions.append(entry)
    out: Out = {"decisions": decisions}
    if res.partial_refusal:
        out["inform_partial_refusal_with_reasons_and_complaint_rights"] = True
    return out


def dsr_erasure(inp: i.Input) -> Out:
    """R-DSR-6."""
    res = erasure_decisions(*_erasure_inputs(inp))
    out = _decisions(res)
    if res.partial_refusal:
        out["art19_notify_recipients_for"] = res.art19_notify_for
    return with_due(inp, out)


def dsr_objection(inp: i.Input) -> Out:
    """R-DSR-7."""
    res = objection(i.text(inp, "purpose"), inp.get("lawful_basis"))
    out: Out = {
        "stop_processing_for_purpose": res.stop_processing_for_purpose,
        "balancing_test": res.balancing_test,
    }
    if res.direct_marketing:
        out.update(fee_allowed=False, keep_suppression_entry=True)
    elif res.balancing_test:
        out["restrict_pending_assessment_if_requested"] = True
    else:
        out["fee_allowed"] = False
    return with_due(inp, out)


def dsr_restriction(inp: i.Input) -> Out:
    """R-DSR-8."""
    res = restriction(i.text(inp, "ground"))
    if not res.restrict:
        return with_due(inp, {"restrict": False})
    return with_due(
        inp,
        {
            "restrict": True,
            "restricted_until": res.restricted_until,
            "allowed_processing": list(res.allowed_processing),
            "inform_before_lifting": True,
            "art19_notify_recipients": True,
        },
    )


def dsr_portability(inp: i.Input) -> Out:
    """R-DSR-9."""
    data = []
    for raw in i.items(inp, "data", required=True):
        item = i.mapping(raw, "data item")
        data.append(
            PortableItem(
                i.text(item, "category"),
                i.text(item, "lawful_basis"),
                i.flag(item, "automated", True),
                i.flag(item, "provided_by_data_subject", True),
            )
        )
    inside, outside = portability(data)
    return with_due(
        inp,
        {
            "in_scope": inside,
            "out_of_scope": outside,
            "format": "structured_commonly_used_machine_readable",
            "direct_transmission_if_technically_feasible": True,
        },
    )


def dsr_art19(inp: i.Input) -> Out:
    """R-DSR-10."""
    article = str(inp.get("article", ""))
    default_done = not (article.startswith("17(3)") or "no erasure" in article)
    recipients = []
    for raw in i.items(inp, "recipients"):
        r = i.mapping(raw, "recipient")
        recipients.append(
            Recipient(
                i.text(r, "id"),
                i.flag(r, "reachable", True),
                i.flag(r, "disproportionate_effort_documented"),
            )
        )
    res = art19_notifications(
        i.text(inp, "action_taken"), i.flag(inp, "carried_out", default_done), recipients
    )
    if not res.triggered:
        return {"notify": []}
    out: Out = {
        "notify": list(res.notify),
        "not_notified": [{"id": a, "reason": b} for a, b in res.not_notified],
    }
    if "data_subject_asked_for_recipients" in inp:
        out["inform_data_subject_of_recipients"] = i.flag(inp, "data_subject_asked_for_recipients")
    return out


def dsr_rectification(inp: i.Input) -> Out:
    """R-DSR-11: rectification/completion, or an Art 22 request."""
    if "solely_automated" in inp or inp.get("request_type") in ("art22", "automated_decision"):
        res = automated_decision(
            i.flag(inp, "solely_automated", True),
            i.flag(inp, "significant_effect", True),
            inp.get("lawful_basis"),
        )
        return with_due(
            inp,
            {
                "art22_applies": res.art22_applies,
                "decision_permitted": res.decision_permitted,
                "human_intervention_required": res.human_intervention_required,
            },
        )
    return with_due(
        inp,
        {"rectify": True, "supplementary_statement_allowed": True, "art19_notify_recipients": True},
    )


def _directives(inp: i.Input) -> Directives | None:
    if not i.present(inp, "directives"):
        return None
    d = i.mapping(inp["directives"], "directives")
    content = d.get("content")
    return Directives(
        type=i.text(d, "type", "particular"),
        content=tuple(content)
        if isinstance(content, list)
        else ((str(content),) if content else ()),
        specific_consent=d.get("specific_consent"),
        registered_with_controller=d.get("registered_with_controller"),
        registered_with_certified_third_party=d.get("registered_with_certified_third_party"),
        designated_person=d.get("designated_person"),
        designated_person_deceased=i.flag(d, "designated_person_deceased"),
        revoked=i.flag(d, "revoked"),
    )


def dsr_postmortem(inp: i.Input) -> Out:
    """R-DSR-12."""
    directives = _directives(inp)
    proofs = i.strings(inp, "proofs") if "proofs" in inp and inp["proofs"] is not None else None
    res = postmortem(
        i.text(inp, "requester_role", "heir"),
        directives,
        i.strings(inp, "requested_actions"),
        proofs,
        inp.get("requester_id"),
    )
    if "requested_actions" not in inp:
        if res.directives_valid:
            return with_due(
                inp, {"directives_valid": True, "competent_requester": res.competent_requester}
            )
        out: Out = {"fallback": "heirs_default_rights"}
        if directives is not None:
            out = {"directives_valid": False, **out}
        return with_due(inp, out)
    out = {
        "allowed_actions": list(res.allowed_actions),
        "refused_actions": list(res.refused_actions),
        "reason": res.reason,
    }
    if res.free_of_charge_justification_of_operations:
        out["free_of_charge_justification_of_operations"] = True
    if res.erasure_ordered and i.present(inp, "data"):
        items, ctx = _erasure_inputs(inp)
        out.update(_decisions(ordered_erasure(items, ctx, DIRECTIVE_ERASURE_GROUND)))
    return with_due(inp, out)
