"""The push gate: may the brand send this push to this customer now?

:func:`evaluate` is a pure function of the relationship's state, its trust scores, the brand's
policy, the request and the decision time: the same inputs always give the same decision, so an
audit can re-evaluate any recorded decision exactly. Each rule is one small function returning a
:class:`Reason`; all seven are evaluated and reported, even after one has failed. docs/gate.md
explains every rule and choice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from domain.brand import DIMENSIONS, HH_MM, Policy, is_timezone
from domain.errors import InvalidPushRequest
from domain.relationship import OPEN, Relationship
from domain.trust import overdue_at

KINDS = ("service", "offer", "advice")
SELLING = ("offer", "advice")
SEND_AT_TOLERANCE = timedelta(minutes=5)
"""How far the CRM's clock and the ledger's may disagree: how far in the past a decision's
`send_at` may be, and how long before its decision a send may be dated before it is a finding
("sent before it was decided", projections/decisions.py)."""
RENEGED_MEMORY = timedelta(days=30)
REPORT_GRACE = timedelta(days=7)
FREQUENCY_WINDOW = timedelta(days=7)
UNWANTED_WINDOW = timedelta(days=30)
PRECISION = 9
"""Scores are compared after rounding to this many decimals, so float noise never flips a rule."""

Scores = Mapping[str, Any]
"""`{"consistency": {"P", "u", "evidence"?, ...}, "honesty": .., "expertise": .., "overall": P}`"""


@dataclass(frozen=True)
class PushRequest:
    """What a brand asks the gate about: one push to one customer."""

    push_id: str
    customer: str
    kind: str
    channel: str
    purpose: str | None = None
    data_categories: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, request: Mapping[str, Any]) -> PushRequest:
        """The request, checked: unknown or missing fields raise InvalidPushRequest."""
        unknown = sorted(
            set(request) - {"push_id", "customer", "kind", "channel", "purpose", "data_categories"}
        )
        if unknown:
            raise InvalidPushRequest(f"unknown field(s): {', '.join(unknown)}", field=unknown[0])
        kind = request.get("kind")
        if kind not in KINDS:
            raise InvalidPushRequest(f"kind must be one of {', '.join(KINDS)}", field="kind")
        categories = request.get("data_categories") or []
        if not isinstance(categories, list | tuple) or not all(_name(c) for c in categories):
            message = "data_categories must be a list of names"
            raise InvalidPushRequest(message, field="data_categories")
        for name in ("push_id", "customer", "channel"):
            _require_name(request.get(name), name)
        if kind in SELLING and request.get("purpose") is None:
            raise InvalidPushRequest(f"purpose is required for {kind} pushes", field="purpose")
        if request.get("purpose") is not None:
            _require_name(request.get("purpose"), "purpose")
        return cls(
            push_id=request["push_id"],
            customer=request["customer"],
            kind=kind,
            channel=request["channel"],
            purpose=request.get("purpose"),
            data_categories=tuple(sorted(set(categories))),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "push_id": self.push_id,
            "customer": self.customer,
            "kind": self.kind,
            "channel": self.channel,
            "purpose": self.purpose,
            "data_categories": list(self.data_categories),
        }


def _name(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 128


def _require_name(value: object, field: str) -> None:
    if not _name(value):
        raise InvalidPushRequest(f"{field} must be a string of 1 to 128 characters", field=field)


@dataclass(frozen=True)
class Reason:
    """One rule's verdict. A failed rule with `retry_after` defers; without it, it denies."""

    rule: str
    passed: bool
    detail: str
    evidence: list[str]
    retry_after: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        reason: dict[str, Any] = {
            "rule": self.rule,
            "passed": self.passed,
            "detail": self.detail,
            "evidence": list(self.evidence),
        }
        if self.retry_after is not None:
            reason["retry_after"] = self.retry_after
        return reason

    @property
    def defers(self) -> bool:
        return not self.passed and self.retry_after is not None

    @property
    def denies(self) -> bool:
        return not self.passed and self.retry_after is None


@dataclass(frozen=True)
class Context:
    """Everything a rule may read: the gate's inputs, nothing else."""

    relationship: Relationship
    scores: Scores
    policy: Policy
    request: PushRequest
    now: datetime


Rule = Callable[[Context], Reason]


