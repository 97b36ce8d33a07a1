"""The pages through Flask's test client, on both stores: signing in, roles, CSRF, brands apart."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from api.app import close_app, create_app, resources_of
from api.auth import SESSIONS_PER_KEY, KeyStore
from api.ui import pages
from domain.storage import Store
from projections.db import Database
from projections.timeline import encode_cursor
from tests.e2e.conftest import ClientFor
from tests.e2e.test_gate_api import consented
from tests.e2e.test_gate_api import push as gate_push
from tests.factories import LATER, posted, story
from tests.gate_factories import NO_QUIET_HOURS, NOON, grant, push
from tests.random_refs import random_brand, random_customer

Browser = Callable[[str], FlaskClient]


def token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def sign_in(http: FlaskClient, key: str) -> int:
    form = http.get("/ui/sign-in").text
    return http.post("/ui/sign-in", data={"key": key, "csrf_token": token(form)}).status_code


@pytest.fixture
def customer(client_for: ClientFor) -> tuple[str, str]:
    """A brand with one customer whose story holds every postable type."""
    brand = random_brand()
    customer = random_customer()
    crm = client_for("brand", brand)
    for answer in crm.record(*story(customer)):
        assert answer.status_code in (200, 201), answer.text
    return brand, customer


@pytest.fixture
def person(app: Flask, keys: KeyStore) -> Callable[[str, str], FlaskClient]:
    """`person(role, brand)`: a browser signed in with a new key of that role."""

    def make(role: str, brand: str) -> FlaskClient:
        http = app.test_client()
        assert sign_in(http, keys.create(brand, role).key) == 302
        return http

    return make


def opened(
    person: Callable[..., FlaskClient],
    role: str,
    customer: tuple[str, str],
    page: str,
    **query: str,
) -> TestResponse:
    """One of the customer's pages, opened by a new person of that role at the customer's brand."""
    brand, ref = customer
    return person(role, brand).get(f"/ui/customers/{ref}/{page}", query_string=query)


def test_signed_out_pages_send_you_to_sign_in(app: Flask) -> None:
    answer = app.test_client().get("/ui/customers")
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/ui/sign-in")


@pytest.mark.parametrize("role", ["agent", "compliance"])
def test_agent_and_compliance_keys_sign_in(app: Flask, keys: KeyStore, role: str) -> None:
    http = app.test_client()
    assert sign_in(http, keys.create(random_brand(), role).key) == 302
    cookie = http.get_cookie("trustledger_session", path="/ui")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"
    assert "tlk_" not in cookie.value  # the cookie names the key, never holds it
    assert http.get("/ui/customers").status_code == 200


def test_cookies_can_be_for_https_only(store: Store, keys: KeyStore) -> None:
    app = create_app({"database_url": store.url, "secure_cookies": "1"})
    try:
        http = app.test_client()
        http.get("/ui/sign-in")
        assert http.get_cookie("trustledger_session", path="/ui").secure  # type: ignore[union-attr]
    finally:
        close_app(app)


@pytest.mark.parametrize("key", ["brand", "tlk_nonsense", ""])
def test_brand_keys_and_bad_keys_are_refused(app: Flask, keys: KeyStore, key: str) -> None:
    if key == "brand":
        key = keys.create(random_brand(), "brand").key
    http = app.test_client()
    assert sign_in(http, key) == 401
    assert http.get("/ui/customers").status_code == 302


@pytest.mark.parametrize(
    ("target", "lands_on"),
    [
        ("/ui/customers?customer=c-1", "/ui/customers?customer=c-1"),
        ("/ui/\r\nx", "/ui/customers"),  # a header split in two: was a 500
        ("/ui/\nSet-Cookie: x=1", "/ui/customers"),
        ("/ui/\tx", "/ui/customers"),
        ("//evil.example/ui/", "/ui/customers"),
        ("https://evil.example/ui/", "/ui/customers"),
        ("/v1/customers", "/ui/customers"),
    ],
)
def test_sign_in_goes_on_only_to_a_plain_path_of_these_pages(
    app: Flask, keys: KeyStore, target: str, lands_on: str
) -> None:
    http = app.test_client()
    form = http.get("/ui/sign-in", query_string={"next": target}).text
    key = keys.create(random_brand(), "agent").key
    answer = http.post("/ui/sign-in", data={"key": key, "csrf_token": token(form), "next": target})
    assert answer.status_code == 302 and answer.headers["Location"] == lands_on


def test_a_revoked_key_is_signed_out(app: Flask, keys: KeyStore) -> None:
    issued = keys.create(random_brand(), "agent")
    http = app.test_client()
    sign_in(http, issued.key)
    keys.revoke(issued.info.key_id)
    assert http.get("/ui/customers").status_code == 302


@pytest.mark.parametrize("path", ["/ui/sign-in", "/ui/customers", "/ui/customers/{ref}/timeline",
                                  "/ui/customers/{ref}/export?download=1", "/ui/nothing"])  # fmt: skip
def test_pages_are_neither_framed_nor_kept_by_the_browser(
    person: Callable[..., FlaskClient], customer: tuple[str, str], path: str
) -> None:
    """A customer's pages stayed in the browser's cache (Back after signing out showed them on
    a shared desk) and could be framed by another site (the erase form under a decoy: a
    clickjacking). Every page says no-store, refuses frames and runs no script."""
    brand, ref = customer
    answer = person("compliance", brand).get(path.format(ref=ref))
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["X-Frame-Options"] == "DENY"
    policy = answer.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'none'" in policy
    assert "form-action 'self'" in policy
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/ui/customers", "/ui/customers/{ref}/trust"])
def test_pages_style_themselves_from_their_stylesheet_alone(
    person: Callable[..., FlaskClient], customer: tuple[str, str], path: str
) -> None:
    """The policy allowed inline styles (`style-src 'unsafe-inline'`) for the colour swatches'
    `style=` attributes, and with them any style an injected attribute might carry (a page
    restyled to mislead). The pages hold no inline style, and the policy allows none."""
    brand, ref = customer
    answer = person("compliance", brand).get(path.format(ref=ref))
    assert answer.status_code == 200
    assert "style-src 'self';" in answer.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in answer.headers["Content-Security-Policy"]
    assert not re.search(r"<style|\sstyle=", answer.text)


def test_the_swatches_are_the_charts_colours() -> None:
    """The stylesheet's swatch colours are the chart's (api/ui/pages.py), kept in two places."""
    sheet = (Path(pages.__file__).parent / "static" / "ui.css").read_text()
    for name, colour in pages.DIMENSION_COLOURS.items():
        assert f".swatch-{name} {{ background: {colour}; }}" in sheet


def test_a_forged_post_is_refused(app: Flask, keys: KeyStore) -> None:
    http = app.test_client()
    http.get("/ui/sign-in")
    key = keys.create(random_brand(), "agent").key
    for token_ in ("forged", "f\u00f6rged \u2603"):  # not ASCII: compared as bytes, still 400
        forged = http.post("/ui/sign-in", data={"key": key, "csrf_token": token_})
        assert forged.status_code == 400
    assert http.post("/ui/sign-in", data={"key": key}).status_code == 400
    assert http.get("/ui/customers").status_code == 302


def test_sign_out_needs_the_token_and_ends_the_session(person: Callable[..., FlaskClient]) -> None:
    http = person("agent", random_brand())
    assert http.post("/ui/sign-out").status_code == 400
    form = http.get("/ui/customers").text
    assert http.post("/ui/sign-out", data={"csrf_token": token(form)}).status_code == 302
    assert http.get("/ui/customers").status_code == 302


def copied_cookie(app: Flask, http: FlaskClient) -> FlaskClient:
    """Another browser holding a copy of `http`'s session cookie as it is now."""
    cookie = http.get_cookie("trustledger_session", path="/ui")
    assert cookie is not None
    other = app.test_client()
    other.set_cookie("trustledger_session", cookie.value, path="/ui")
    return other


