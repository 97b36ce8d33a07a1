"""Compliance findings from the decisions read model, and the audit from the command line."""

from __future__ import annotations

import random
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from domain.application import SNAPSHOT_INTERVAL, Ledger
from domain.brand import DEFAULT_POLICY, BrandPolicy
from domain.errors import PushIdConflict
from domain.gate import PushRequest
from domain.relationship import PostedEvent, relationship_id
from domain.storage import Store
from projections.consents import consents
from projections.decisions import findings
from projections.runner import Runner
from tests.conftest import open_ledger
from tests.factories import posted
from tests.gate_factories import NO_QUIET_HOURS, NOON, grant, push
from tests.random_refs import random_brand, random_customer

ROOT = Path(__file__).parents[2]


def test_pushes_sent_without_an_allow_are_findings(ledger: Ledger) -> None:
    brand, customer = random_brand(), random_customer()
    ledger.set_policy(brand, NO_QUIET_HOURS)
    ledger.record(brand, grant(customer))
    allowed, denied = push("offer", (), customer), push("offer", ("browsing_history",), customer)
    assert ledger.decide_push(brand, allowed, now=NOON)["outcome"] == "allow"
    assert ledger.decide_push(brand, denied, now=NOON)["outcome"] == "deny"
    for push_id in (allowed.push_id, denied.push_id, "never-asked"):
        ledger.record(
            brand, replace(posted("push.sent", customer, push_id=push_id), channel="push")
        )
    runner = Runner(ledger)
    runner.run_once()
    found = {f["push_id"]: f["finding"] for f in findings(runner.db, brand).items}
    assert found == {
        denied.push_id: "sent although denied",
        "never-asked": "sent without a decision",
    }
    assert findings(runner.db, random_brand()).items == []
    runner.close()


def test_a_push_sent_on_another_channel_than_the_one_allowed_is_a_finding(ledger: Ledger) -> None:
    """An allow is for the channel the gate was asked about (consent is per channel): a send of
    that push on another channel has no allow, and was not a finding."""
    brand, customer = random_brand(), random_customer()
    ledger.set_policy(brand, NO_QUIET_HOURS)
    ledger.record(brand, grant(customer))
    allowed = push("offer", (), customer)
    assert ledger.decide_push(brand, allowed, now=NOON)["outcome"] == "allow"
    sent = replace(posted("push.sent", customer, push_id=allowed.push_id), channel="sms")
    ledger.record(brand, sent)
    runner = Runner(ledger)
    runner.run_once()
    (finding,) = findings(runner.db, brand).items
    assert (finding["push_id"], finding["finding"], finding["outcome"], finding["channel"]) == (
        allowed.push_id,
        "sent on another channel than decided",
        "allow",
        "sms",
    )
    runner.close()


WITHDRAWN = "sent after its consent was withdrawn"


def allowed_then(
    ledger: Ledger, *acts: PostedEvent, kind: str = "offer"
) -> tuple[str, str, PushRequest]:
    """A brand and customer whose push was allowed at NOON, then `acts` recorded in order."""
    brand, customer = random_brand(), random_customer()
    ledger.set_policy(brand, NO_QUIET_HOURS)
    ledger.record(brand, grant(customer, channels=("push", "sms")))
    request = push(kind, (), customer, purpose="marketing" if kind != "service" else None)
    assert ledger.decide_push(brand, request, now=NOON)["outcome"] == "allow"
    for act in acts:
        ledger.record(brand, replace(act, customer=customer))
    return brand, customer, request


def sent(request: PushRequest, at: datetime, channel: str = "push") -> PostedEvent:
    return replace(
        posted("push.sent", request.customer, push_id=request.push_id, at=at), channel=channel
    )


def unsubscribed(request: PushRequest, at: datetime) -> PostedEvent:
    return posted(
        "push.feedback", request.customer, push_id=request.push_id, reaction="unsubscribed", at=at
    )


def withdrawn(at: datetime, purpose: str = "marketing", **data: Any) -> PostedEvent:
    return posted("consent.withdrawn", "", at=at, purpose=purpose, **data)