def evaluate(
    relationship: Relationship, scores: Scores, policy: Policy, request: PushRequest, now: datetime
) -> dict[str, Any]:
    """The decision: outcome, retry_after on defer, every rule's reason, scores, policy version."""
    if now.tzinfo is None:
        raise ValueError("the decision time needs a UTC offset")
    context = Context(relationship, scores, policy, request, now.astimezone(UTC))
    reasons = [_applied(name, rule, context) for name, (rule, _) in RULES.items()]
    decision: dict[str, Any] = {"outcome": outcome(reasons)}
    if decision["outcome"] == "defer":
        decision["retry_after"] = retry_after(reasons, context)
    decision["reasons"] = [reason.as_dict() for reason in reasons]
    decision["scores"] = _plain(scores)
    decision["policy_version"] = policy.version
    return decision


def _applied(name: str, rule: Rule, context: Context) -> Reason:
    kinds = RULES[name][1]
    if context.request.kind not in kinds:
        return Reason(name, True, f"does not apply to {context.request.kind} pushes", [])
    return rule(context)


def outcome(reasons: Iterable[Reason]) -> str:
    """deny beats defer beats allow."""
    verdicts = list(reasons)
    if any(reason.denies for reason in verdicts):
        return "deny"
    if any(reason.defers for reason in verdicts):
        return "defer"
    return "allow"


def retry_after(reasons: Iterable[Reason], context: Context) -> datetime:
    """The earliest time every deferring rule passes.

    The frequency rule, once it passes, keeps passing (pushes, reactions and declines only leave
    their windows); quiet hours come back every day. So: the latest of the deferrals, moved past the
    quiet hours it falls in, if any.
    """
    latest = max(reason.retry_after for reason in reasons if reason.retry_after is not None)
    window, zone, _, _ = quiet_hours_in_force(context.relationship, context.policy, context.now)
    return quiet_until(latest, window, zone) or latest


# --- 1. consent ---------------------------------------------------------------------------------


def consent(context: Context) -> Reason:
    """Active consent for the purpose on the channel, covering every data category used."""
    request, now = context.request, context.now
    what = f"{request.purpose} on {request.channel}"
    grant = context.relationship.consents.get(request.purpose or "", {}).get(request.channel)
    if grant is None:
        return Reason("consent", False, f"no consent for {what}", [])
    evidence = [grant["event_id"]]
    if grant["status"] != "granted":
        since = _when(grant["since"])
        return Reason("consent", False, f"consent for {what} was withdrawn at {since}", evidence)
    if grant["since"] > now:  # a decision as at a moment (send_at) before the customer granted it
        since = _when(grant["since"])
        return Reason(
            "consent", False, f"consent for {what} is granted only from {since}", evidence
        )
    if grant.get("expires_at") is not None and grant["expires_at"] <= now:
        expired = _when(grant["expires_at"])
        return Reason("consent", False, f"consent for {what} expired at {expired}", evidence)
    missing = [c for c in request.data_categories if c not in grant["data_categories"]]
    if missing:
        detail = f"consent for {what} does not cover {', '.join(missing)}"
        return Reason("consent", False, detail, evidence)
    covered = ", ".join(request.data_categories) or "no data categories"
    return Reason("consent", True, f"active consent for {what}, covering {covered}", evidence)


# --- 2. objection -------------------------------------------------------------------------------


def objection(context: Context) -> Reason:
    """A withdrawal of every purpose (`*`) blocks all offers and advice (GDPR Art. 21) on the
    channels it names, else on every channel."""
    channel = context.request.channel
    objected = context.relationship.objection_on(channel)
    if objected is not None:
        on = f" on {', '.join(objected['channels'])}" if objected["channels"] else ""
        detail = f"the customer objected to all offers and advice{on} at {_when(objected['since'])}"
        return Reason("objection", False, detail, [objected["event_id"]])
    elsewhere = sorted(
        {c for o in context.relationship.standing_objections() for c in o["channels"]}
    )
    if elsewhere:
        detail = (
            f"the customer objected to offers and advice on {', '.join(elsewhere)}, not {channel}"
        )
        return Reason("objection", True, detail, [])
    return Reason("objection", True, "the customer has not objected to offers and advice", [])


# --- 3. open breaches ---------------------------------------------------------------------------


