"""`trustledger demo`: a seeded, reproducible dataset of three brands, loaded through the Ledger.

Two halves:

- **Generation**, pure. :func:`plan` writes each customer's two years with a brand
  (api/demo_brands.py says how each brand behaves) as steps in order of event time: events the
  brand posts, and pushes it asks the gate about. :func:`after_decision` says what the brand does
  with the gate's answer (sends, waits and asks again, or sends anyway) and how the customer
  reacts. Every draw comes from a ``random.Random`` seeded by the seed and the customer or push,
  so the same seed and ``now`` give the same events, whatever the order they are loaded in.
- **Loading**, :func:`load`: the steps in order of event time, events recorded in batches with
  ``Ledger.record_batch``, each push decided by ``Ledger.decide_push`` at its own time. The
  ledger's rules check every event; nothing is written to a table directly.
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from api.demo_brands import BRANDS, Conduct
from domain.application import Ledger
from domain.gate import PushRequest
from domain.relationship import PostedEvent

DEFAULT_SEED = 8
"""Issue 8's demo: any seed will do, this one is the default."""
DEFAULT_CUSTOMERS_PER_BRAND = 400
SPAN = timedelta(days=730)
"""Two years of event time, up to `now`."""
EARLIEST_NOW = datetime(1970, 1, 1, tzinfo=UTC) + SPAN
"""The earliest `now`: the ledger refuses events dated before 1970."""
BATCH_SIZE = 400
MARKETING, ADVICE = "marketing", "advice"
PUSH_CHANNELS = ("email", "push", "sms")
CONVERSATION_CHANNELS = ("phone", "chat", "email")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")  # fmt: skip
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
CONSENT_METHODS = {"web_form": 45, "app_settings": 30, "phone_call": 10, "checkout_checkbox": 15}
OTHER_TIMEZONES = ("Europe/Madrid", "Europe/Warsaw", "America/New_York", "Asia/Dubai")
REFERENCES = ("promise_id", "offer_id", "error_id", "case_id", "advice_id")
QUIET_HOURS = (
    {"start": "22:00", "end": "07:00"},
    {"start": "20:00", "end": "09:00"},
    {"start": "23:00", "end": "06:30"},
)


# --- steps --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """An event the brand posts."""

    brand: str
    event: PostedEvent

    @property
    def at(self) -> datetime:
        return self.event.occurred_at

    @property
    def key(self) -> tuple[datetime, str, str, str]:
        return self.at, self.brand, self.event.customer, self.event.event_id


@dataclass(frozen=True)
class Ask:
    """A push the brand asks the gate about, at its time; `attempt` 2 asks again after a defer."""

    brand: str
    at: datetime
    request: PushRequest
    attempt: int = 1

    @property
    def key(self) -> tuple[datetime, str, str, str]:
        return self.at, self.brand, self.request.customer, f"{self.request.push_id}/{self.attempt}"


Step = Record | Ask


@dataclass(frozen=True)
class Plan:
    """The demo's brands and customers and their steps, sorted by event time."""

    seed: int
    now: datetime
    brands: tuple[Conduct, ...]
    customers: dict[str, list[str]]
    steps: list[Step]

    @property
    def events(self) -> int:
        return sum(1 for step in self.steps if isinstance(step, Record))

    @property
    def asks(self) -> int:
        return sum(1 for step in self.steps if isinstance(step, Ask))


def today() -> datetime:
    """Midnight UTC today: the default `now`, so the same seed loads the same data all day."""
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def plan(
    seed: int = DEFAULT_SEED,
    now: datetime | None = None,
    customers_per_brand: int = DEFAULT_CUSTOMERS_PER_BRAND,
    brands: Sequence[Conduct] = BRANDS,
) -> Plan:
    """Every customer's story with each brand, by event time, over the two years up to `now`."""
    end = (now or today()).astimezone(UTC).replace(microsecond=0)
    steps: list[Step] = []
    customers: dict[str, list[str]] = {}
    for index, conduct in enumerate(brands):
        campaigns = campaign_days(conduct, random.Random(f"{seed}:{conduct.slug}:campaigns"), end)
        numbers = range(index * customers_per_brand + 1, (index + 1) * customers_per_brand + 1)
        customers[conduct.slug] = [f"cust-{n:06d}" for n in numbers]
        for customer in customers[conduct.slug]:
            rng = random.Random(f"{seed}:{conduct.slug}:{customer}")
            steps.extend(Story(conduct, customer, rng, end).write(campaigns))
    steps.sort(key=lambda step: step.key)
    return Plan(seed, end, tuple(brands), customers, steps)