def listed(ledger: Ledger, brand: str) -> list[dict[str, Any]]:
    """The brand's findings once the read models have caught up, in the list's order."""
    runner = Runner(ledger)
    runner.run_once()
    found = findings(runner.db, brand).items
    runner.close()
    return found


def found_by(ledger: Ledger, brand: str) -> dict[str, tuple[str, str | None]]:
    return {f["push_id"]: (f["finding"], f["withdrawn_by"]) for f in listed(ledger, brand)}


@pytest.mark.parametrize("order", ["withdrawal first", "send first"])
def test_a_push_sent_after_its_consent_was_withdrawn_is_a_finding(
    ledger: Ledger, order: str
) -> None:
    """Allowed at noon; the customer withdrew at 13:00; the brand asked again (and got the
    recorded allow back, as a repeated request does) and sent at 14:00. No finding showed. The
    consent at the send's time is judged in event time, whichever was posted first."""
    withdrawal = withdrawn(NOON + timedelta(hours=1), channels=["push"])
    brand, customer, request = allowed_then(ledger)
    acts = [replace(withdrawal, customer=customer), sent(request, NOON + timedelta(hours=2))]
    for act in acts if order == "withdrawal first" else reversed(acts):
        ledger.record(brand, act)
    again = ledger.decide_push(brand, request, now=NOON + timedelta(hours=2))
    assert again["outcome"] == "allow"  # issue 6: the recorded decision, unchanged
    assert found_by(ledger, brand) == {request.push_id: (WITHDRAWN, withdrawal.event_id)}


def test_a_push_decided_after_it_was_sent_is_judged_when_decided(ledger: Ledger) -> None:
    """The send, then the withdrawal dated before it, are recorded before the decision."""
    brand, customer = random_brand(), random_customer()
    ledger.set_policy(brand, NO_QUIET_HOURS)
    ledger.record(brand, grant(customer))
    request = push("offer", (), customer)
    withdrawal = withdrawn(NOON + timedelta(hours=1))
    ledger.record(brand, sent(request, NOON + timedelta(hours=2)))
    assert found_by(ledger, brand) == {request.push_id: ("sent without a decision", None)}
    assert ledger.decide_push(brand, request, now=NOON)["outcome"] == "allow"
    assert found_by(ledger, brand) == {}
    ledger.record(brand, replace(withdrawal, customer=customer))
    assert found_by(ledger, brand) == {request.push_id: (WITHDRAWN, withdrawal.event_id)}


@pytest.mark.parametrize(
    "act",
    [
        pytest.param(withdrawn(NOON + timedelta(hours=1), purpose="*"), id="objection"),
        pytest.param(
            withdrawn(NOON + timedelta(hours=1), purpose="*", channels=["push"]),
            id="objection-on-push",
        ),
        pytest.param(withdrawn(NOON + timedelta(hours=1)), id="every-channel"),
    ],
)
def test_an_objection_or_a_withdrawal_of_every_channel_before_the_send_is_a_finding(
    ledger: Ledger, act: PostedEvent
) -> None:
    brand, customer, request = allowed_then(ledger)
    ledger.record(brand, sent(request, NOON + timedelta(hours=2)))
    ledger.record(brand, replace(act, customer=customer))
    assert found_by(ledger, brand) == {request.push_id: (WITHDRAWN, act.event_id)}


@pytest.mark.parametrize(
    "act",
    [
        pytest.param(withdrawn(NOON + timedelta(hours=3)), id="withdrawn-after-the-send"),
        pytest.param(
            withdrawn(NOON + timedelta(hours=1), channels=["sms"]), id="on-another-channel"
        ),
        pytest.param(
            withdrawn(NOON + timedelta(hours=1), purpose="*", channels=["sms"]),
            id="objection-elsewhere",
        ),
        pytest.param(withdrawn(NOON + timedelta(hours=1), purpose="news"), id="another-purpose"),
    ],
)
def test_a_withdrawal_after_the_send_or_elsewhere_is_no_finding(
    ledger: Ledger, act: PostedEvent
) -> None:
    brand, customer, request = allowed_then(ledger, grant(purpose="news"))
    ledger.record(brand, sent(request, NOON + timedelta(hours=2)))
    ledger.record(brand, replace(act, customer=customer))
    assert found_by(ledger, brand) == {}