def open_breaches(context: Context) -> Reason:
    """Overdue promises, offers reneged in 30 days, reports unadmitted past 7 days block selling."""
    breaches = [
        *_overdue_promises(context.relationship, context.now),
        *_reneged_offers(context.relationship, context.now),
        *_unadmitted_reports(context.relationship, context.now),
    ]
    if not breaches:
        return Reason("open_breaches", True, "no open breach", [])
    detail = "; ".join(text for text, _ in breaches)
    return Reason("open_breaches", False, detail, [event_id for _, event_id in breaches])


def _overdue_promises(relationship: Relationship, now: datetime) -> list[tuple[str, str]]:
    return [
        (f"promise {pid} open past its due time {_when(p['due_at'])} + 24 h", p["event_id"])
        for pid, p in sorted(relationship.items["promise"].items())
        if p["status"] == "open" and now > overdue_at(p["due_at"])
    ]


def _reneged_offers(relationship: Relationship, now: datetime) -> list[tuple[str, str]]:
    return [
        (f"offer {oid} reneged at {_when(o['at'])}", o["reneged_by"])
        for oid, o in sorted(relationship.items["offer"].items())
        if o["status"] == "reneged" and now - RENEGED_MEMORY < o["at"]
    ]


def _unadmitted_reports(relationship: Relationship, now: datetime) -> list[tuple[str, str]]:
    return [
        (f"error {eid} reported at {_when(e['opened_at'])}, not admitted in 7 days", e["event_id"])
        for eid, e in sorted(relationship.items["error"].items())
        if e["status"] in OPEN and now > e["opened_at"] + REPORT_GRACE
    ]


# --- 4. trust -----------------------------------------------------------------------------------


def trust(context: Context) -> Reason:
    """P at or above the policy's threshold, for each dimension the kind is judged on."""
    thresholds = context.policy.thresholds[context.request.kind]
    checks = [_threshold_check(dim, context.scores.get(dim), t) for dim, t in thresholds.items()]
    passed = all(ok for ok, _ in checks)
    evidence = _score_evidence(context.scores, thresholds)
    return Reason("trust", passed, "; ".join(text for _, text in checks), evidence)


def _threshold_check(dimension: str, score: Any, threshold: float) -> tuple[bool, str]:
    p = score.get("P") if isinstance(score, Mapping) else None
    if not isinstance(p, int | float):
        return False, f"no {dimension} score"
    ok = round(p, PRECISION) >= threshold
    return ok, f"{dimension} P {p:.3f} {'>=' if ok else '<'} threshold {threshold:.3f}"


def _score_evidence(scores: Scores, dimensions: Iterable[str]) -> list[str]:
    """The event ids the trust scores name as moving them most, without repeats."""
    ids: list[str] = []
    for dimension in dimensions:
        score = scores.get(dimension)
        for event_id in score.get("evidence", []) if isinstance(score, Mapping) else []:
            if event_id not in ids:
                ids.append(event_id)
    return ids


# --- 5. personalisation depth -------------------------------------------------------------------


def personalisation_depth(context: Context) -> Reason:
    """The more data categories a push uses, the more relationship evidence (1 - u) it needs."""
    need = required_evidence(context.request.data_categories, context.policy)
    have = relationship_evidence(context.scores)
    passed = round(have, PRECISION) >= round(need, PRECISION)
    categories, policy = context.request.data_categories, context.policy
    sensitive = [c for c in categories if c in policy.sensitive_categories]
    one = len(categories) == 1
    used = f"{len(categories)} data categor{'y' if one else 'ies'}"
    if sensitive:
        used += f" ({len(sensitive)} sensitive: {', '.join(sensitive)})"
    needs = "needs" if one else "need"
    detail = f"{used} {needs} relationship evidence {need:.3f}, the relationship has {have:.3f}"
    evidence = _score_evidence(context.scores, DIMENSIONS)
    return Reason("personalisation_depth", passed, detail, evidence)


def required_evidence(categories: Iterable[str], policy: Policy) -> float:
    """min(cap, per_category x weight); a sensitive category weighs `sensitive_weight`, others 1."""
    depth, sensitive = policy.personalisation_depth, policy.sensitive_categories
    weight = sum(depth["sensitive_weight"] if c in sensitive else 1.0 for c in set(categories))
    return float(min(depth["cap"], depth["per_category"] * weight))


