"""The pages as a person uses them: a real headless Chromium against `trustledger serve` over a
small demo. Screenshots land in tests/e2e/screenshots/ for a person to look at."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from domain.relationship import relationship_id
from tests.integration.test_serve import free_port

ROOT = Path(__file__).parents[2]
SHOTS = Path(__file__).parent / "screenshots"
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
BRAND = "northwind-energy"
pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Demo:
    url: str
    database: Path
    agent: str
    compliance: str
    crm: str
    before_late_event: datetime
    late_customer: str


def trustledger(database: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "api", "--database-url", f"sqlite:///{database}", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    return done.stdout


def new_key(database: Path, role: str) -> str:
    return trustledger(database, "keys", "create", "--brand", BRAND, "--role", role).splitlines()[
        -1
    ]


def customer_with_decisions(database: Path, url: str, key: str) -> str:
    """The brand's customer with the most events among those with push decisions. The read
    model holds the reference sealed with the customer's key: it is read back through the API."""
    with sqlite3.connect(database) as db:
        rows: list[tuple[str, str]] = db.execute(
            "SELECT relationship_id, counts FROM relationships WHERE brand = ?"
            " ORDER BY events DESC",
            [BRAND],
        ).fetchall()
    wanted = next(rid for rid, counts in rows if json.loads(counts).get("push.decided"))
    request = urllib.request.Request(
        url + "/v1/customers?limit=200", headers={"Authorization": f"Bearer {key}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        listed: list[str] = [row["customer"] for row in json.load(answer)["customers"]]
    return next(c for c in listed if str(relationship_id(BRAND, c)) == wanted)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    database = tmp_path_factory.mktemp("browser") / "demo.sqlite3"
    trustledger(database, "migrate")
    trustledger(database, "demo", "--customers-per-brand", "15")
    agent, compliance, crm = (new_key(database, role) for role in ("agent", "compliance", "brand"))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "api", "--database-url", f"sqlite:///{database}", "serve", "--port", str(port)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process)
        late = customer_with_decisions(database, url, agent)
        before = datetime.now(UTC).replace(microsecond=0)
        time.sleep(1.1)  # the late event is recorded strictly after `before`
        post_event(url, crm, late)
        yield Demo(url, database, agent, compliance, crm, before, late)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    assert "Traceback" not in output, output


def wait_until_up(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1).close()
            return
        except OSError:
            assert process.poll() is None, process.communicate()[0]
            time.sleep(0.1)
    raise AssertionError("the server did not start")


def post_event(url: str, key: str, customer: str) -> None:
    body = {
        "event_id": f"late-{time.time_ns()}",
        "type": "advice.given",
        "customer": customer,
        "occurred_at": datetime.now(UTC).isoformat(),
        "actor": "agent-9",
        "channel": "phone",
        "data": {"advice_id": "late-1", "topic": "tariff", "summary": "a late word of advice"},
    }
    post(url, key, "/v1/events", body)


def post(url: str, key: str, path: str, body: dict[str, Any]) -> None:
    """A brand's CRM posts `body` to the API at `path`, and it is taken."""
    request = urllib.request.Request(
        url + path,
        json.dumps(body).encode(),
        {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status in (200, 201)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error("policy violation: " + e.violatedDirective + " " + (e.blockedURI || "inline"));
});
"""
"""Run by the browser's driver in every document (not by the pages, which run no script): each
refusal of the pages' Content-Security-Policy, which shows only as a page that looks wrong."""


@pytest.fixture
def page(browser: Any, tmp_path: Path) -> Iterator[Any]:
    """A fresh browser tab; the test fails on any Content-Security-Policy refusal it met (an
    inline style the policy blocks, say), as the listener above and the console report it."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(VIOLATIONS)
    opened = context.new_page()
    refused: list[str] = []
    opened.on("console", lambda message: refused.append(message.text))
    yield opened
    context.close()
    assert [m for m in refused if "policy" in m.lower()] == []


def sign_in(page: Any, demo: Demo, key: str) -> None:
    page.goto(demo.url + "/ui/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/ui/customers$"))


def test_an_agent_finds_a_customer_reads_their_story_and_follows_evidence(
    page: Any, demo: Demo
) -> None:
    sign_in(page, demo, demo.agent)
    assert page.get_by_role("heading", name="Lowest scores").is_visible()
    swatch = page.locator("h3 .swatch-honesty")  # coloured by the stylesheet, not inline
    assert swatch.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(213, 94, 0)"
    page.screenshot(path=SHOTS / "customers.png", full_page=True)
    page.get_by_label("Customer reference").fill(demo.late_customer)
    page.get_by_role("button", name="Open timeline").click()
    page.wait_for_url(re.compile(r"/timeline$"))
    assert page.locator("tr[id^=event-]").count() > 0
    assert page.get_by_text("a late word of advice").is_visible()
    assert page.get_by_role("heading", name="Consents").is_visible()
    assert page.get_by_role("link", name="Decision audit").count() == 0
    page.screenshot(path=SHOTS / "timeline.png")

    # A click starts a navigation without waiting for it: each step waits for the page it opens.
    page.get_by_role("link", name="Trust over time").click()
    page.wait_for_url(re.compile(r"/trust$"))
    chart = page.locator("svg.chart")
    assert chart.is_visible() and page.locator("svg.chart polygon").count() == 3
    page.screenshot(path=SHOTS / "trust.png", full_page=True)

    page.get_by_role("link", name="Push decisions").click()
    page.wait_for_url(re.compile(r"/decisions$"))
    evidence = page.locator(".evidence a").first
    event_id = evidence.inner_text()
    evidence.click()
    row = page.locator(f'[id="event-{event_id}"]')
    row.wait_for()
    assert row.is_visible() and "target" in (row.get_attribute("class") or "")
    assert page.url.endswith(f"#event-{event_id}")
    page.screenshot(path=SHOTS / "evidence.png")


def test_the_longest_names_the_api_takes_stay_within_the_page(page: Any, demo: Demo) -> None:
    """A purpose, channel or category of 64 characters without a space, a push id of 128: the
    timeline's table ran under the consent panel and the page scrolled sideways (5,233 pixels
    wide in a window of 1,280)."""
    customer, purpose, channel = "c" * 128, "p" * 64, "h" * 64
    categories = [f"{i:02}" + "d" * 62 for i in range(50)]
    consent = {"purpose": purpose, "channels": [channel], "data_categories": categories,
               "notice_version": "n" * 64, "method": "m" * 64}  # fmt: skip
    post(demo.url, demo.crm, "/v1/events", {
        "event_id": f"long-{time.time_ns()}", "type": "consent.granted", "customer": customer,
        "occurred_at": datetime.now(UTC).isoformat(), "actor": "a" * 128, "data": consent,
    })  # fmt: skip
    push = {"push_id": "u" * 128, "customer": customer, "purpose": purpose, "channel": channel,
            "kind": "offer", "data_categories": categories}  # fmt: skip
    post(demo.url, demo.crm, "/v1/push-decisions", push)
    sign_in(page, demo, demo.compliance)
    for name in ("timeline", "decisions", "receipts", "audit", "export"):
        page.goto(f"{demo.url}/ui/customers/{customer}/{name}")
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= page.viewport_size["width"], (name, wide)
    page.goto(f"{demo.url}/ui/customers/{customer}/timeline")
    page.screenshot(path=SHOTS / "long-names.png")


def test_an_agent_follows_the_consent_panel_to_the_receipts_and_downloads_them(
    page: Any, demo: Demo
) -> None:
    """The consent panel linked to the receipts API, which answered the browser 401 (it sends
    a session, not the API's bearer key). It opens the receipts page, whose download is the
    API's answer."""
    customer = f"receipts-{time.time_ns()}"
    grant = {"purpose": "marketing", "channels": ["email", "sms"], "notice_version": "2026-01",
             "data_categories": ["energy_usage"], "method": "web_form"}  # fmt: skip
    for type_, data in (("consent.granted", grant), ("consent.withdrawn", {"purpose": "*"})):
        post(demo.url, demo.crm, "/v1/events", {
            "event_id": f"{type_}-{customer}", "type": type_, "customer": customer,
            "occurred_at": datetime.now(UTC).isoformat(), "data": data,
        })  # fmt: skip
    sign_in(page, demo, demo.agent)
    page.goto(f"{demo.url}/ui/customers/{customer}/timeline")
    page.locator(".panel").get_by_role("link", name="Consent receipts").click()
    page.wait_for_url(re.compile(r"/receipts$"))
    assert page.get_by_role("heading", name="Consent receipts").is_visible()
    assert page.locator("article.receipt").count() == 2
    assert page.get_by_role(
        "heading", name=re.compile("withdrawn · \\* \\(every purpose\\) on every channel")
    ).is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
    page.screenshot(path=SHOTS / "receipts.png", full_page=True)
    with page.expect_download() as started:
        page.get_by_role("link", name="Download the JSON").click()
    downloaded = json.loads(Path(started.value.path()).read_text())
    request = urllib.request.Request(
        f"{demo.url}/v1/customers/{customer}/consents/receipts",
        headers={"Authorization": f"Bearer {demo.agent}"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert downloaded == json.load(answer)


def test_an_agent_cannot_reach_compliance_pages(page: Any, demo: Demo) -> None:
    sign_in(page, demo, demo.agent)
    answer = page.goto(f"{demo.url}/ui/customers/{demo.late_customer}/audit")
    assert answer.status == 403
    assert page.get_by_text("may not open this page").is_visible()


def test_compliance_replays_as_of_a_past_moment_and_audits(page: Any, demo: Demo) -> None:
    sign_in(page, demo, demo.compliance)
    page.goto(f"{demo.url}/ui/customers/{demo.late_customer}/timeline")
    assert page.get_by_text("a late word of advice").is_visible()
    page.get_by_label("As the ledger knew it at").fill(
        demo.before_late_event.strftime("%Y-%m-%dT%H:%M:%S")
    )
    page.get_by_role("button", name="Replay").click()
    page.wait_for_url(re.compile(r"as_of="))
    assert page.get_by_text("Replaying: every panel shows").is_visible()
    assert page.get_by_text("a late word of advice").count() == 0
    page.screenshot(path=SHOTS / "replay.png")
    page.get_by_role("link", name="Trust over time").click()
    page.wait_for_url(re.compile(r"/trust\?.*as_of="))
    assert page.locator("svg.chart").is_visible()

    page.get_by_role("link", name="Decision audit").click()
    page.wait_for_url(re.compile(r"/audit\?.*as_of="))
    assert page.locator("tbody tr").count() > 0
    assert page.get_by_text("NO", exact=True).count() == 0  # every decision reproduces
    page.screenshot(path=SHOTS / "audit.png", full_page=True)
    page.get_by_role("link", name="Export").click()
    page.wait_for_url(re.compile(r"/export"))
    assert page.get_by_role("link", name="Download the JSON").is_visible()


def test_signing_out_ends_the_session_for_a_copy_of_its_cookie(
    browser: Any, page: Any, demo: Demo
) -> None:
    """Signing out dropped only this browser's cookie: a copy taken before (another browser's,
    here) kept the pages open for the rest of the session's 10 hours."""
    sign_in(page, demo, demo.agent)
    other = browser.new_context()
    other.add_cookies(page.context.cookies())
    copy = other.new_page()
    copy.goto(demo.url + "/ui/customers")
    assert copy.url.endswith("/ui/customers")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/ui/sign-in"))
    copy.goto(demo.url + "/ui/customers")
    assert "/ui/sign-in" in copy.url
    assert copy.get_by_label("API key").is_visible()
    other.close()


@pytest.mark.parametrize("ref", [".", ".."])
def test_a_reference_that_is_a_dot_segment_opens_in_the_browser(
    page: Any, demo: Demo, ref: str
) -> None:
    """Chromium resolves `/ui/customers/./timeline` (and `%2E`) to `/ui/customers/timeline`:
    customer `.` could not be opened. The pages' links write it `%2F.`, which it keeps."""
    post_event(demo.url, demo.crm, ref)
    sign_in(page, demo, demo.compliance)
    page.get_by_label("Customer reference").fill(ref)
    page.get_by_role("button", name="Open timeline").click()
    page.wait_for_url(re.compile(r"/timeline$"))
    assert page.locator(".ref").first.inner_text() == ref
    assert page.get_by_text("a late word of advice").is_visible()
    page.get_by_role("link", name="Erase").click()
    page.wait_for_url(re.compile(r"/erase$"))
    assert page.locator(".ref").first.inner_text() == ref


def test_compliance_opens_the_findings_and_follows_their_links(page: Any, demo: Demo) -> None:
    """A push decided for email but sent by sms is a finding: listed on the findings page (from
    the navigation), linked to its audit and to its send in the customer's timeline."""
    push_id = f"browser-{time.time_ns()}"
    decided = {"push_id": push_id, "customer": demo.late_customer, "purpose": "service-notices",
               "channel": "email", "kind": "service", "data_categories": []}  # fmt: skip
    post(demo.url, demo.crm, "/v1/push-decisions", decided)
    event_id = f"sent-{push_id}"
    post(demo.url, demo.crm, "/v1/events", {
        "event_id": event_id, "type": "push.sent", "customer": demo.late_customer,
        "occurred_at": datetime.now(UTC).isoformat(), "channel": "sms",
        "data": {"push_id": push_id},
    })  # fmt: skip
    sign_in(page, demo, demo.compliance)
    page.get_by_role("link", name="Findings").click()
    page.wait_for_url(re.compile(r"/ui/findings$"))
    row = page.locator("tr.finding", has_text=push_id)
    assert row.get_by_text("sent on another channel than decided").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
    page.screenshot(path=SHOTS / "findings.png", full_page=True)
    row.get_by_role("link", name=push_id).click()
    page.wait_for_url(re.compile(r"/ui/audit/pushes/"))
    assert page.get_by_role("heading", name="Decision audit").is_visible()
    assert page.get_by_text("yes", exact=True).is_visible()  # the decision reproduces
    page.go_back()
    page.locator("tr.finding", has_text=push_id).get_by_role(
        "link", name=demo.late_customer
    ).click()
    page.wait_for_url(re.compile(r"/timeline\?around="))
    sent = page.locator(f'[id="event-{event_id}"]')
    sent.wait_for()
    assert sent.is_visible() and page.url.endswith(f"#event-{event_id}")