EXPIRED = "sent after its consent expired"


def test_a_push_sent_after_its_consent_expired_is_a_finding(ledger: Ledger) -> None:
    """Allowed at noon under a consent that expires at 13:00, sent at 14:00: the consent the
    allow relied on had lapsed (the gate counts an expired consent as none), and no finding
    showed. The grant that lapsed is the evidence; a send before the expiry is none."""
    brand, customer = random_brand(), random_customer()
    ledger.set_policy(brand, NO_QUIET_HOURS)
    lapsing = grant(customer, expires_at=NOON + timedelta(hours=1))
    ledger.record(brand, lapsing)
    in_time, late = push("offer", (), customer), push("offer", (), customer)
    for request in (in_time, late):
        assert ledger.decide_push(brand, request, now=NOON)["outcome"] == "allow"
    ledger.record(brand, sent(late, NOON + timedelta(hours=2)))
    ledger.record(brand, sent(in_time, NOON + timedelta(minutes=30)))
    assert found_by(ledger, brand) == {late.push_id: (EXPIRED, lapsing.event_id)}


def test_a_grant_renewed_before_the_expiry_is_no_finding(ledger: Ledger) -> None:
    brand, customer = random_brand(), random_customer()
    ledger.set_policy(brand, NO_QUIET_HOURS)
    ledger.record(brand, grant(customer, expires_at=NOON + timedelta(hours=1)))
    request = push("offer", (), customer)
    assert ledger.decide_push(brand, request, now=NOON)["outcome"] == "allow"
    ledger.record(brand, sent(request, NOON + timedelta(hours=2)))
    ledger.record(brand, grant(customer, at=NOON + timedelta(minutes=30)))
    assert found_by(ledger, brand) == {}


def test_a_grant_dated_between_the_withdrawal_and_the_send_clears_the_finding(
    ledger: Ledger,
) -> None:
    """Posted last, the renewed consent (dated before the send) ends the finding; a service
    push, which relies on no consent, is never one."""
    withdrawal = withdrawn(NOON + timedelta(hours=1))
    brand, customer, request = allowed_then(ledger, withdrawal)
    ledger.record(brand, sent(request, NOON + timedelta(hours=3)))
    assert found_by(ledger, brand) == {request.push_id: (WITHDRAWN, withdrawal.event_id)}
    ledger.record(brand, grant(customer, at=NOON + timedelta(hours=2)))
    assert found_by(ledger, brand) == {}
    service = push("service", (), customer, purpose=None)
    assert ledger.decide_push(brand, service, now=NOON)["outcome"] == "allow"
    ledger.record(brand, withdrawn(NOON + timedelta(hours=4), purpose="*"))
    ledger.record(brand, sent(service, NOON + timedelta(hours=5)))
    assert found_by(ledger, brand) == {}


def test_an_unsubscribe_before_a_send_is_a_finding_for_the_later_push(ledger: Ledger) -> None:
    """An `unsubscribed` reaction withdraws the push's purpose on its channel: a second push
    allowed before it and sent after it relied on a consent withdrawn by then."""
    brand, customer, first = allowed_then(ledger)
    second = push("offer", (), customer)
    assert ledger.decide_push(brand, second, now=NOON)["outcome"] == "allow"
    ledger.record(brand, sent(first, NOON + timedelta(hours=1)))
    reaction = unsubscribed(first, NOON + timedelta(hours=2))
    ledger.record(brand, sent(second, NOON + timedelta(hours=3)))
    ledger.record(brand, reaction)
    assert found_by(ledger, brand) == {second.push_id: (WITHDRAWN, reaction.event_id)}