def relationship_evidence(scores: Scores) -> float:
    """1 - u, u the mean uncertainty of the three dimensions (a missing dimension's u is 1)."""
    uncertainties = []
    for dimension in DIMENSIONS:
        score = scores.get(dimension)
        u = score.get("u") if isinstance(score, Mapping) else None
        uncertainties.append(min(1.0, max(0.0, u)) if isinstance(u, int | float) else 1.0)
    return 1.0 - sum(uncertainties) / len(uncertainties)


# --- 6. frequency -------------------------------------------------------------------------------


def frequency(context: Context) -> Reason:
    """Allowed offers and advice in 7 days: floor(cap x (0.5 + overall P)), halved per unwanted
    reaction and per full `declines_per_halving` declines in 30 days."""
    overall = context.scores.get("overall")
    if not isinstance(overall, int | float):
        return Reason("frequency", False, "no overall trust score", [])
    pushes = _counted_pushes(context.relationship, context.now)
    unwanted = _recent_unwanted(context.relationship, context.now)
    declines = _recent_declines(context.relationship, context.policy, context.now)
    evidence = [event_id for _, event_id in pushes + unwanted + declines]
    halvings = _halvings(len(unwanted), len(declines), context.policy)
    limit = allowance(context.policy.frequency_cap, overall, halvings)
    counted = f"{len(pushes)} allowed in 7 days, {len(unwanted)} unwanted in 30 days"
    if context.policy.declines_per_halving is not None:  # else as before: audits must reproduce
        per = context.policy.declines_per_halving
        counted += f", {len(declines)} declined in 30 days (every {per} halve the allowance)"
    if len(pushes) < limit:
        return Reason("frequency", True, f"{counted}: within the allowance of {limit}", evidence)
    free = next_free_slot(
        [t for t, _ in pushes], [t for t, _ in unwanted], [t for t, _ in declines], context
    )
    if free is None:
        detail = f"{counted}: the allowance at this trust is {limit}, so no push can be sent"
        return Reason("frequency", False, detail, evidence)
    detail = f"{counted}: the allowance of {limit} is used up until {_when(free)}"
    return Reason("frequency", False, detail, evidence, retry_after=free)


def allowance(cap: int, overall: float, halvings: int) -> int:
    """floor(cap x (0.5 + P)), halved `halvings` times (flooring once, at the end)."""
    limit: int = math.floor(round(cap * (0.5 + overall) / 2**halvings, PRECISION))
    return limit