def test_a_cookie_copied_before_sign_out_is_refused_after_it(
    app: Flask, person: Callable[..., FlaskClient]
) -> None:
    """Signing out dropped only the browser's copy of the signed cookie: a copy taken before
    (a shared desk, a proxy's log, malware) opened the pages for the rest of its 10 hours.
    Signing out now ends the session on the server."""
    http = person("compliance", random_brand())
    copy = copied_cookie(app, http)
    assert copy.get("/ui/customers").status_code == 200
    form = http.get("/ui/customers").text
    assert http.post("/ui/sign-out", data={"csrf_token": token(form)}).status_code == 302
    refused = copy.get("/ui/customers")
    assert refused.status_code == 302 and refused.headers["Location"].startswith("/ui/sign-in")


def test_a_cookie_copied_before_its_key_was_revoked_is_refused(app: Flask, keys: KeyStore) -> None:
    issued = keys.create(random_brand(), "agent")
    http = app.test_client()
    assert sign_in(http, issued.key) == 302
    copy = copied_cookie(app, http)
    keys.revoke(issued.info.key_id)
    assert copy.get("/ui/customers").status_code == 302
    assert sign_in(app.test_client(), issued.key) == 401


def test_signing_in_again_ends_the_session_before(app: Flask, keys: KeyStore) -> None:
    """A second sign-in in the same browser (another key, say) leaves no session behind that a
    copy of the first cookie could still use."""
    http = app.test_client()
    assert sign_in(http, keys.create(random_brand(), "agent").key) == 302
    first = copied_cookie(app, http)
    assert sign_in(http, keys.create(random_brand(), "compliance").key) == 302
    assert first.get("/ui/customers").status_code == 302
    assert http.get("/ui/customers").status_code == 200


def test_sessions_of_the_same_key_end_one_by_one(app: Flask, keys: KeyStore) -> None:
    key = keys.create(random_brand(), "agent").key
    desk, laptop = app.test_client(), app.test_client()
    assert sign_in(desk, key) == 302 and sign_in(laptop, key) == 302
    form = desk.get("/ui/customers").text
    assert desk.post("/ui/sign-out", data={"csrf_token": token(form)}).status_code == 302
    assert laptop.get("/ui/customers").status_code == 200


def test_a_key_holds_at_most_its_quota_of_sessions_the_oldest_ending_first(
    app: Flask, keys: KeyStore
) -> None:
    """Each sign-in from a new client kept a row for 10 hours, however many: 300 scripted
    sign-ins with one key left 301 (seen by a probe). A key now keeps SESSIONS_PER_KEY."""
    key = keys.create(random_brand(), "agent").key
    browsers = [app.test_client() for _ in range(SESSIONS_PER_KEY + 1)]
    for browser in browsers:
        assert sign_in(browser, key) == 302
    first, *rest = browsers
    assert first.get("/ui/customers").status_code == 302  # to the sign-in page
    assert all(browser.get("/ui/customers").status_code == 200 for browser in rest)


