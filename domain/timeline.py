"""The one-line human summary of each interaction, as the timeline shows it to a support agent."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Data = Mapping[str, Any]


def _quoted(data: Data, key: str = "summary") -> str:
    text = data.get(key)
    return f": {text}" if text else ""


def _because(data: Data) -> str:
    return f" ({data['reason']})" if data.get("reason") else ""


def _date(value: Any) -> str:
    return value.strftime("%Y-%m-%d") if hasattr(value, "strftime") else str(value)[:10]


def _kind_and_purpose(request: Data) -> str:
    """A service push has no purpose (None), which a person should not read."""
    return ", ".join(str(part) for part in (request.get("kind"), request.get("purpose")) if part)


SUMMARIES: dict[str, Callable[[Data], str]] = {
    "promise.made": lambda d: f"Promised{_quoted(d)}, due {_date(d['due_at'])}",
    "promise.kept": lambda d: f"Kept promise {d['promise_id']}",
    "promise.broken": lambda d: f"Broke promise {d['promise_id']}{_because(d)}",
    "promise.released": lambda d: f"Released from promise {d['promise_id']}{_because(d)}",
    "offer.made": lambda d: f"Offered{_quoted(d)}",
    "offer.accepted": lambda d: f"Customer accepted offer {d['offer_id']}",
    "offer.declined": lambda d: f"Customer declined offer {d['offer_id']}",
    "offer.honored": lambda d: f"Honored offer {d['offer_id']}",
    "offer.reneged": lambda d: f"Reneged on offer {d['offer_id']}{_because(d)}",
    "error.admitted": lambda d: (
        f"Admitted a {d['severity']} error found by {d['discovered_by']}{_quoted(d)}"
    ),
    "error.reported": lambda d: f"Error reported by {d['reported_by']}{_quoted(d)}",
    "error.disputed": lambda d: f"Disputed error {d['error_id']}{_because(d)}",
    "error.confirmed": lambda d: f"Error {d['error_id']} confirmed by {d['by']}",
    "error.withdrawn": lambda d: f"Error report {d['error_id']} withdrawn",
    "question.answered": lambda d: (
        f"Answered a {d['topic']} question, {'resolved' if d['resolved'] else 'unresolved'}"
        + (f", rated {d['rating']}/5" if d.get("rating") else "")
    ),
    "case.reopened": lambda d: f"Case {d['case_id']} reopened",
    "advice.given": lambda d: f"Advised on {d['topic']}{_quoted(d)}",
    "advice.rated": lambda d: (
        f"Advice {d['advice_id']} rated {'helpful' if d['helpful'] else 'unhelpful'}"
    ),
    "consent.granted": lambda d: (
        f"Consented to {d['purpose']} on {', '.join(d['channels'])}"
        + (f" using {', '.join(d['data_categories'])}" if d.get("data_categories") else "")
    ),
    "consent.withdrawn": lambda d: (
        "Objected to all offers and advice"
        if d["purpose"] == "*"
        else f"Withdrew consent to {d['purpose']}"
        + (f" on {', '.join(d['channels'])}" if d.get("channels") else "")
    ),
    "preferences.updated": lambda d: (
        "Updated preferences"
        + (f": time zone {d['timezone']}" if d.get("timezone") else "")
        + (
            f", quiet {d['quiet_hours']['start']}-{d['quiet_hours']['end']}"
            if d.get("quiet_hours")
            else ""
        )
    ),
    "push.decided": lambda d: (
        f"Push {d['push_id']} {d['decision'].get('outcome', 'decided')}"
        + (f" ({_kind_and_purpose(d['request'])})" if d.get("request") else "")
    ),
    "push.sent": lambda d: f"Sent push {d['push_id']}",
    "push.feedback": lambda d: f"Customer {d['reaction']} push {d['push_id']}",
}


def summarise(type_: str, data: Data) -> str:
    """One line a support agent reads at a glance; never fails on an unexpected shape."""
    describe = SUMMARIES.get(type_)
    if describe is None:
        return type_
    try:
        return describe(data)
    except (KeyError, TypeError, AttributeError):
        return type_