AGAIN, EARLY = "sent again under the same decision", "sent before it was decided"


def every_finding(ledger: Ledger, brand: str) -> list[tuple[str, str, str]]:
    """The brand's findings as (push id, finding, the send's event id), in the list's order."""
    return [(f["push_id"], f["finding"], f["event_id"]) for f in listed(ledger, brand)]


@pytest.mark.parametrize("order", ["in time order", "latest first"])
def test_each_send_after_the_first_under_one_decision_is_a_finding(
    ledger: Ledger, order: str
) -> None:
    """One allow covered any number of sends of its push (each with an event id of its own):
    every send after the first in event time is a finding, whatever order they were posted in;
    the first is not. A retry of a send with its own event id is stored once: no finding."""
    brand, _, request = allowed_then(ledger)
    sends = [sent(request, NOON + timedelta(hours=h)) for h in (1, 2, 3)]
    for send in sends if order == "in time order" else reversed(sends):
        ledger.record(brand, send)
        ledger.record(brand, send)  # the CRM's retry: idempotent
    assert every_finding(ledger, brand) == [
        (request.push_id, AGAIN, sends[2].event_id),
        (request.push_id, AGAIN, sends[1].event_id),
    ]


def test_a_later_send_is_named_by_the_first_finding_that_applies(ledger: Ledger) -> None:
    """FINDINGS' order: a later send after a withdrawal, or on another channel, is named so; a
    denied push sent twice is that finding twice, and one sent twice before it was decided."""
    brand, customer, request = allowed_then(ledger)
    early = push("offer", (), customer)
    assert ledger.decide_push(brand, early, now=NOON)["outcome"] == "allow"
    denied = push("offer", ("browsing_history",), customer)
    assert ledger.decide_push(brand, denied, now=NOON)["outcome"] == "deny"
    withdrawal = withdrawn(NOON + timedelta(hours=2), channels=["push"])
    ledger.record(brand, replace(withdrawal, customer=customer))
    first, after, elsewhere = (
        sent(request, NOON + timedelta(hours=1)),
        sent(request, NOON + timedelta(hours=3)),
        sent(request, NOON + timedelta(minutes=90), channel="sms"),
    )
    twice = [sent(denied, NOON + timedelta(minutes=m)) for m in (10, 20)]
    before = [sent(early, NOON - timedelta(minutes=m)) for m in (60, 50)]
    for send in (after, elsewhere, first, *twice, *before):
        ledger.record(brand, send)
    assert sorted(every_finding(ledger, brand)) == sorted(
        [
            (request.push_id, WITHDRAWN, after.event_id),
            (request.push_id, "sent on another channel than decided", elsewhere.event_id),
            *[(denied.push_id, "sent although denied", s.event_id) for s in twice],
            *[(early.push_id, EARLY, s.event_id) for s in before],
        ]
    )


@pytest.mark.parametrize(
    ("early", "finding"),
    [(4, None), (5, None), (6, EARLY), (60, EARLY)],
)
@pytest.mark.parametrize("order", ["decided first", "sent first"])
def test_a_push_sent_before_it_was_decided_is_a_finding(
    ledger: Ledger, early: int, finding: str | None, order: str
) -> None:
    """The CRM sent, then asked: the allow exists, but the send is dated before it. Clocks
    disagree by up to SEND_AT_TOLERANCE (5 minutes, as a decision's `send_at` may): a send
    dated within it of its decision is none."""
    brand, customer = random_brand(), random_customer()
    ledger.set_policy(brand, NO_QUIET_HOURS)
    ledger.record(brand, grant(customer, at=NOON - timedelta(days=1)))
    request = push("offer", (), customer)
    send = sent(request, NOON - timedelta(minutes=early))
    if order == "sent first":
        ledger.record(brand, send)
    assert ledger.decide_push(brand, request, now=NOON)["outcome"] == "allow"
    if order == "decided first":
        ledger.record(brand, send)
    expected = [(request.push_id, finding, send.event_id)] if finding else []
    assert every_finding(ledger, brand) == expected