def test_an_agent_reads_the_timeline_consents_trust_and_decisions(
    person: Callable[..., FlaskClient], customer: tuple[str, str]
) -> None:
    brand, ref = customer
    http = person("agent", brand)
    found = http.get(f"/ui/customers?customer={ref}")
    assert found.status_code == 302 and found.headers["Location"].endswith(f"/{ref}/timeline")
    timeline = http.get(f"/ui/customers/{ref}/timeline").text
    assert "switch to flex" in timeline and 'id="event-' in timeline
    older = re.search(r'href="([^"]+)">Older events', timeline)
    assert older
    second = http.get(older.group(1).replace("&amp;", "&")).text
    assert "refund by Friday" in second
    newer = re.search(r'href="([^"]+)">Newer events', second)
    assert newer and "switch to flex" in http.get(newer.group(1).replace("&amp;", "&")).text
    assert "marketing" in timeline  # the consent panel
    assert "Decision audit" not in timeline and "Erase" not in timeline  # not an agent's
    chart = http.get(f"/ui/customers/{ref}/trust").text
    assert "<svg" in chart and "<polygon" in chart
    assert http.get(f"/ui/customers/{ref}/decisions").status_code == 200


@pytest.mark.parametrize("page", ["timeline", "decisions"])
@pytest.mark.parametrize(
    "cursor",
    ["x", "-1", "2026-01-01T00:00:00Z", "\u2603", encode_cursor(2**63), encode_cursor(True)],
)
def test_a_page_link_altered_by_hand_is_400(
    person: Callable[..., FlaskClient], customer: tuple[str, str], page: str, cursor: str
) -> None:
    answer = opened(person, "agent", customer, page, cursor=cursor)
    assert answer.status_code == 400 and "That page link is not valid." in answer.text


@pytest.mark.parametrize("around", ["no-such-event", "a\x00b", "\u2603" * 300])
def test_a_link_to_an_event_that_is_not_there_opens_the_first_page(
    person: Callable[..., FlaskClient], customer: tuple[str, str], around: str
) -> None:
    answer = opened(person, "agent", customer, "timeline", around=around)
    assert answer.status_code == 200 and "Newer events" not in answer.text  # was a 500 on NUL


def test_the_chart_draws_a_brand_whose_promise_was_kept_dated_before_it_was_made(
    person: Callable[..., FlaskClient], client_for: ClientFor
) -> None:
    brand, ref = random_brand(), random_customer()
    made = posted("promise.made", ref, promise_id="p", summary="s", due_at=LATER)
    kept = posted("promise.kept", ref, promise_id="p", at=made.occurred_at - timedelta(days=1))
    assert [a.status_code for a in client_for("brand", brand).record(made, kept)] == [201, 201]
    chart = person("agent", brand).get(f"/ui/customers/{ref}/trust")
    assert chart.status_code == 200 and "<polygon" in chart.text  # was a 500: kept folded first