def campaign_days(conduct: Conduct, rng: random.Random, now: datetime) -> list[datetime]:
    """The brand's campaigns: bursts of offers to many customers, each over three days."""
    first, last = now - SPAN + timedelta(days=14), now - timedelta(days=3)
    days = [first + (last - first) * rng.random() for _ in range(conduct.campaigns)]
    return sorted(day.replace(hour=9, minute=0, second=0, microsecond=0) for day in days)


# --- one customer's story -----------------------------------------------------------------------


@dataclass
class Draft:
    """An event before it has its id: ids follow event time within a customer."""

    at: datetime
    type: str
    data: dict[str, Any]
    actor: str | None = None
    channel: str | None = None


@dataclass
class PushDraft:
    at: datetime
    kind: str
    channel: str
    purpose: str | None
    categories: tuple[str, ...]
    unasked: bool = False


@dataclass
class Story:
    """One customer's two years with one brand, drafted episode by episode, then numbered."""

    conduct: Conduct
    customer: str
    rng: random.Random
    now: datetime
    drafts: list[Draft] = field(default_factory=list)
    pushes: list[PushDraft] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    channels: dict[str, list[str]] = field(default_factory=dict)
    """The channels of each purpose's first consent (a withdrawal must name one of them)."""
    categories: dict[str, list[str]] = field(default_factory=dict)
    """The data categories of each purpose's first consent: a later one grants the same."""
    switches: list[tuple[datetime, str, str | None, bool]] = field(default_factory=list)
    """Consent granted or withdrawn: (when, purpose or '*', channel, granted), as drafted."""

    def __post_init__(self) -> None:
        start = self.now - SPAN
        if self.rng.random() < 0.55:  # a customer already, whose story starts with the ledger
            self.joined = start + timedelta(days=30 * self.rng.random())
        else:
            self.joined = start + (SPAN - timedelta(days=7)) * self.rng.random()
        self.joined = self.joined.replace(microsecond=0)
        self.activity = self.rng.lognormvariate(0, 0.35)
        self.words = self.conduct.words

    def write(self, campaigns: Sequence[datetime]) -> list[Step]:
        self.join()
        if self.rng.random() < self.conduct.objection:
            self.object(self.moment())
        episodes: list[tuple[Callable[[datetime], None], float]] = [
            (self.consent_change, self.conduct.consent_changes),  # before pushes, which read them
            (self.promise, self.conduct.promises),
            (self.error, self.conduct.errors),
            (self.question, self.conduct.questions),
            (self.advice, self.conduct.advice),
            (self.offer, self.conduct.offers),
            (self.push, self.conduct.pushes),
        ]
        for episode, rate in episodes:
            for at in self.moments(rate):
                episode(at)
        self.campaigns(campaigns)
        return self.numbered()

    # --- time -----------------------------------------------------------------------------

    def years(self) -> float:
        return (self.now - self.joined) / timedelta(days=365)

    def moments(self, rate: float) -> list[datetime]:
        """Times of a Poisson number of episodes (`rate` a year), in office hours since joining."""
        return [
            self.moment() for _ in range(poisson(self.rng, rate * self.years() * self.activity))
        ]

    def moment(self) -> datetime:
        return self.office(self.joined + (self.now - self.joined) * self.rng.random())

    def office(self, day: datetime, first: int = 8, last: int = 17) -> datetime:
        hour, minute, second = (
            self.rng.randint(first, last),
            self.rng.randrange(60),
            self.rng.randrange(60),
        )
        return day.replace(hour=hour, minute=minute, second=second, microsecond=0)

    def after(self, moment: datetime, low_days: float, high_days: float) -> datetime:
        """A time in office hours some days after `moment`, and always after it."""
        at = self.office(moment + timedelta(days=self.rng.uniform(low_days, high_days)))
        return at if at > moment else moment + timedelta(minutes=self.rng.randint(5, 90))

    def between(self, start: datetime, end: datetime) -> datetime:
        """A time between the two, in office hours if that day's allow it."""
        at = (start + (end - start) * self.rng.uniform(0.15, 0.95)).replace(microsecond=0)
        during = self.office(at)
        return during if start < during < end else at

    # --- drafting ---------------------------------------------------------------------------

    def draft(
        self,
        at: datetime,
        type_: str,
        actor: str | None = None,
        channel: str | None = None,
        **data: Any,
    ) -> None:
        self.drafts.append(Draft(at, type_, data, actor, channel))

    def ref(self, kind: str) -> str:
        self.counters[kind] = self.counters.get(kind, 0) + 1
        return f"{kind}-{self.counters[kind]}"

    def staff(self) -> str:
        return self.rng.choice(self.words.staff)

    def text(self, template: str, at: datetime) -> str:
        month = MONTHS[(at.month - 2) % 12]  # what goes wrong is usually last month's
        return template.format(
            month=month,
            day=max(1, at.day - self.rng.randint(1, 6)),
            weekday=self.rng.choice(WEEKDAYS[:5]),
            item=self.rng.choice(self.words.items),
            amount=self.rng.choice((12, 15, 20, 25, 30, 40, 45, 60)),
        )

    def choose(self, odds: Mapping[str, float]) -> str:
        return self.rng.choices(list(odds), weights=list(odds.values()))[0]

    # --- episodes ---------------------------------------------------------------------------

    def join(self) -> None:
        at, consents = self.joined, self.conduct.consents
        marketing = self.rng.sample(PUSH_CHANNELS, k=self.rng.choice((1, 2, 2, 3)))
        categories = list(consents.marketing[: self.rng.randint(1, len(consents.marketing))])
        self.grant(at, MARKETING, marketing, categories)
        if self.rng.random() < 0.6:
            advice = self.rng.sample(("email", "push"), k=self.rng.randint(1, 2))
            self.grant(at + timedelta(minutes=1), ADVICE, advice, list(consents.advice))
        zone = (
            self.conduct.timezone if self.rng.random() < 0.85 else self.rng.choice(OTHER_TIMEZONES)
        )
        quiet = self.rng.choice(QUIET_HOURS) if self.rng.random() < 0.25 else None
        at = at + timedelta(minutes=self.rng.randint(2, 20))
        self.draft(at, "preferences.updated", timezone=zone, quiet_hours=quiet)

    def grant(self, at: datetime, purpose: str, channels: list[str], categories: list[str]) -> None:
        method = self.choose(CONSENT_METHODS)
        self.channels.setdefault(purpose, sorted(channels))
        self.categories.setdefault(purpose, sorted(categories))
        self.switches.extend((at, purpose, channel, True) for channel in channels)
        expires = at + timedelta(days=730) if self.rng.random() < 0.2 else None
        self.draft(
            at,
            "consent.granted",
            actor=self.staff() if method == "phone_call" else None,
            channel={"phone_call": "phone", "app_settings": "push"}.get(method),
            purpose=purpose,
            channels=sorted(channels),
            data_categories=sorted(categories),
            notice_version=f"{at.year}.{1 if at.month < 7 else 2}",
            method=method,
            expires_at=expires,
            jurisdiction=self.conduct.jurisdiction,
        )

    def promise(self, at: datetime, summary: str | None = None) -> None:
        ref, channel = {"promise_id": self.ref("promise")}, self.rng.choice(CONVERSATION_CHANNELS)
        due = self.office(at + timedelta(days=self.rng.randint(1, 10)), 12, 17)
        text = summary or self.text(self.rng.choice(self.words.promises), at)
        self.draft(at, "promise.made", self.staff(), channel, **ref, summary=text, due_at=due)
        closed = self.promise_closed(at, due)
        if closed is not None:
            when, type_, reason = closed
            because = {} if type_ == "promise.kept" else {"reason": reason}
            self.draft(when, type_, self.staff(), channel, **ref, **because)

    def promise_closed(self, made: datetime, due: datetime) -> tuple[datetime, str, str] | None:
        """When and how the brand closes a promise, by its conduct; None leaves it open."""
        words, outcome = self.words, self.choose(self.conduct.promise_outcomes)
        if outcome == "kept":
            return self.between(made, due), "promise.kept", ""
        if outcome == "late":
            return self.after(due, 1, 12), "promise.kept", ""
        if outcome == "broken":
            return self.after(due, 0, 4), "promise.broken", self.rng.choice(words.break_reasons)
        if outcome == "released":
            reason = self.rng.choice(words.release_reasons)
            return self.between(made, due), "promise.released", reason
        return None  # forgotten: open past its due time, which counts against the brand

    def error(self, at: datetime) -> None:
        ref, path = {"error_id": self.ref("error")}, self.choose(self.conduct.error_paths)
        template, severity = self.rng.choice(self.words.errors)
        summary, channel = self.text(template, at), self.rng.choice(CONVERSATION_CHANNELS)
        if path == "found":
            self.admit(at, ref, summary, severity, "brand")
            return
        reported = {"summary": summary, "reported_by": "customer"}
        self.draft(at, "error.reported", self.staff(), channel, **ref, **reported)
        if path == "admitted":
            self.admit(self.after(at, 0.5, 5), ref, summary, severity, "customer")
        elif path == "disputed":
            self.dispute(self.after(at, 1, 6), ref)
        elif path == "withdrawn":  # the customer found it was not an error after all
            self.draft(self.after(at, 1, 5), "error.withdrawn", self.staff(), channel, **ref)

    def admit(
        self, at: datetime, ref: dict[str, str], summary: str, severity: str, discovered_by: str
    ) -> None:
        admitted = {"summary": summary, "severity": severity, "discovered_by": discovered_by}
        self.draft(at, "error.admitted", self.staff(), "email", **ref, **admitted)
        if self.rng.random() < self.conduct.fix_promised:
            fix = self.text(self.rng.choice(self.words.fixes), at)
            self.promise(at + timedelta(minutes=self.rng.randint(10, 60)), fix)

    def dispute(self, at: datetime, ref: dict[str, str]) -> None:
        """The brand disputes a report; an ombudsman or the like sometimes confirms it later."""
        reason = self.rng.choice(self.words.disputes)
        self.draft(at, "error.disputed", self.staff(), "email", **ref, reason=reason)
        if self.rng.random() < self.conduct.confirmed:
            by = self.rng.choice(self.words.confirmers)
            self.draft(self.after(at, 20, 60), "error.confirmed", None, None, **ref, by=by)

    def question(self, at: datetime) -> None:
        case_id, topic = self.ref("case"), self.rng.choice(self.words.topics)
        channel = self.rng.choice(CONVERSATION_CHANNELS)
        resolved = self.answer(at, case_id, topic, channel)
        if self.rng.random() < self.conduct.reopened * (1 if resolved else 3):
            reopened = self.after(at, 1, 7)
            self.draft(reopened, "case.reopened", self.staff(), channel, case_id=case_id)
            self.answer(self.after(reopened, 0.5, 3), case_id, topic, channel)

    def answer(self, at: datetime, case_id: str, topic: str, channel: str) -> bool:
        resolved = self.rng.random() < self.conduct.resolved
        rating = self.rng.choice((3, 4, 5, 5, 5) if resolved else (1, 2, 2, 3))
        answer = {"case_id": case_id, "topic": topic, "resolved": resolved}
        rated = rating if self.rng.random() < 0.8 else None
        self.draft(at, "question.answered", self.staff(), channel, **answer, rating=rated)
        return resolved

    def advice(self, at: datetime) -> None:
        ref, (topic, summary) = (
            {"advice_id": self.ref("advice")},
            self.rng.choice(self.words.advice),
        )
        channel, text = self.rng.choice(("email", "phone", "chat")), self.text(summary, at)
        self.draft(at, "advice.given", self.staff(), channel, **ref, topic=topic, summary=text)
        if self.rng.random() < 0.7:
            helpful = self.rng.random() < self.conduct.helpful
            self.draft(self.after(at, 3, 20), "advice.rated", None, channel, **ref, helpful=helpful)

    def offer(self, at: datetime) -> None:
        ref, words = {"offer_id": self.ref("offer")}, self.words
        claims = [self.rng.choice(words.claims)] if self.rng.random() < 0.4 else None
        made = {"summary": self.rng.choice(words.offers), "expires_at": at + timedelta(days=14)}
        self.draft(at, "offer.made", self.staff(), "email", **ref, **made, claims=claims)
        outcome = self.choose(self.conduct.offer_outcomes)
        if outcome == "declined":
            self.draft(self.after(at, 0.5, 10), "offer.declined", None, "email", **ref)
        if outcome not in ("honored", "reneged"):
            return
        accepted = self.after(at, 0.2, 7)
        self.draft(accepted, "offer.accepted", None, "email", **ref)
        if outcome == "honored":
            self.draft(self.after(accepted, 1, 14), "offer.honored", self.staff(), "email", **ref)
        else:
            reason = self.rng.choice(words.renege_reasons)
            then = self.after(accepted, 2, 20)
            self.draft(then, "offer.reneged", self.staff(), "email", **ref, reason=reason)

    def consent_change(self, at: datetime) -> None:
        """The customer turns marketing off on one channel, and sometimes on again later."""
        channel = self.rng.choice(self.channels[MARKETING])
        self.draft(at, "consent.withdrawn", None, channel, purpose=MARKETING, channels=[channel])
        self.switches.append((at, MARKETING, channel, False))
        if self.rng.random() < 0.5:
            again = self.after(at, 10, 120)
            self.grant(again, MARKETING, [channel], self.categories[MARKETING])

    def object(self, at: datetime) -> None:
        """The customer objects to all offers and advice (GDPR Art. 21); some come round later."""
        self.draft(at, "consent.withdrawn", self.staff(), "phone", purpose="*", channels=None)
        self.switches.append((at, "*", None, False))
        if self.rng.random() < 0.3:
            self.grant(self.after(at, 30, 200), MARKETING, ["email"], self.categories[MARKETING])

    def push(self, at: datetime, kind: str | None = None) -> None:
        conduct, consents = self.conduct, self.conduct.consents
        kind = kind or self.choose(conduct.push_kinds)
        if self.rng.random() < conduct.night:
            at = self.office(at, 21, 23)
        else:
            at = self.office(at, 9, 18)
        if kind == "service":
            self.pushes.append(PushDraft(at, kind, self.rng.choice(PUSH_CHANNELS), None, ()))
            return
        purpose = MARKETING if kind == "offer" else ADVICE
        overreaching = bool(consents.overreach) and self.rng.random() < conduct.overreach
        channels = self.consented(purpose, at)
        if not channels and not overreaching:
            return  # the brand pushes only where the customer consents, as far as it knows
        consented = self.categories.get(purpose) or list(consents.marketing[:1])
        categories = set(self.rng.sample(consented, k=self.rng.randint(0, len(consented))))
        channel = self.rng.choice(channels) if channels else "push"
        if overreaching:  # personalised beyond consent, and on the brand's favourite channel
            extra = self.rng.randint(1, len(consents.overreach))
            categories |= set(self.rng.sample(consents.overreach, k=extra))
            channel = "push"
        unasked = self.rng.random() < conduct.unasked
        used = tuple(sorted(categories))
        self.pushes.append(PushDraft(at, kind, channel, purpose, used, unasked))

    def consented(self, purpose: str, at: datetime) -> list[str]:
        """The channels the customer consents to for `purpose` at `at`, by the drafts so far."""
        channels: set[str] = set()
        for when, which, channel, granted in sorted(self.switches, key=lambda switch: switch[0]):
            if when > at:
                break
            if which == "*":
                channels.clear()
            elif which == purpose and channel is not None:
                (channels.add if granted else channels.discard)(channel)
        return sorted(channels)

    def campaigns(self, days: Sequence[datetime]) -> None:
        low, high = self.conduct.campaign_pushes
        for day in days:
            if day > self.joined and self.rng.random() < self.conduct.campaign_reach:
                for _ in range(self.rng.randint(low, high)):
                    self.push(day + timedelta(days=self.rng.uniform(0, 3)), "offer")

    # --- numbering ----------------------------------------------------------------------------

    def numbered(self) -> list[Step]:
        """The drafts as steps: event ids and push ids in order of event time, none after `now`."""
        return [*self.records(), *self.requests()]

    def records(self) -> list[Step]:
        drafts = renumbered(
            sorted((d for d in self.drafts if d.at <= self.now), key=lambda d: d.at)
        )
        return [
            Record(self.conduct.slug, PostedEvent(f"demo-{self.customer}-{n:04d}", d.type,
                   self.customer, d.at, d.actor, d.channel, d.data))
            for n, d in enumerate(drafts, start=1)
        ]  # fmt: skip

    def requests(self) -> list[Step]:
        steps: list[Step] = []
        pushes = sorted((p for p in self.pushes if p.at <= self.now), key=lambda p: p.at)
        for n, p in enumerate(pushes, start=1):
            push_id = f"push-{self.customer[5:]}-{n:03d}"
            request = PushRequest(
                push_id, self.customer, p.kind, p.channel, p.purpose, p.categories
            )
            ask = Ask(self.conduct.slug, p.at, request)
            if p.unasked:  # sent without asking the gate: a compliance finding
                steps.extend(sent(ask, self.rng, self.now, self.conduct.reactions_unwelcome))
            else:
                steps.append(ask)
        return steps