def test_later_and_early_sends_are_the_same_one_event_per_page_or_rebuilt(
    empty_store: Store,
) -> None:
    """Judged page by page as the sends arrive, out of time order, the findings are what a
    rebuild from the log makes of them, and stay so after it; the list pages through them, a
    push's later sends first."""
    ledger = open_ledger(empty_store)
    brand, customer, request = allowed_then(ledger)
    sends = [sent(request, NOON + timedelta(hours=h)) for h in (3, 1, 2, 2)]
    for send in sends:
        ledger.record(brand, send)
    early = push("offer", (), customer)
    ledger.record(brand, sent(early, NOON - timedelta(hours=1)))
    assert ledger.decide_push(brand, early, now=NOON)["outcome"] == "allow"
    one_by_one = Runner(ledger, page_size=1)
    one_by_one.run_once()
    expected = [
        (request.push_id, AGAIN, sends[0].event_id),
        (request.push_id, AGAIN, sends[3].event_id),  # at 14:00 both: recorded later, listed first
        (request.push_id, AGAIN, sends[2].event_id),
        (early.push_id, EARLY, one_by_one.db.scalar(
            "SELECT sent_event_id FROM decisions WHERE push_id = ?", [early.push_id]
        )),
    ]  # fmt: skip
    assert [
        (f["push_id"], f["finding"], f["event_id"]) for f in all_findings(one_by_one, brand)
    ] == (expected)
    assert one_by_one.rebuild(verify=True) == {}, "a rebuild applies them in one page"
    one_by_one.rebuild()
    assert [
        (f["push_id"], f["finding"], f["event_id"]) for f in all_findings(one_by_one, brand)
    ] == (expected)
    one_by_one.close()
    ledger.close()


def all_findings(runner: Runner, brand: str) -> list[dict[str, Any]]:
    """Every finding of the brand, one a page: no page repeats or skips one."""
    found, cursor = [], None
    while True:
        page = findings(runner.db, brand, limit=1, cursor=cursor)
        found += page.items
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def test_an_unsubscribe_from_a_push_sent_twice_withdraws_the_channel_the_gate_does(
    ledger: Ledger,
) -> None:
    """The relationship withdraws the channel of the send recorded last; the read models keep
    the first send in event time on the push's row, the later ones apart, and must agree."""
    brand, customer, request = allowed_then(ledger)
    ledger.record(brand, sent(request, NOON + timedelta(hours=1), channel="sms"))  # the first
    ledger.record(brand, sent(request, NOON + timedelta(hours=2)))  # on push, recorded last
    reaction = unsubscribed(request, NOON + timedelta(hours=3))
    ledger.record(brand, reaction)
    runner = Runner(ledger)
    runner.run_once()
    status = {(c["channel"], c["status"]) for c in consents(runner.db, brand, customer)}
    runner.close()
    assert status == {("push", "withdrawn"), ("sms", "granted")}
    relationship = ledger.relationship(brand, customer)
    assert relationship.consents["marketing"]["push"]["status"] == "withdrawn"


CHANNELS, PURPOSES = ("push", "sms"), ("marketing", "news")
Step = tuple[str, datetime, str, tuple[str, ...] | None]
"""What happens (grant, withdraw, object, send), when, the purpose, and the channels named."""


def random_script(rng: random.Random) -> list[Step]:
    """Acts and sends at distinct times after noon; one send per purpose and channel at most."""
    script: list[Step] = []
    for n in range(rng.randint(3, 12)):
        at = NOON + timedelta(minutes=10 * (n + 1))
        what = rng.choice(["grant", "withdraw", "object", "send", "send"])
        purpose, on = rng.choice(PURPOSES), rng.choice([("push",), ("sms",), None])
        if what == "send":
            on = (rng.choice(CHANNELS),)
            if any(w == "send" and (p, o) == (purpose, on) for w, _, p, o in script):
                continue
        script.append((what, at, purpose, on))
    return script