def test_the_chart_drawn_again_after_a_write_reads_only_the_rows_recorded_since(
    person: Callable[..., FlaskClient],
    client_for: ClientFor,
    customer: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server process keeps the relationship's line as it keeps the brand's: it used to read
    and fold the relationship's whole timeline on every drawing (0.7 s at 100,000 events)."""
    brand, ref = customer
    agent = person("agent", brand)
    assert agent.get(f"/ui/customers/{ref}/trust").status_code == 200
    answered = posted(
        "question.answered", ref, case_id="q-9", topic="t", resolved=True, at=datetime.now(UTC)
    )
    assert client_for("brand", brand).record(answered)[0].status_code == 201
    read: list[int] = []
    query = Database.query

    def counted(db: Database, statement: str, params: Any = (), binary: bool = False) -> Any:
        rows = query(db, statement, params, binary)
        if "FROM timeline" in statement:
            read.append(len(rows))
        return rows

    monkeypatch.setattr(Database, "query", counted)
    drawn = agent.get(f"/ui/customers/{ref}/trust")
    assert drawn.status_code == 200 and "<polygon" in drawn.text
    assert sum(read) <= 3, read  # the new row, for the brand's line and the relationship's


@pytest.mark.parametrize("page", ["audit", "export", "erase"])
def test_an_agent_gets_403_on_compliance_pages(
    person: Callable[..., FlaskClient], customer: tuple[str, str], page: str
) -> None:
    brand, ref = customer
    assert person("agent", brand).get(f"/ui/customers/{ref}/{page}").status_code == 403
    assert person("compliance", brand).get(f"/ui/customers/{ref}/{page}").status_code == 200


@pytest.mark.parametrize(
    "page", ["timeline", "trust", "decisions", "receipts", "audit", "export", "erase"]
)
def test_another_brands_customer_is_not_found(
    person: Callable[..., FlaskClient], customer: tuple[str, str], page: str
) -> None:
    _, ref = customer
    http = person("compliance", random_brand())
    assert http.get(f"/ui/customers/{ref}/{page}").status_code == 404
    assert http.get(f"/ui/customers?customer={ref}").status_code == 404


def advised(client_for: ClientFor, brand: str, ref: str) -> None:
    """The brand's CRM records one event for the customer `ref`."""
    event = posted("advice.given", ref, advice_id="a", topic="t", summary="s")
    assert [a.status_code for a in client_for("brand", brand).record(event)] == [201]


def found_at(http: FlaskClient, typed: str) -> str:
    """Where the search for `typed` leads: a customer's timeline."""
    found = http.get("/ui/customers", query_string={"customer": typed})
    assert found.status_code == 302, found.status_code
    return found.headers["Location"]


def test_the_search_finds_a_reference_as_typed_then_without_its_spaces(
    person: Callable[..., FlaskClient], client_for: ClientFor
) -> None:
    brand, ref = random_brand(), random_customer()
    spaced = f" {ref} "
    advised(client_for, brand, spaced)
    http = person("agent", brand)
    assert found_at(http, spaced).endswith(f"/{quote(spaced)}/timeline")
    assert http.get("/ui/customers", query_string={"customer": ref}).status_code == 404
    advised(client_for, brand, ref)
    assert found_at(http, f"  {ref}\t").endswith(f"/{ref}/timeline")


@pytest.mark.parametrize("blank", [" ", "\u00a0 "])
def test_the_search_finds_a_reference_of_spaces_alone(
    person: Callable[..., FlaskClient], client_for: ClientFor, blank: str
) -> None:
    """The API takes a reference that is only spaces; searched for, it showed the lowest
    scores as if nothing had been typed, so its pages could not be found."""
    brand = random_brand()
    advised(client_for, brand, blank)
    http = person("agent", brand)
    assert found_at(http, blank).endswith(f"/{quote(blank)}/timeline")
    missing = http.get("/ui/customers", query_string={"customer": blank * 2})
    assert missing.status_code == 404 and "No customer" in missing.get_data(as_text=True)


def test_a_reference_with_dot_segments_opens_its_own_pages(
    app: Flask, keys: KeyStore, client_for: ClientFor
) -> None:
    """A browser resolves `..` between slashes before it asks: the link to customer
    `x/../OTHER` opened OTHER's pages (another customer's data), and `a/..` opened nothing.
    Every link and redirect to a customer's page, the return after signing in included, names
    the reference with its slashes encoded, so it stays one segment."""
    brand, other = random_brand(), random_customer()
    tricky = f"x/../{other}"
    crm = client_for("brand", brand)
    for ref, summary in ((other, "Advice to the other"), (tricky, "Advice to the tricky one")):
        answer = crm.record(posted("advice.given", ref, advice_id="a", topic="t", summary=summary))
        assert [a.status_code for a in answer] == [201]
    key = keys.create(brand, "agent").key
    http = app.test_client()
    here = "http://localhost/ui/customers"

    def followed(answer: TestResponse) -> TestResponse:
        """The redirect as a browser follows it: dot segments resolved (RFC 3986, 5.2)."""
        assert answer.status_code == 302, answer.text
        return http.get(urljoin(here, answer.headers["Location"]))

    signed_out = http.get(f"/ui/customers/{quote(tricky, safe='')}/trust")
    form = followed(signed_out)
    back = http.post(
        "/ui/sign-in",
        data={"key": key, "csrf_token": token(form.text), "next": next_of(form.text)},
    )
    returned = followed(back)
    assert returned.status_code == 200 and f'class="ref">{tricky}<' in returned.text
    page = followed(http.get("/ui/customers", query_string={"customer": tricky}))
    assert page.status_code == 200 and "Advice to the tricky one" in page.text, page.text
    assert "Advice to the other" not in page.text
    tabs = re.findall(r'<a href="([^"]+/(?:trust|decisions))"', page.text)
    assert tabs
    for tab in tabs:
        opened_tab = http.get(urljoin(here, html.unescape(tab)))
        assert opened_tab.status_code == 200 and f'class="ref">{tricky}<' in opened_tab.text


DOT_SEGMENT = re.compile(r"/(?:\.|%2e){1,2}(?=/|$|\?|#)", re.IGNORECASE)
"""A path segment a browser resolves away (WHATWG URL: `.`, `..`, and `%2e` in either)."""


@pytest.mark.parametrize("ref", [".", ".."])
def test_a_reference_that_is_a_dot_segment_opens_its_own_pages_and_is_erased(
    person: Callable[..., FlaskClient], client_for: ClientFor, ref: str
) -> None:
    """The links to customer `.` read `/ui/customers/./timeline`, which a browser asks as
    `/ui/customers/timeline` (and `..` as `/ui/timeline`), even percent-encoded as `%2E`: the
    customer could be recorded, and read, exported and erased over the API, but never opened
    in the pages, nor erased there. Such a reference is written `%2F.` in the pages' paths (no
    reference starts with "/", so the two cannot meet)."""
    brand = random_brand()
    crm = client_for("brand", brand)
    answer = crm.record(posted("advice.given", ref, advice_id="a", topic="t", summary="Dotty"))
    assert [a.status_code for a in answer] == [201]
    http = person("compliance", brand)
    found = http.get("/ui/customers", query_string={"customer": ref})
    assert found.status_code == 302
    link = found.headers["Location"]
    assert not DOT_SEGMENT.search(link), link
    page = http.get(link)
    assert page.status_code == 200 and "Dotty" in page.text
    assert f'class="ref">{ref}<' in page.text
    links = re.findall(r'href="(/ui/customers/[^"]+)"', page.text)
    assert links and not [a for a in links if DOT_SEGMENT.search(html.unescape(a))]
    for tab in links:
        assert http.get(html.unescape(tab)).status_code == 200, tab
    erase_page = link.replace("/timeline", "/erase")
    form = http.get(erase_page).text
    data = {"csrf_token": token(form), "confirm": ref, "reason": "Art. 17 request 7"}
    assert http.post(erase_page, data=data).status_code == 200
    assert "[erased]" in http.get(link).text


@pytest.mark.parametrize("ref", [".", "..", "a/../b?c#d"])
def test_the_api_path_the_receipts_and_export_pages_name_reaches_the_customer(
    person: Callable[..., FlaskClient], client_for: ClientFor, ref: str
) -> None:
    """Both pages name the API's path to the same document. It was written with the reference
    raw: for `..` it read `GET /v1/customers/../consents/receipts`, which curl (and a browser)
    send as /v1/consents/receipts, and `a/../b?c#d` cut the path at `?`. It is written now as
    README's bounds say a client must send it: percent-encoded, `.` and `..` whole as `%2E`."""
    brand = random_brand()
    given = grant(ref)
    assert [a.status_code for a in client_for("brand", brand).record(given)] == [201]
    compliance = client_for("compliance", brand)
    http = person("compliance", brand)
    timeline = http.get("/ui/customers", query_string={"customer": ref}).headers["Location"]
    for page in ("receipts", "export"):
        text = http.get(timeline.replace("/timeline", f"/{page}")).text
        named = re.search(r"<code>GET (/v1/[^<]*)</code>", text)
        assert named, text
        sent = urlsplit(urljoin("http://localhost/", html.unescape(named.group(1))))
        answer = compliance.get(sent.path, query_string=sent.query)  # as curl sends it
        assert answer.status_code == 200, (page, named.group(1), sent)
        body = answer.get_json()
        found = body["receipts"] if page == "receipts" else body["consent_receipts"]
        assert [receipt["event_id"] for receipt in found] == [given.event_id]


def next_of(form: str) -> str:
    found = re.search(r'name="next" value="([^"]*)"', form)
    assert found, form
    return html.unescape(found.group(1))


def test_text_is_escaped(person: Callable[..., FlaskClient], client_for: ClientFor) -> None:
    brand, ref = random_brand(), random_customer()
    event = posted(
        "promise.made", ref, promise_id="p1", summary="<script>alert(1)</script>", due_at=LATER
    )
    client_for("brand", brand).record(event)
    page = person("agent", brand).get(f"/ui/customers/{ref}/timeline").text
    assert "<script>alert(1)" not in page and "&lt;script&gt;" in page


def test_compliance_replays_as_of_a_record_time(
    person: Callable[..., FlaskClient], client_for: ClientFor
) -> None:
    brand, ref = random_brand(), random_customer()
    crm = client_for("brand", brand)
    first = crm.record(posted("promise.made", ref, promise_id="p1", summary="first", due_at=LATER))[
        0
    ].get_json()
    crm.record(posted("promise.made", ref, promise_id="p2", summary="second", due_at=LATER))
    moment = first["recorded_at"][:26]
    http = person("compliance", brand)
    now = http.get(f"/ui/customers/{ref}/timeline").text
    then = http.get(f"/ui/customers/{ref}/timeline", query_string={"as_of": moment}).text
    assert "second" in now and "first" in then and "second" not in then
    agent = (
        person("agent", brand)
        .get(f"/ui/customers/{ref}/timeline", query_string={"as_of": moment})
        .text
    )
    assert "second" in agent  # an agent always sees now


def test_every_link_of_a_replay_replays_at_the_same_moment(
    person: Callable[..., FlaskClient], client_for: ClientFor
) -> None:
    """A replay at an event's own record time (copied from the API, with its microseconds)
    showed that event, but its tabs and page links carried the time cut to the second, so the
    next panel replayed an earlier moment without it, under the same heading."""
    brand, ref = random_brand(), random_customer()
    answer = client_for("brand", brand).record(
        posted("promise.made", ref, promise_id="p1", summary="the promise", due_at=LATER)
    )[0]
    moment = answer.get_json()["recorded_at"]
    http = person("compliance", brand)
    page = http.get(f"/ui/customers/{ref}/timeline", query_string={"as_of": moment})
    assert page.status_code == 200 and "the promise" in page.text
    micros = datetime.fromisoformat(moment).strftime("%H:%M:%S.%f")
    assert micros in page.text  # the heading names the moment replayed, to the microsecond
    links = {html.unescape(h) for h in re.findall(r'href="([^"]*as_of=[^"]*)"', page.text)}
    assert links
    for link in links:
        followed = http.get(link)
        assert followed.status_code == 200, (link, followed.text)
        assert micros in followed.text, link
    timeline = next(link for link in links if "/timeline" in link)
    assert "the promise" in http.get(timeline).text


@pytest.mark.parametrize("page", ["timeline", "trust", "decisions", "audit"])
@pytest.mark.parametrize(
    "moment", ["not a time", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]
)
def test_an_as_of_time_the_pages_cannot_read_is_400(
    person: Callable[..., FlaskClient], customer: tuple[str, str], page: str, moment: str
) -> None:
    answer = opened(person, "compliance", customer, page, as_of=moment)
    assert answer.status_code == 400 and "The as-of time reads" in answer.text


@pytest.mark.parametrize("page", ["timeline", "trust", "decisions", "audit"])
def test_compliance_replays_as_of_the_last_moment_of_the_calendar(
    person: Callable[..., FlaskClient], client_for: ClientFor, page: str
) -> None:
    brand, ref = random_brand(), random_customer()
    # From this first event the chart's 32 moments, each rounded up, passed the calendar's end.
    first = datetime(2026, 1, 1, tzinfo=UTC)
    event = posted("promise.made", ref, promise_id="p", summary="s", due_at=LATER, at=first)
    assert client_for("brand", brand).record(event)[0].status_code == 201
    last = "9999-12-31T23:59:59.999999Z"
    assert opened(person, "compliance", (brand, ref), page, as_of=last).status_code == 200


def erase(http: FlaskClient, ref: str, confirm: str, reason: str) -> TestResponse:
    """The customer's erase form, filled in and sent."""
    form = http.get(f"/ui/customers/{ref}/erase").text
    data = {"csrf_token": token(form), "confirm": confirm, "reason": reason}
    return http.post(f"/ui/customers/{ref}/erase", data=data)


def test_erasure_asks_for_the_reference_first(
    person: Callable[..., FlaskClient], customer: tuple[str, str]
) -> None:
    brand, ref = customer
    http = person("compliance", brand)
    wrong = erase(http, ref, "someone-else", "ticket 1")
    assert wrong.status_code == 422 and "nothing was erased" in wrong.text
    assert "switch to flex" in http.get(f"/ui/customers/{ref}/timeline").text
    done = erase(http, ref, ref, "ticket 1")
    assert done.status_code == 200 and "Erased" in done.text
    assert re.search(r"at the request of key:[0-9a-f]+,", done.text)  # as the API records it
    timeline = http.get(f"/ui/customers/{ref}/timeline").text
    assert "switch to flex" not in timeline and "[erased]" in timeline
    assert "was erased" in http.get(f"/ui/customers/{ref}/trust").text


def test_the_erase_page_of_an_erased_customer_says_so(
    person: Callable[..., FlaskClient], customer: tuple[str, str]
) -> None:
    """It offered the erase form again, as if nothing had been erased: the officer learnt of
    the first erasure only by erasing again."""
    brand, ref = customer
    http = person("compliance", brand)
    assert erase(http, ref, ref, "ticket 7").status_code == 200
    page = http.get(f"/ui/customers/{ref}/erase").text
    assert "Erased (already, earlier)" in page and "because: ticket 7" in page
    assert 'name="confirm"' not in page


@pytest.mark.parametrize("reason", ["ticket\x00 9", "y" * 100_000], ids=["NUL", "100k"])
def test_erasure_refuses_a_reason_the_api_refuses(
    person: Callable[..., FlaskClient], customer: tuple[str, str], reason: str
) -> None:
    brand, ref = customer
    http = person("compliance", brand)
    refused = erase(http, ref, ref, reason)
    assert refused.status_code == 422 and "nothing was erased" in refused.text
    assert "switch to flex" in http.get(f"/ui/customers/{ref}/timeline").text


def test_an_erased_customer_is_listed_without_a_link(
    person: Callable[..., FlaskClient], client_for: ClientFor, customer: tuple[str, str]
) -> None:
    brand, ref = customer
    http = person("compliance", brand)
    assert erase(http, ref, ref, "ticket 1").status_code == 200
    named = posted("promise.made", "[erased]", promise_id="p", summary="s", due_at=LATER)
    assert client_for("brand", brand).record(named)[0].status_code == 201  # a live customer
    listed = http.get("/ui/customers").text
    # Each in the three columns: the live one linked to its timeline, the erased one not at all.
    assert listed.count("[erased]") == 6
    assert listed.count('href="/ui/customers/%5Berased%5D/timeline">[erased]</a>') == 3


def test_the_audit_page_audits_each_decision_of_a_push_decided_twice(
    app: Flask, person: Callable[..., FlaskClient]
) -> None:
    """A deferred push asked again after its retry_after is decided again: the audit page
    audited the push's last decision in both rows, so the deferral read "allow" as recorded."""
    brand, ref = random_brand(), random_customer()
    ledger = resources_of(app).ledger
    ledger.record(brand, posted("preferences.updated", ref, at=NOON - timedelta(days=3),
                                timezone="UTC"))  # fmt: skip
    request = push("service", (), ref, purpose=None)
    night, morning = NOON.replace(hour=23), NOON.replace(hour=23) + timedelta(hours=9)
    assert ledger.decide_push(brand, request, now=night)["outcome"] == "defer"
    assert ledger.decide_push(brand, request, now=morning)["outcome"] == "allow"
    page = person("compliance", brand).get(f"/ui/customers/{ref}/audit").text
    rows = re.findall(r"<tr class=\"(ok|bad)\">(.*?)</tr>", page, re.S)
    outcomes = [re.findall(r"<td>(\w+)</td>", row) for _, row in rows]
    assert [o[:2] for o in outcomes] == [["allow", "allow"], ["defer", "defer"]], page


def test_the_audit_page_pages_through_every_decision(
    app: Flask, person: Callable[..., FlaskClient]
) -> None:
    """It audited the newest 25 decisions and offered no way to the older ones."""
    brand, ref = random_brand(), random_customer()
    ledger = resources_of(app).ledger
    ledger.set_policy(brand, NO_QUIET_HOURS)
    pushes = [push("service", (), ref, purpose=None) for _ in range(27)]
    for n, request in enumerate(pushes):
        ledger.decide_push(brand, request, now=NOON + timedelta(minutes=n))
    http = person("compliance", brand)
    first = http.get(f"/ui/customers/{ref}/audit").text
    older = re.search(r'<a rel="next" href="([^"]+)">Older decisions</a>', first)
    assert older, first
    second = http.get(html.unescape(older.group(1))).text
    shown = re.findall(r"<code>(push-[^<]+)</code>", first + second)
    assert shown == [p.push_id for p in reversed(pushes)]


def test_the_consent_panel_shows_an_objection_the_gate_honours(
    person: Callable[..., FlaskClient], client_for: ClientFor
) -> None:
    """A withdrawal of `*` on one channel left the other channel's consent reading `granted` in
    the panel, while the gate denied every offer and advice push for the objection."""
    brand, ref = random_brand(), random_customer()
    crm = client_for("brand", brand)
    grant = posted("consent.granted", ref, purpose="marketing", channels=["email", "sms"],
                   data_categories=[], notice_version="1", method="web_form")  # fmt: skip
    objected = posted("consent.withdrawn", ref, purpose="*", channels=["sms"])
    assert [a.status_code for a in crm.record(grant, objected)] == [201, 201]
    page = person("agent", brand).get(f"/ui/customers/{ref}/timeline").text
    panel = page[page.index('id="consents-heading"') :]
    assert "Objected to all offers and advice on sms" in panel, panel
    assert "the gate denies every offer and advice push on that channel" in panel
    assert objected.event_id in panel


@pytest.mark.parametrize("role", ["agent", "compliance"])
def test_the_timeline_links_to_the_receipts_page_which_downloads_the_apis_receipts(
    person: Callable[..., FlaskClient],
    client_for: ClientFor,
    customer: tuple[str, str],
    role: str,
) -> None:
    """The consent panel linked to the receipts API, which a browser's session cannot open (a
    401 for the bearer key it does not send): support and compliance had no receipt to read. The
    pages show the API's receipts, and download the same document."""
    brand, ref = customer
    http = person(role, brand)
    timeline = http.get(f"/ui/customers/{ref}/timeline").text
    panel = timeline[timeline.index('id="consents-heading"') :]
    link = re.search(r'<a href="([^"]+)">Consent receipts</a>', panel)
    assert link and link.group(1) == f"/ui/customers/{quote(ref)}/receipts"
    assert "/v1/" not in panel
    page = http.get(link.group(1))
    assert page.status_code == 200
    api = client_for(role, brand).get(f"/v1/customers/{ref}/consents/receipts").get_json()
    shown = re.findall(r'<h3>(\w+) · (\w+) on ([^<]+?) <span class="hint">', page.text)
    assert shown == [("granted", "marketing", "email, push"), ("withdrawn", "marketing", "push")]
    for receipt in api["receipts"]:
        assert receipt["consentReceiptID"] in page.text and receipt["event_id"] in page.text
    download = http.get(f"/ui/customers/{ref}/receipts", query_string={"download": "1"})
    assert download.mimetype == "application/json"
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert download.get_json() == api
    assert download.headers["Cache-Control"] == "no-store"


def test_the_receipts_page_names_every_channel_and_escapes_the_controller(
    person: Callable[..., FlaskClient], client_for: ClientFor
) -> None:
    brand, ref = random_brand(), random_customer()
    crm = client_for("brand", brand)
    answer = crm.put("/v1/policy", json={"controller": {"name": "<script>alert(1)</script>"}})
    assert answer.status_code == 200, answer.get_json()
    grant = posted("consent.granted", ref, purpose="marketing", channels=["email"],
                   data_categories=["health"], notice_version="1", method="web_form",
                   expires_at="2031-02-03T04:05:06+01:00")  # fmt: skip
    objected = posted("consent.withdrawn", ref, purpose="*")
    assert [a.status_code for a in crm.record(grant, objected)] == [201, 201]
    page = person("agent", brand).get(f"/ui/customers/{ref}/receipts").text
    assert "<h3>withdrawn · * (every purpose) on every channel" in page
    ends = re.findall(r"<dt>Ends</dt><dd>([^<]*)</dd>", page)
    assert ends == ["2031-02-03 03:05 UTC", "withdrawn"]  # as the consent panel shows a moment
    assert "<dt>Sensitive</dt><dd>health</dd>" in page
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page


def findings_made(client_for: ClientFor) -> tuple[str, str, str, list[str]]:
    """A brand whose CRM, through the API, sent a push the gate denied and one never asked
    about: its brand, customer, denied push id and the two sends' event ids, newest first."""
    crm = client_for("brand")
    ref = random_customer()
    consented(crm, ref, ["purchase_history"])
    denied = gate_push(ref, data_categories=["browsing_history"])
    assert crm.post("/v1/push-decisions", json=denied).get_json()["outcome"] == "deny"
    now = datetime.now(UTC)
    sends = [
        posted("push.sent", ref, push_id=denied["push_id"], at=now - timedelta(minutes=1)),
        posted("push.sent", ref, push_id="never-asked", at=now - timedelta(minutes=2)),
    ]
    assert [a.status_code for a in crm.record(*sends)] == [201, 201]
    return crm.brand, ref, denied["push_id"], [s.event_id for s in sends]


def finding_rows(page: str) -> list[str]:
    return re.findall(r'<tr class="finding">(.*?)</tr>', page, re.S)


def test_compliance_reads_the_findings_and_follows_their_links(
    person: Callable[..., FlaskClient], client_for: ClientFor
) -> None:
    brand, ref, denied, (sent_denied, sent_unasked) = findings_made(client_for)
    http = person("compliance", brand)
    home = http.get("/ui/customers").text
    assert '<a href="/ui/findings"' in home  # the navigation leads there
    page = http.get("/ui/findings")
    assert page.status_code == 200
    first, second = finding_rows(page.text)
    assert "sent although denied" in first and "sent without a decision" in second
    audit_link = f'href="/ui/audit/pushes/{denied}"'
    assert audit_link in first and "/ui/audit/pushes/" not in second  # no decision, no audit
    for row, event_id in ((first, sent_denied), (second, sent_unasked)):
        timeline = f'href="/ui/customers/{ref}/timeline?around={event_id}#event-{event_id}"'
        assert timeline in row and f">{ref}</a>" in row, row
        around = http.get(html.unescape(timeline[6:-1]).split("#")[0])
        assert around.status_code == 200 and f'id="event-{event_id}"' in around.text
    audit = http.get(f"/ui/audit/pushes/{denied}")
    assert audit.status_code == 200 and f"<code>{denied}</code>" in audit.text
    assert "<td><strong>yes</strong></td>" in audit.text  # the decision reproduces
    assert http.get("/ui/audit/pushes/never-asked").status_code == 404


def test_the_findings_name_the_withdrawal_and_an_erased_customer_unlinked(
    app: Flask, person: Callable[..., FlaskClient]
) -> None:
    brand, ref = random_brand(), random_customer()
    ledger = resources_of(app).ledger
    ledger.set_policy(brand, NO_QUIET_HOURS)
    ledger.record(brand, grant(ref, channels=("push",)))
    request = push("offer", (), ref)
    assert ledger.decide_push(brand, request, now=NOON)["outcome"] == "allow"
    withdrawal = posted("consent.withdrawn", ref, purpose="marketing", at=NOON + timedelta(hours=1))
    sent = posted("push.sent", ref, push_id=request.push_id, at=NOON + timedelta(hours=2))
    for event in (withdrawal, replace(sent, channel="push")):
        ledger.record(brand, event)
    http = person("compliance", brand)
    (row,) = finding_rows(http.get("/ui/findings").text)
    assert "sent after its consent was withdrawn" in row
    assert f"?around={withdrawal.event_id}#event-{withdrawal.event_id}" in row
    assert http.get(f"/ui/customers/{ref}/timeline?around={withdrawal.event_id}").status_code == 200
    assert erase(http, ref, ref, "ticket 3").status_code == 200
    (row,) = finding_rows(http.get("/ui/findings").text)
    assert "[erased]" in row and ref not in row and "/timeline" not in row
    assert withdrawal.event_id in row  # named, with nothing to open
    assert f'href="/ui/audit/pushes/{request.push_id}"' in row
    assert http.get(f"/ui/audit/pushes/{request.push_id}").status_code == 200


def test_the_findings_page_through_every_finding(
    person: Callable[..., FlaskClient], client_for: ClientFor
) -> None:
    crm = client_for("brand")
    ref, now = random_customer(), datetime.now(UTC)
    sends = [
        posted("push.sent", ref, push_id=f"p{n:02}", at=now - timedelta(minutes=60 - n))
        for n in range(pages.PAGE_SIZE + 2)
    ]
    assert {a.status_code for a in crm.record(*sends)} == {201}
    http = person("compliance", crm.brand)
    first = http.get("/ui/findings").text
    assert "Newest findings" not in first
    older = re.search(r'<a rel="next" href="([^"]+)">Older findings</a>', first)
    assert older, first
    second = http.get(html.unescape(older.group(1))).text
    assert "Newest findings" in second and "Older findings" not in second
    shown = re.findall(r"<code>(p\d\d)</code>", first + second)
    assert shown == [s.data["push_id"] for s in reversed(sends)]
    altered = http.get("/ui/findings", query_string={"cursor": "x"})
    assert altered.status_code == 400 and "That page link is not valid." in altered.text


@pytest.mark.parametrize("path", ["/ui/findings", "/ui/audit/pushes/p1"])
def test_only_compliance_opens_the_findings(
    person: Callable[..., FlaskClient], app: Flask, path: str
) -> None:
    brand = random_brand()
    agent = person("agent", brand)
    refused = agent.get(path)
    assert refused.status_code == 403 and "may not open this page" in refused.text
    assert 'href="/ui/findings"' not in agent.get("/ui/customers").text
    signed_out = app.test_client().get(path)
    assert signed_out.status_code == 302 and "/ui/sign-in" in signed_out.headers["Location"]