def _halvings(unwanted: int, declines: int, policy: Policy) -> int:
    """One per unwanted reaction, one per full `declines_per_halving` declines (if counted)."""
    per = policy.declines_per_halving
    return unwanted + (declines // per if per is not None else 0)


def _counted_pushes(relationship: Relationship, now: datetime) -> list[tuple[datetime, str]]:
    """Allowed offer and advice pushes decided in the last 7 days, oldest first."""
    return sorted(
        (push["decided_at"], push["decided_by"])
        for push in relationship.items["push"].values()
        if push.get("outcome") == "allow"
        and push.get("push_kind") in SELLING
        and push["decided_at"] > now - FREQUENCY_WINDOW
    )


def _recent_unwanted(relationship: Relationship, now: datetime) -> list[tuple[datetime, str]]:
    return [
        (reaction["at"], reaction["event_id"])
        for reaction in relationship.unwanted
        if reaction["at"] > now - UNWANTED_WINDOW
    ]


def _recent_declines(
    relationship: Relationship, policy: Policy, now: datetime
) -> list[tuple[datetime, str]]:
    """The declines of the last 30 days, oldest first, if the policy counts them (else none)."""
    if policy.declines_per_halving is None:
        return []
    return [
        (at, event_id) for at, event_id in relationship.declines() if at > now - UNWANTED_WINDOW
    ]


def next_free_slot(
    pushes: list[datetime], unwanted: list[datetime], declines: list[datetime], context: Context
) -> datetime | None:
    """The first time a push would be within the allowance, if no other push were allowed meanwhile.

    Only a push leaving the 7 days, or a reaction or a decline leaving the 30 days, can free a
    slot, so those instants are the candidates. None if even an empty window allows nothing at
    this trust.
    """
    cap, overall = context.policy.frequency_cap, float(context.scores["overall"])
    reactions = unwanted + declines
    leaving = {t + FREQUENCY_WINDOW for t in pushes} | {t + UNWANTED_WINDOW for t in reactions}
    moments = sorted(leaving)
    for moment in (m for m in moments if m > context.now):
        in_window = sum(1 for t in pushes if t > moment - FREQUENCY_WINDOW)
        recent = sum(1 for t in unwanted if t > moment - UNWANTED_WINDOW)
        declined = sum(1 for t in declines if t > moment - UNWANTED_WINDOW)
        if in_window < allowance(cap, overall, _halvings(recent, declined, context.policy)):
            return moment
    return None


# --- 7. quiet hours -----------------------------------------------------------------------------


def quiet_hours(context: Context) -> Reason:
    """No push in the quiet hours (the customer's own, else the brand's), in the customer's zone."""
    window, zone, source, evidence = quiet_hours_in_force(
        context.relationship, context.policy, context.now
    )
    hours = f"{window['start']}-{window['end']} {zone.key} ({source})"
    until = quiet_until(context.now, window, zone)
    if until is None:
        return Reason("quiet_hours", True, f"outside the quiet hours {hours}", evidence)
    detail = f"inside the quiet hours {hours} until {_when(until)}"
    return Reason("quiet_hours", False, detail, evidence, retry_after=until)


def quiet_hours_in_force(
    relationship: Relationship, policy: Policy, now: datetime
) -> tuple[dict[str, str], ZoneInfo, str, list[str]]:
    """The quiet hours and time zone, each the customer's if usable, else the brand's policy's:
    the customer's as set at the decision time `now` (a setting dated after it is not yet in
    force, as a consent granted after it is not yet consent)."""
    preferences, set_by = relationship.preferences_at(now)
    evidence: list[str | None] = []
    window, zone_name, source = policy.quiet_hours, policy.timezone, "the brand's policy"
    if _is_window(preferences.get("quiet_hours")):
        window, source = preferences["quiet_hours"], "the customer's"
        evidence.append(set_by.get("quiet_hours"))
    if is_timezone(preferences.get("timezone")):
        zone_name = preferences["timezone"]
        evidence.append(set_by.get("timezone"))
    ids = [event_id for event_id in dict.fromkeys(evidence) if event_id is not None]
    return window, ZoneInfo(zone_name), source, ids


def _is_window(value: object) -> bool:
    return (
        isinstance(value, Mapping)
        and set(value) == {"start", "end"}
        and all(isinstance(value[k], str) and HH_MM.match(value[k]) for k in ("start", "end"))
    )


def quiet_until(at: datetime, window: Mapping[str, str], zone: ZoneInfo) -> datetime | None:
    """When the quiet hours that `at` falls in end (UTC), or None if `at` is outside them.

    The window is [start, end) in local wall time and may cross midnight; start == end means none.
    """
    start, end = _clock(window["start"]), _clock(window["end"])
    local = at.astimezone(zone)
    now = local.time().replace(tzinfo=None)
    if start == end:
        return None
    if start < end:
        quiet, end_date = start <= now < end, local.date()
    else:
        quiet = now >= start or now < end
        end_date = local.date() + timedelta(days=1) if now >= start else local.date()
    if not quiet:
        return None
    until = datetime.combine(end_date, end, tzinfo=zone)
    if until <= at:  # the end time came round twice as the clocks went back: the second one
        until = until.replace(fold=1)
    return until.astimezone(UTC)


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


# --- the rules, in the order they are reported --------------------------------------------------

RULES: dict[str, tuple[Rule, tuple[str, ...]]] = {
    "consent": (consent, SELLING),
    "objection": (objection, SELLING),
    "open_breaches": (open_breaches, ("offer",)),
    "trust": (trust, SELLING),
    "personalisation_depth": (personalisation_depth, SELLING),
    "frequency": (frequency, SELLING),
    "quiet_hours": (quiet_hours, KINDS),
}
"""Each rule's function and the kinds it applies to (DESIGN.md: service skips 1, 3, 4, 5, 6)."""


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _plain(value: Any) -> Any:
    """Scores in the types the event store keeps: dicts, lists, numbers, strings. (Numbers and
    strings, most of them, are told by their exact type first: a check against the Mapping ABC
    took a third of the seven rules' time.)"""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


_SCALARS = frozenset({float, int, str, bool, type(None)})
