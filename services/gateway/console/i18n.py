"""The console's two languages and its dates, shown in the DPO's time zone (policy)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

LANGS = ("fr", "en")
_FR = "janv. févr. mars avr. mai juin juil. août sept. oct. nov. déc."
_EN = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec"
MONTHS = {"fr": _FR.split(), "en": _EN.split()}
TEXT: dict[str, tuple[str, str]] = {  # key: (fr, en)
    "title": ("Console du DPO", "DPO console"),
    "today": ("Aujourd'hui", "Today"),
    "requests": ("Demandes", "Requests"),
    "breaches": ("Violations", "Breaches"),
    "holds": ("Gels", "Holds"),
    "systems": ("Systèmes", "Systems"),
    "audit": ("Journal d'audit", "Audit trail"),
    "webhooks": ("Webhooks", "Webhooks"),
    "register": ("Registre", "Register"),
    "sign_in": ("Se connecter", "Sign in"),
    "sign_out": ("Se déconnecter", "Sign out"),
    "api_key": ("Clé d'API", "API key"),
    "bad_key": ("Clé inconnue ou révoquée.", "Unknown or revoked key."),
    "signed_in_as": ("Connecté avec la clé", "Signed in with key"),
    "due_soon": ("Demandes à échéance proche ou dépassée", "Requests due soon or overdue"),
    "breach_clocks": ("Horloges des violations (72 h)", "Breach clocks (72 h)"),
    "purges": ("Purges de conservation à venir", "Retention purges coming"),
    "waiting": ("Dossiers en attente d'un système", "Cases waiting on a system"),
    "none": ("Rien pour l'instant.", "Nothing for now."),
    "request": ("Demande", "Request"),
    "right": ("Droit", "Right"),
    "status": ("Statut", "Status"),
    "due": ("Échéance", "Due"),
    "received": ("Reçue le", "Received"),
    "left": ("restant", "left"),
    "overdue": ("en retard", "overdue"),
    "days": ("j", "d"),
    "timeline": ("Chronologie (journal d'audit)", "Timeline (audit trail)"),
    "dates": ("Échéances", "Due dates"),
    "pauses": ("Suspensions", "Pauses"),
    "extension": ("Prolongation", "Extension"),
    "progress": ("Avancement par système", "Per-system progress"),
    "actions": ("Actions", "Actions"),
    "at": ("Quand", "When"),
    "note": ("Note", "Note"),
    "reason": ("Motif", "Reason"),
    "reasons": ("Motifs (un par ligne)", "Reasons (one per line)"),
    "outcome": ("Issue", "Outcome"),
    "complaint": ("Droit de réclamation indiqué", "Complaint rights given"),
    "identity_verified": ("Identité vérifiée", "Identity verified"),
    "info_requested": ("Informations demandées", "Information requested"),
    "info_received": ("Informations reçues", "Information received"),
    "extend": ("Prolonger de deux mois", "Extend by two months"),
    "respond": ("Réponse envoyée", "Response sent"),
    "refuse": ("Refus motivé", "Refusal with grounds"),
    "sent": (
        "Envoyé ; la page se met à jour dès le traitement.",
        "Sent; the page updates once processed.",
    ),
    "authority": ("Autorité", "Authority"),
    "subjects": ("Personnes concernées", "Data subjects"),
    "notify_authority": ("Autorité notifiée", "Authority notified"),
    "notify_subjects": ("Personnes informées", "Subjects notified"),
    "public": ("Communication publique", "Public communication"),
    "reasons_for_delay": ("Motifs du retard", "Reasons for the delay"),
    "new_breach": ("Déclarer une violation", "Record a breach"),
    "aware_at": ("Connue le", "Aware at"),
    "risk": ("Risque", "Risk"),
    "categories": ("Catégories (séparées par des virgules)", "Categories (comma separated)"),
    "approx_subjects": ("Personnes (approx.)", "Subjects (approx.)"),
    "approx_records": ("Enregistrements (approx.)", "Records (approx.)"),
    "place_hold": ("Placer un gel", "Place a hold"),
    "release": ("Lever", "Release"),
    "matter": ("Affaire", "Matter"),
    "hold_id": ("Identifiant du gel", "Hold id"),
    "active": ("actif", "active"),
    "released": ("levé le", "released on"),
    "opened": ("placé le", "placed on"),
    "confirm_manual": ("Confirmer l'étape manuelle", "Confirm the manual step"),
    "what": ("Ce qui a été fait", "What was done"),
    "services": ("Services", "Services"),
    "ready": ("prêt", "ready"),
    "down": ("indisponible", "down"),
    "verify": ("Vérifier maintenant", "Verify now"),
    "last_verify": ("Dernière vérification", "Last verification"),
    "last_checkpoint": ("Dernier point de contrôle signé", "Last signed checkpoint"),
    "cats": ("Catégories", "Categories"),
    "no_checkpoint": ("aucun pour l'instant", "none yet"),
    "never": ("jamais (depuis le démarrage)", "never (since start)"),
    "failing": ("Livraisons en échec", "Failing deliveries"),
    "download_csv": ("Télécharger en CSV", "Download as CSV"),
    "register_missing": (
        "Registre non disponible (GET /v1/register ne répond pas).",
        "Register not available (GET /v1/register does not answer).",
    ),
    "case": ("Dossier", "Case"),
    "system": ("Système", "System"),
    "state": ("État", "State"),
    "not_allowed": ("Cette clé n'a pas le droit de lire ceci.", "This key may not read this."),
    "submit": ("Enregistrer", "Record"),
}


def text(lang: str, key: str) -> str:
    fr, en = TEXT.get(key, (key, key))
    return fr if lang == "fr" else en


def parse(value: str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def when(value: str | datetime | None, lang: str, tz: str) -> str:
    """An instant as the DPO reads it: day, month, year and time in the policy's zone."""
    at = parse(value)
    if at is None:
        return "—"
    if at.tzinfo is None:
        return str(value)
    local = at.astimezone(ZoneInfo(tz))
    return f"{local.day} {MONTHS[lang][local.month - 1]} {local.year} {local:%H:%M}"


def day(value: str | date | None, lang: str) -> str:
    """A calendar date (a legal due date is a date, not an instant)."""
    if not value:
        return "—"
    try:
        d = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
    except ValueError:
        return str(value)
    return f"{d.day} {MONTHS[lang][d.month - 1]} {d.year}"


def left(seconds: float, lang: str) -> str:
    """Time left (or overdue) as hours and minutes."""
    late = seconds < 0
    minutes = int(abs(seconds) // 60)
    span = f"{minutes // 60} h {minutes % 60:02d} min"
    return f"{span} {text(lang, 'overdue' if late else 'left')}"