def renumbered(drafts: list[Draft]) -> list[Draft]:
    """The drafts with their promises, offers, errors, cases and advice numbered in order of
    event time, as a CRM numbers them (episodes are drafted kind by kind, not in time order)."""
    names: dict[str, str] = {}
    counts: dict[str, int] = {}
    for draft in drafts:
        for key in REFERENCES:
            if key in draft.data:
                kind = key.removesuffix("_id")
                if draft.data[key] not in names:
                    counts[kind] = counts.get(kind, 0) + 1
                    names[draft.data[key]] = f"{kind}-{counts[kind]}"
                draft.data = {**draft.data, key: names[draft.data[key]]}
    return drafts


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson-distributed count (Knuth's method: fine for the small means used here)."""
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


# --- what a brand does with the gate's answer --------------------------------------------------


def after_decision(
    conduct: Conduct, ask: Ask, decision: Mapping[str, Any], now: datetime, seed: int
) -> list[Step]:
    """The brand's next steps after the gate's answer: send it, ask again later, or send anyway."""
    rng = random.Random(f"{seed}:{ask.request.push_id}:{ask.attempt}")
    outcome = decision["outcome"]
    if outcome == "allow":
        return sent(ask, rng, now, conduct.reactions)
    if outcome == "defer" and rng.random() >= conduct.sends_deferred:
        return retried(conduct, ask, decision["retry_after"], rng, now)
    if outcome == "deny" and rng.random() >= conduct.sends_denied:
        return []
    return sent(ask, rng, now, conduct.reactions_unwelcome)


def retried(
    conduct: Conduct, ask: Ask, retry_after: datetime, rng: random.Random, now: datetime
) -> list[Step]:
    """The deferred push asked about again once its retry_after has come, if the brand waits."""
    at = (retry_after + timedelta(minutes=rng.randint(1, 45))).replace(microsecond=0)
    if not conduct.retries_deferred or ask.attempt > 1 or at > now:
        return []
    return [Ask(ask.brand, at, ask.request, ask.attempt + 1)]


def sent(ask: Ask, rng: random.Random, now: datetime, reactions: Mapping[str, float]) -> list[Step]:
    """`push.sent` a few minutes after asking, and the customer's reaction, if any."""
    request = ask.request
    at = ask.at + timedelta(minutes=rng.randint(1, 4))
    if at > now:
        return []
    event = PostedEvent(
        f"demo-{request.push_id}-sent",
        "push.sent",
        request.customer,
        at,
        None,
        request.channel,
        {"push_id": request.push_id},
    )
    steps: list[Step] = [Record(ask.brand, event)]
    reaction = rng.choices(list(reactions), weights=list(reactions.values()))[0]
    if reaction == "unsubscribed" and request.kind == "service":
        reaction = "dismissed"  # a service message has no purpose to unsubscribe from
    felt = at + timedelta(minutes=rng.randint(3, 2 * 24 * 60))
    if reaction != "silent" and felt <= now:
        data = {"push_id": request.push_id, "reaction": reaction}
        feedback = PostedEvent(
            f"demo-{request.push_id}-feedback",
            "push.feedback",
            request.customer,
            felt,
            None,
            request.channel,
            data,
        )
        steps.append(Record(ask.brand, feedback))
    return steps


# --- loading through the application ----------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    """What a load recorded: posted events, push decisions, and how long it took."""

    brands: tuple[str, ...]
    customers: int
    events: int
    decisions: int
    seconds: float


class Batches:
    """Events waiting to be recorded, per brand: recorded when a batch is full, or before the gate
    reads a relationship that has events waiting."""

    def __init__(self, ledger: Ledger, size: int = BATCH_SIZE) -> None:
        self.ledger, self.size = ledger, size
        self.waiting: dict[str, list[PostedEvent]] = {}
        self.customers: dict[str, set[str]] = {}
        self.recorded = 0

    def add(self, brand: str, event: PostedEvent) -> None:
        self.waiting.setdefault(brand, []).append(event)
        self.customers.setdefault(brand, set()).add(event.customer)
        if len(self.waiting[brand]) >= self.size:
            self.flush(brand)

    def flush_for(self, brand: str, customer: str) -> None:
        if customer in self.customers.get(brand, ()):
            self.flush(brand)

    def flush(self, brand: str) -> None:
        events = self.waiting.pop(brand, [])
        self.customers.pop(brand, None)
        if events:
            self.ledger.record_batch(brand, events)
            self.recorded += len(events)

    def flush_all(self) -> None:
        for brand in list(self.waiting):
            self.flush(brand)


def holds_demo(ledger: Ledger, brands: Sequence[Conduct] = BRANDS) -> bool:
    """Whether any demo brand already has customers: then the demo was loaded (or started)."""
    return any(next(ledger.customers(conduct.slug), None) is not None for conduct in brands)


def load(
    ledger: Ledger,
    demo: Plan,
    progress: Callable[[int], None] | None = None,
    batch_size: int = BATCH_SIZE,
) -> Loaded:
    """Sets each brand's policy, then records the plan's events and asks its pushes, in order of
    event time; `progress` is told how many of the plan's steps are done as it goes."""
    started = time.monotonic()
    conducts = {conduct.slug: conduct for conduct in demo.brands}
    for conduct in demo.brands:
        ledger.set_policy(conduct.slug, conduct.policy)
    batches, decisions, done = Batches(ledger, batch_size), 0, 0
    waiting: list[tuple[tuple[datetime, str, str, str], Step]] = []
    for step, planned in in_order(demo.steps, waiting):
        if isinstance(step, Record):
            batches.add(step.brand, step.event)
        else:
            batches.flush_for(step.brand, step.request.customer)
            decision = ledger.decide_push(step.brand, step.request, now=step.at)
            decisions += 1
            for follow in after_decision(conducts[step.brand], step, decision, demo.now, demo.seed):
                heapq.heappush(waiting, (follow.key, follow))
        done += planned
        if progress and done % 500 == 0 and planned:
            progress(500)
    batches.flush_all()
    if progress:
        progress(done % 500)
    customers = sum(len(refs) for refs in demo.customers.values())
    return Loaded(
        tuple(conducts), customers, batches.recorded, decisions, time.monotonic() - started
    )


def in_order(
    steps: Sequence[Step], waiting: list[tuple[tuple[datetime, str, str, str], Step]]
) -> Iterator[tuple[Step, bool]]:
    """The planned steps merged with the follow-ups pushed onto `waiting` meanwhile, by event time;
    each with whether it was planned."""
    for step in steps:
        while waiting and waiting[0][0] <= step.key:
            yield heapq.heappop(waiting)[1], False
        yield step, True
    while waiting:
        yield heapq.heappop(waiting)[1], False