def posted_script(ledger: Ledger, steps: list[Step]) -> tuple[str, dict[str, tuple[str, str]]]:
    """A brand and customer with consent to both purposes on both channels, a push of each
    purpose on each channel allowed at noon, then the steps posted in the order given."""
    brand, customer = random_brand(), random_customer()
    ledger.set_policy(brand, NO_QUIET_HOURS)
    for purpose in PURPOSES:
        ledger.record(brand, grant(customer, purpose=purpose, channels=CHANNELS))
    requests = {
        (p, c): push("offer", (), customer, purpose=p, channel=c)
        for p in PURPOSES
        for c in CHANNELS
    }
    for request in requests.values():
        assert ledger.decide_push(brand, request, now=NOON)["outcome"] == "allow"
    for what, at, purpose, on in steps:
        if what == "grant":
            event = grant(customer, purpose=purpose, channels=on or CHANNELS, at=at)
        elif what == "send":
            event = sent(requests[(purpose, on[0])], at, on[0])  # type: ignore[index]
        else:
            data = {"channels": list(on)} if on else {}
            event = withdrawn(at, "*" if what == "object" else purpose, **data)
        ledger.record(brand, replace(event, customer=customer))
    return brand, {request.push_id: key for key, request in requests.items()}


def withdrawn_before_sent(script: list[Step]) -> set[tuple[str, str]]:
    """The pushes whose latest act on their purpose and channel by their send withdrew it."""
    found = set()
    for _, sent_at, purpose, on in (step for step in script if step[0] == "send"):
        channel = on[0]  # type: ignore[index]
        latest = "grant"  # the first grants, thirty days before noon
        for what, at, p, named in sorted(script, key=lambda step: step[1]):
            covers = (named is None or channel in named) and (p == purpose or what == "object")
            if what != "send" and at <= sent_at and covers:
                latest = what
        if latest != "grant":
            found.add((purpose, channel))
    return found


@pytest.mark.parametrize("seed", range(6))
def test_sends_after_a_withdrawal_are_the_findings_whatever_the_order_posted(
    ledger: Ledger, seed: int
) -> None:
    """Grants, withdrawals, objections and sends at distinct times, posted in time order and
    shuffled: the findings are the same, the sends whose latest act on their purpose and channel
    by then was a withdrawal."""
    rng = random.Random(seed)
    script = random_script(rng)
    answers = []
    for steps in (script, rng.sample(script, len(script))):
        brand, keys = posted_script(ledger, steps)
        answers.append({(keys[p], finding) for p, (finding, _) in found_by(ledger, brand).items()})
    expected = {(key, WITHDRAWN) for key in withdrawn_before_sent(script)}
    assert answers == [expected, expected], script


def test_the_findings_are_the_same_one_event_per_page_or_all_in_one(empty_store: Store) -> None:
    """Judged again as each act or send arrives, in either order, page by page or all at once,
    the findings are what a rebuild from the log makes of them."""
    ledger = open_ledger(empty_store)
    withdrawal = withdrawn(NOON + timedelta(hours=1))
    brand, customer, request = allowed_then(ledger, withdrawal)
    ledger.record(brand, sent(request, NOON + timedelta(hours=2)))
    ledger.record(brand, grant(customer, at=NOON - timedelta(hours=1)))  # before the withdrawal
    other = random_customer()  # a finding cleared by a grant posted last, dated before the send
    ledger.record(brand, grant(other, channels=("push", "sms")))
    cleared = push("offer", (), other)
    assert ledger.decide_push(brand, cleared, now=NOON)["outcome"] == "allow"
    ledger.record(brand, sent(cleared, NOON + timedelta(hours=3)))
    ledger.record(brand, replace(withdrawn(NOON + timedelta(hours=1)), customer=other))
    ledger.record(brand, grant(other, at=NOON + timedelta(hours=2)))
    one_by_one = Runner(ledger, page_size=1)
    one_by_one.run_once()
    found = {f["push_id"]: f for f in findings(one_by_one.db, brand).items}
    assert {p: (f["finding"], f["withdrawn_by"]) for p, f in found.items()} == {
        request.push_id: (WITHDRAWN, withdrawal.event_id)
    }
    assert found[request.push_id]["withdrawn_at"] == NOON + timedelta(hours=1)
    assert one_by_one.rebuild(verify=True) == {}, "a rebuild applies them in one page"
    one_by_one.close()
    ledger.close()


