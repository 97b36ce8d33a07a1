"""Compliance findings from the decisions read model, and the audit from the command line."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from domain.application import Ledger
from domain.errors import PushIdConflict
from domain.gate import PushRequest
from domain.storage import Store
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
