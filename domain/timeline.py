"""The one-line human summary of an event, as a support agent reads it in a customer's timeline.

Pure: it sees only the event's type and data (Python values or their JSON forms), so the HTTP API
and the timeline projection show the same words. Personal fields erased by crypto-shredding arrive
as "[erased]" and are shown as such.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

Data = Mapping[str, Any]


def summarise(type_: str, data: Data) -> str:
    """One line saying what happened, in the product's words."""
    describe = SUMMARIES.get(type_)
    if describe is None:
        return type_
    return describe(data)


def _text(data: Data, name: str) -> str:
    value = data.get(name)
    if value is None:
        return "?"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _day(data: Data, name: str) -> str:
    """A timestamp shortened to its date, as RFC 3339 writes it."""
    return _text(data, name)[:10]


def _because(data: Data, name: str = "reason") -> str:
    return f": {data[name]}" if data.get(name) else ""


def _list(data: Data, name: str) -> str:
    values = data.get(name) or []
    return ", ".join(str(v) for v in values) if values else "every channel"


def _offer_made(data: Data) -> str:
    until = f" (until {_day(data, 'expires_at')})" if data.get("expires_at") else ""
    return f"Offer {_text(data, 'offer_id')} made: {_text(data, 'summary')}{until}"


def _error_admitted(data: Data) -> str:
    return (
        f"Error {_text(data, 'error_id')} admitted ({_text(data, 'severity')}, "
        f"found by {_text(data, 'discovered_by')}): {_text(data, 'summary')}"
    )


def _question_answered(data: Data) -> str:
    outcome = "resolved" if data.get("resolved") else "unresolved"
    rating = f", rated {data['rating']}/5" if data.get("rating") is not None else ""
    case = _text(data, "case_id")
    return f"Question on {_text(data, 'topic')} answered, {outcome}{rating} (case {case})"


def _consent_granted(data: Data) -> str:
    categories = ", ".join(str(c) for c in data.get("data_categories") or []) or "no personal data"
    return (
        f"Consent granted for {_text(data, 'purpose')} on {_list(data, 'channels')} "
        f"using {categories} (notice {_text(data, 'notice_version')})"
    )


def _consent_withdrawn(data: Data) -> str:
    purpose = data.get("purpose")
    what = "every purpose (objection)" if purpose == "*" else _text(data, "purpose")
    return f"Consent withdrawn for {what} on {_list(data, 'channels')}"


def _preferences_updated(data: Data) -> str:
    changes = []
    if data.get("timezone"):
        changes.append(f"time zone {data['timezone']}")
    quiet = data.get("quiet_hours")
    if isinstance(quiet, Mapping) and quiet:
        changes.append(f"quiet hours {quiet.get('start', '?')}-{quiet.get('end', '?')}")
    return "Preferences updated: " + (", ".join(changes) or "nothing")


def _push_decided(data: Data) -> str:
    decision = data.get("decision")
    outcome = decision.get("outcome", "?") if isinstance(decision, Mapping) else "?"
    return f"Push {_text(data, 'push_id')} decided: {outcome}"


SUMMARIES: dict[str, Callable[[Data], str]] = {
    "promise.made": lambda d: (
        f"Promise {_text(d, 'promise_id')} made: {_text(d, 'summary')} (due {_day(d, 'due_at')})"
    ),
    "promise.kept": lambda d: f"Promise {_text(d, 'promise_id')} kept",
    "promise.broken": lambda d: f"Promise {_text(d, 'promise_id')} broken{_because(d)}",
    "promise.released": lambda d: f"Promise {_text(d, 'promise_id')} released{_because(d)}",
    "offer.made": _offer_made,
    "offer.accepted": lambda d: f"Offer {_text(d, 'offer_id')} accepted",
    "offer.declined": lambda d: f"Offer {_text(d, 'offer_id')} declined",
    "offer.honored": lambda d: f"Offer {_text(d, 'offer_id')} honored",
    "offer.reneged": lambda d: f"Offer {_text(d, 'offer_id')} reneged{_because(d)}",
    "error.admitted": _error_admitted,
    "error.reported": lambda d: (
        f"Error {_text(d, 'error_id')} reported by {_text(d, 'reported_by')}: {_text(d, 'summary')}"
    ),
    "error.disputed": lambda d: f"Error {_text(d, 'error_id')} disputed{_because(d)}",
    "error.confirmed": lambda d: f"Error {_text(d, 'error_id')} confirmed by {_text(d, 'by')}",
    "error.withdrawn": lambda d: f"Error report {_text(d, 'error_id')} withdrawn",
    "question.answered": _question_answered,
    "case.reopened": lambda d: f"Case {_text(d, 'case_id')} reopened",
    "advice.given": lambda d: (
        f"Advice {_text(d, 'advice_id')} on {_text(d, 'topic')}: {_text(d, 'summary')}"
    ),
    "advice.rated": lambda d: (
        f"Advice {_text(d, 'advice_id')} rated {'helpful' if d.get('helpful') else 'not helpful'}"
    ),
    "consent.granted": _consent_granted,
    "consent.withdrawn": _consent_withdrawn,
    "preferences.updated": _preferences_updated,
    "push.sent": lambda d: f"Push {_text(d, 'push_id')} sent",
    "push.feedback": lambda d: f"Push {_text(d, 'push_id')} feedback: {_text(d, 'reaction')}",
    "push.decided": _push_decided,
}