def test_audit_decisions_from_the_command_line(ledger: Ledger) -> None:
    brand, customer = random_brand(), random_customer()
    ledger.set_policy(brand, NO_QUIET_HOURS)
    ledger.record(brand, grant(customer))
    for categories in (("purchase_history",), ("browsing_history",), ()):
        ledger.decide_push(brand, push("offer", categories, customer), now=NOON)
    run = [
        sys.executable,
        "-m",
        "api",
        "--database-url",
        ledger.store.url,
        "audit-decisions",
        "--brand",
        brand,
    ]
    result = subprocess.run(run, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "3 decision(s) audited, 0 not reproduced" in result.stdout
    later = subprocess.run(
        [*run, "--since", "2999-01-01"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert "0 decision(s) audited" in later.stdout


def test_decisions_and_sendings_read_the_same_one_event_per_page_or_all_in_one(
    empty_store: Store,
) -> None:
    ledger = open_ledger(empty_store)
    brand, customer = random_brand(), random_customer()
    ledger.set_policy(brand, NO_QUIET_HOURS)
    ledger.record(brand, grant(customer))
    decided_then_sent = push("offer", (), customer)
    ledger.decide_push(brand, decided_then_sent, now=NOON)
    for push_id in (decided_then_sent.push_id, "sent-then-decided"):
        ledger.record(
            brand, replace(posted("push.sent", customer, push_id=push_id), channel="push")
        )
    ledger.decide_push(brand, push("offer", (), customer, push_id="sent-then-decided"), now=NOON)
    one_by_one = Runner(ledger, page_size=1)
    one_by_one.run_once()
    assert one_by_one.db.scalar("SELECT count(*) FROM decisions WHERE sent_at IS NOT NULL") == 2
    assert one_by_one.rebuild(verify=True) == {}, "a rebuild applies them in one page"
    one_by_one.close()
    ledger.close()


def forgotten_pushes(ledger: Ledger) -> tuple[str, list[tuple[PushRequest, str]]]:
    """A brand's customer with 410 pushes decided over 820 days: a relationship keeps its newest
    closed pushes and forgets the rest once it holds 400 of them. The requests and outcomes."""
    brand, customer = random_brand(), random_customer()
    start = NOON - timedelta(days=900)
    ledger.set_policy(brand, NO_QUIET_HOURS)
    decided = []
    for i in range(410):
        request = push("service", (), customer, purpose=None)
        answer = ledger.decide_push(brand, request, now=start + timedelta(days=2 * i))
        decided.append((request, answer["outcome"]))
    return brand, decided


def test_a_decision_the_relationship_has_forgotten_is_still_audited(ledger: Ledger) -> None:
    """The audit of a forgotten push's decision answered DecisionNotFound (404 over HTTP, "No
    decision found to audit" on the page), although its push.decided is in the log."""
    brand, decided = forgotten_pushes(ledger)
    for request, outcome in (decided[0], decided[200], decided[-1]):
        push_id = request.push_id
        audit = ledger.audit_push_decision(brand, push_id)
        assert audit["push_id"] == push_id and audit["reproduced"], audit
        assert audit["recorded"]["outcome"] == outcome


def test_a_forgotten_push_asked_again_gets_its_recorded_decision(ledger: Ledger) -> None:
    """A CRM repeating an old push's request got 409 concurrency-conflict ("the relationship
    kept changing") after five attempts, each failing to claim the push id its relationship
    already holds. It gets the recorded decision back, recording nothing; another request under
    that push id is a push-id conflict, as for a push remembered."""
    brand, decided = forgotten_pushes(ledger)
    (request, outcome), customer = decided[0], decided[0][0].customer
    version = ledger.relationship(brand, customer).version
    assert ledger.decide_push(brand, request, now=NOON)["outcome"] == outcome
    assert ledger.relationship(brand, customer).version == version
    with pytest.raises(PushIdConflict):
        ledger.decide_push(brand, replace(request, channel="sms"), now=NOON)


def test_a_send_of_a_forgotten_push_is_recorded(ledger: Ledger) -> None:
    """A push.sent for a push its relationship had forgotten was refused 409 "kept changing"
    after five attempts, each claiming the push id its relationship already holds."""
    brand, decided = forgotten_pushes(ledger)
    request = decided[0][0]
    sent = replace(posted("push.sent", request.customer, at=NOON, push_id=request.push_id),
                   channel="push")  # fmt: skip
    assert ledger.record(brand, sent).sequence == 412


def offers_declined(customer: str, days: list[int]) -> list[PostedEvent]:
    """An offer made and declined that many days before NOON, for each of `days`."""
    events = []
    for n, ago in enumerate(days):
        at, offer_id = NOON - timedelta(days=ago), f"o-{ago}-{n}"
        events.append(posted("offer.made", customer, at=at, offer_id=offer_id, summary="s"))
        events.append(posted("offer.declined", customer, at=at, offer_id=offer_id))
    return events


def test_a_decision_made_before_the_brand_counted_declines_reproduces_after_it_does(
    ledger: Ledger,
) -> None:
    """A policy version stored before `declines_per_halving` existed reads it as null: its
    decisions counted no decline, and audited after the brand starts counting them (and by a
    process that reads the relationship from its snapshot), they still reproduce."""
    brand, customer = random_brand(), random_customer()
    before = {k: v for k, v in DEFAULT_POLICY.items() if k != "declines_per_halving"}
    ledger.save(
        BrandPolicy(brand=brand, changes=NO_QUIET_HOURS, settings={**before, **NO_QUIET_HOURS})
    )
    old = offers_declined(customer, [60] * ((SNAPSHOT_INTERVAL - 6) // 2))  # to 4 before it
    ledger.record_batch(brand, [grant(customer), *old])
    recent = offers_declined(customer, [10, 9, 8])  # saved in the save that reaches the interval
    ledger.record_batch(brand, recent)
    declines = [e.event_id for e in recent if e.type == "offer.declined"]
    rid = relationship_id(brand, customer)
    assert ledger.snapshots is not None and [
        s.originator_version for s in ledger.snapshots.get(rid)
    ] == [SNAPSHOT_INTERVAL + 2]
    first, second, third = (push("offer", (), customer) for _ in range(3))
    assert ledger.decide_push(brand, first, now=NOON)["outcome"] == "allow"
    assert ledger.decide_push(brand, second, now=NOON + timedelta(minutes=1))["outcome"] == "allow"
    assert ledger.set_policy(brand, {"declines_per_halving": 3}).version == 2
    deferred = ledger.decide_push(brand, third, now=NOON + timedelta(minutes=2))
    assert (deferred["outcome"], deferred["policy_version"]) == ("defer", 2)

    fresh = open_ledger(ledger.store)  # no cached relationship: the audit reads the snapshot
    try:
        audits = [fresh.audit_push_decision(brand, p.push_id) for p in (first, second, third)]
    finally:
        fresh.close()
    assert [a["reproduced"] for a in audits] == [True, True, True], audits
    rules = [{r["rule"]: r for r in a["reevaluated"]["reasons"]}["frequency"] for a in audits]
    assert rules[0]["detail"] == (
        "0 allowed in 7 days, 0 unwanted in 30 days: within the allowance of 4"
    )
    assert rules[0]["evidence"] == [] and not set(declines) & set(rules[1]["evidence"])
    assert "3 declined in 30 days" in rules[2]["detail"]
    assert "the allowance of 2 is used up" in rules[2]["detail"]
    assert rules[2]["evidence"][-3:] == declines
