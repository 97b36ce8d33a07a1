"""The pages for people: support agents read a customer's story; compliance replays it as of any
record time, audits decisions, exports and erases. Server-rendered, escaped by Jinja."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.exceptions import HTTPException

from api import reads
from api.context import ledger, read_side, resources
from api.errors import route
from api.schemas.privacy import ErasureRequestSchema, ExportSchema, ReceiptsSchema
from api.ui import chart
from api.ui.session import (
    PAGE_ROLES,
    caller,
    check_csrf,
    csrf_token,
    page,
    sign_in,
    signed_in,
)
from api.ui.session import sign_out as end_session
from domain.application import ErasureReceipt
from domain.errors import DecisionNotFound, RelationshipNotFound, StoreMigratedAway
from domain.relationship import relationship_id
from projections import relationships as relationship_model
from projections.decisions import EXPIRED, WITHDRAWN
from projections.paging import BadCursor, ListPage
from projections.timeline import encode_cursor, has_relationship

log = logging.getLogger(__name__)
blp = Blueprint(
    "ui", __name__, url_prefix="/ui", template_folder="templates", static_folder="static"
)
PAGE_SIZE = 25
LOWEST = 8
COMPLIANCE = ("compliance",)
EXPORT_ENDPOINT = "/v1/customers/<path:customer>/export"
RECEIPTS_ENDPOINT = "/v1/customers/<path:customer>/consents/receipts"
DIMENSION_COLOURS = {"consistency": "#0072B2", "honesty": "#D55E00", "expertise": "#009E73"}
"""Okabe-Ito colours, told apart with the common colour-vision deficiencies; lines also differ
in dash pattern, so the chart reads in grey too."""
DIMENSION_DASHES = {"consistency": "", "honesty": "6 3", "expertise": "2 3"}
FAMILIES = {
    "promise": ("P", "promise"),
    "offer": ("O", "offer"),
    "error": ("!", "error"),
    "question": ("?", "question"),
    "case": ("?", "case"),
    "advice": ("A", "advice"),
    "consent": ("C", "consent"),
    "preferences": ("S", "preferences"),
    "push": ("➚", "push"),
}


@blp.before_request
def _forms_are_ours() -> None:
    check_csrf()


@blp.app_template_global()
def form_token() -> str:
    return csrf_token()


@blp.context_processor
def _shared() -> dict[str, Any]:
    return {
        "colours": DIMENSION_COLOURS,
        "dashes": DIMENSION_DASHES,
        "dimensions": chart.DIMENSIONS,
        "family": family,
        "ends": ends,
        "issued": issued,
        "when": when,
    }


def family(event_type: str) -> tuple[str, str]:
    return FAMILIES.get(event_type.split(".")[0], ("•", "other"))


def when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else ""


def ends(termination: str) -> str:
    """A receipt's `termination` as the pages show a moment, or its words ("on withdrawal")."""
    try:
        return when(datetime.fromisoformat(termination))
    except ValueError:
        return termination


def issued(epoch_seconds: int) -> datetime:
    """A receipt's `consentTimestamp` (epoch seconds) as a moment the pages can show."""
    return datetime.fromtimestamp(epoch_seconds, UTC)


@blp.errorhandler(RelationshipNotFound)
def _no_customer(_: Exception) -> tuple[str, int]:
    return render_template(
        "ui/problem.html", status=404, message="No such customer for your brand (at that time)."
    ), 404


@blp.errorhandler(DecisionNotFound)
def _no_decision(_: Exception) -> tuple[str, int]:
    return render_template(
        "ui/problem.html", status=404, message="No such push decision for your brand."
    ), 404


@blp.errorhandler(StoreMigratedAway)
def _migrated_away(error: StoreMigratedAway) -> tuple[str, int]:
    """The API's 503 (api/errors.py), as a page: this process is older than its database."""
    log.error("%s %s: %s", request.method, route(), error)
    return render_template("ui/problem.html", status=503, message=str(error)), 503


@blp.errorhandler(BadCursor)
def _bad_cursor(_: Exception) -> tuple[str, int]:
    """A page link altered by hand, on any page that pages (the timeline, the decisions, the
    findings)."""
    return render_template(
        "ui/problem.html", status=400, message="That page link is not valid."
    ), 400


@blp.errorhandler(HTTPException)
def _http_problem(error: HTTPException) -> tuple[str, int]:
    code = error.code or 500
    messages = {403: "Your key's role may not open this page.", 404: "Nothing is here."}
    message = messages.get(code, error.description or "")
    return render_template("ui/problem.html", status=code, message=message), code


# --- signing in and out -------------------------------------------------------------------------


@blp.get("/")
def home() -> Response:
    target = "ui.customers" if signed_in() else "ui.sign_in_form"
    return redirect(url_for(target))  # type: ignore[return-value]


@blp.get("/sign-in")
def sign_in_form() -> str:
    return render_template("ui/sign_in.html", problem=None, next=_safe_next())


@blp.post("/sign-in")
def sign_in_post() -> Any:
    found = resources().keys.authenticate(request.form.get("key", "").strip())
    if found is None:
        return _refused("That key is not a live API key.")
    if found.role not in PAGE_ROLES:
        return _refused("A brand key is for your CRM; sign in with an agent or compliance key.")
    if not sign_in(found):  # revoked since the cached check
        return _refused("That key is not a live API key.")
    return redirect(_safe_next() or url_for("ui.customers"))


def _refused(problem: str) -> tuple[str, int]:
    return render_template("ui/sign_in.html", problem=problem, next=_safe_next()), 401


def _safe_next() -> str | None:
    """Where to go after signing in: only a plain path of these pages, never another site, and
    nothing unprintable (a line break in the Location header is a 500, or a header of its own)."""
    target = request.values.get("next", "")
    return target if target.startswith("/ui/") and target.isprintable() else None


@blp.post("/sign-out")
def sign_out() -> Response:
    end_session()
    return redirect(url_for("ui.sign_in_form"))  # type: ignore[return-value]


# --- finding customers --------------------------------------------------------------------------


@blp.get("/customers")
@page(*PAGE_ROLES)
def customers() -> Any:
    brand = caller().brand
    typed = request.args.get("customer", "")
    db = read_side().caught_up()
    if typed:
        # As typed first: a reference may start or end with a space, or be spaces alone (the
        # API takes " "); then without them.
        for wanted in dict.fromkeys(filter(None, [typed, typed.strip()])):
            if has_relationship(db, brand, wanted):
                return redirect(url_for("ui.timeline", customer=wanted))
        return render_template(
            "ui/customers.html", wanted=typed.strip() or typed, lowest={}, missing=True
        ), 404
    lowest = {
        name: relationship_model.customers(db, brand, below={name: 1.01}, limit=LOWEST).items
        for name in chart.DIMENSIONS
    }
    return render_template("ui/customers.html", wanted="", lowest=lowest, missing=False)


# --- one customer -------------------------------------------------------------------------------


def as_of() -> datetime | None:
    """The record time a compliance officer replays at; agents always see now."""
    text = request.args.get("as_of", "").strip()
    if not text or caller().role != "compliance":
        return None
    try:
        moment = datetime.fromisoformat(text)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: an offset past year 1 or 9999 in UTC
        abort(400, "The as-of time reads YYYY-MM-DDTHH:MM (UTC).")


def customer_page(template: str, customer: str, **values: Any) -> str:
    moment = values.pop("moment", None)
    return render_template(
        template,
        customer=customer,
        as_of=moment,
        # Links carry the moment whole: cut to the second, they replayed an earlier moment than
        # the page they are on (without the events of its last second). The field takes seconds.
        as_of_text=moment.replace(tzinfo=None).isoformat() if moment else "",
        as_of_field=moment.strftime("%Y-%m-%dT%H:%M:%S") if moment else "",
        as_of_shown=_shown(moment) if moment else "",
        compliance=caller().role == "compliance",
        **values,
    )


def _shown(moment: datetime) -> str:
    """The replayed moment as the heading names it: to the microsecond when it has any."""
    seconds = "%S.%f" if moment.microsecond else "%S"
    return moment.strftime(f"%Y-%m-%d %H:%M:{seconds} UTC")


@blp.get("/customers/<customer:customer>/timeline")
@page(*PAGE_ROLES)
def timeline(customer: str) -> str:
    brand, moment = caller().brand, as_of()
    cursor = request.args.get("cursor") or None
    around = request.args.get("around")
    if around and not cursor:
        cursor = _cursor_around(brand, customer, around)
    found = reads.timeline_page(
        read_side(), brand, customer, limit=PAGE_SIZE, cursor=cursor, as_of=moment
    )
    consents = reads.consents(read_side(), brand, customer, as_of=moment)
    objections = reads.objections(read_side(), brand, customer, as_of=moment)
    return customer_page(
        "ui/timeline.html",
        customer,
        moment=moment,
        page=found,
        consents=consents,
        objections=objections,
        around=around,
        first_page=cursor is None,
        newer=_newer_cursor(found) if cursor else None,
    )


def _newer_cursor(found: ListPage) -> str | None:
    """The cursor of the page of events just newer than this one (sequences run one by one)."""
    if not found.items:
        return None
    return encode_cursor(int(found.items[0]["sequence"]) + PAGE_SIZE + 1)


def _cursor_around(brand: str, customer: str, event_id: str) -> str | None:
    """A cursor whose page holds the event (a few newer events above it), or the first page."""
    if "\x00" in event_id:  # no event id holds one, and PostgreSQL's text cannot be asked about it
        return None
    sequence = read_side().db.scalar(
        "SELECT sequence FROM timeline WHERE relationship_id = ? AND brand = ? AND event_id = ?",
        [str(relationship_id(brand, customer)), brand, event_id],
    )
    return encode_cursor(int(sequence) + 5) if sequence else None


def _has_route(rule: str) -> bool:
    return any(r.rule == rule for r in current_app.url_map.iter_rules())


def api_path(customer: str, read: str) -> str:
    """The API's path to one of the customer's reads, as a client must send it (README's
    bounds): percent-encoded, `/` as `%2F`, and a reference that is `.` or `..` whole as `%2E`
    or `%2E%2E`. Written raw, `..` read `/v1/customers/../export`, which curl sends as
    `/v1/export`, and a `?` in a reference began a query."""
    segment = "%2E" * len(customer) if customer in (".", "..") else quote(customer, safe="")
    return f"/v1/customers/{segment}/{read}"


@blp.get("/customers/<customer:customer>/trust")
@page(*PAGE_ROLES)
def trust_over_time(customer: str) -> str:
    brand, moment = caller().brand, as_of()
    db = reads.known(read_side(), brand, customer, moment)
    found = chart.series(ledger(), db, read_side().trust_lines, brand, customer, moment)
    return customer_page(
        "ui/trust.html", customer, moment=moment, series=found, drawing=chart.draw(found)
    )


@blp.get("/customers/<customer:customer>/decisions")
@page(*PAGE_ROLES)
def decisions(customer: str) -> str:
    moment = as_of()
    found = _decisions_page(customer, moment)
    return customer_page("ui/decisions.html", customer, moment=moment, page=found)


def _decisions_page(customer: str, moment: datetime | None) -> ListPage:
    """A page of the customer's push.decided events, newest first, from the request's cursor."""
    return reads.timeline_page(
        read_side(),
        caller().brand,
        customer,
        limit=PAGE_SIZE,
        types=("push.decided",),
        as_of=moment,
        cursor=request.args.get("cursor") or None,
    )


@blp.get("/customers/<customer:customer>/receipts")
@page(*PAGE_ROLES)
def receipts(customer: str) -> Any:
    """The customer's consent receipts, as the API's `GET .../consents/receipts` answers them
    (the same read, the same document to download): the consent panel's proof for people, whose
    browser holds a session, not the API's bearer key."""
    document: dict[str, Any] = ReceiptsSchema().dump(
        reads.consent_receipts(read_side(), caller().brand, customer)
    )
    if request.args.get("download"):
        return _attachment(document, "consent-receipts.json")
    return customer_page(
        "ui/receipts.html",
        customer,
        receipts=document["receipts"],
        api=_has_route(RECEIPTS_ENDPOINT),
        api_path=api_path(customer, "consents/receipts"),
    )


def _attachment(document: dict[str, Any], filename: str) -> Response:
    """A page's document as a JSON file to download, as its page shows it."""
    return Response(
        json.dumps(document, indent=2, ensure_ascii=False, default=str),
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


# --- compliance ---------------------------------------------------------------------------------


@blp.get("/customers/<customer:customer>/audit")
@page(*COMPLIANCE)
def audit(customer: str) -> str:
    moment = as_of()
    found = _decisions_page(customer, moment)
    rid = relationship_id(caller().brand, customer)
    # Each row's own decision, by its sequence: by push id, a push decided twice (deferred,
    # then asked again) showed its last decision in both rows.
    audits = [ledger().audit_decision(rid, int(item["sequence"])) for item in found.items]
    return customer_page("ui/audit.html", customer, moment=moment, audits=audits, page=found)


@blp.get("/customers/<customer:customer>/export")
@page(*COMPLIANCE)
def export(customer: str) -> Any:
    brand = caller().brand
    document = _export(brand, customer)
    if request.args.get("download"):
        return _attachment(document, "customer-export.json")
    text = json.dumps(document, indent=2, ensure_ascii=False, default=str)
    api = _has_route(EXPORT_ENDPOINT)
    return customer_page(
        "ui/export.html",
        customer,
        moment=None,
        text=text,
        api=api,
        api_path=api_path(customer, "export"),
    )


def _export(brand: str, customer: str) -> dict[str, Any]:
    """Everything the ledger holds about the customer: the API's export, as the API shows it."""
    document: dict[str, Any] = ExportSchema().dump(reads.export(read_side(), brand, customer))
    return document


@blp.route("/customers/<customer:customer>/erase", methods=["GET", "POST"])
@page(*COMPLIANCE)
def erase(customer: str) -> Any:
    brand = caller().brand
    reads.known(read_side(), brand, customer, None)
    if request.method == "GET":  # an erased customer's page shows the erasure, not the form
        relationship = ledger().relationship(brand, customer)
        earlier = ErasureReceipt.of(brand, relationship, True) if relationship.erased else None
        return customer_page("ui/erase.html", customer, problem=None, receipt=earlier)
    reason = request.form.get("reason", "").strip()
    if request.form.get("confirm", "") != customer:
        problem = "The reference you typed is not this customer's: nothing was erased."
        return customer_page("ui/erase.html", customer, problem=problem, receipt=None), 422
    if not reason:
        problem = (
            "Say why (a ticket or request number, not the customer's data): nothing was erased."
        )
        return customer_page("ui/erase.html", customer, problem=problem, receipt=None), 422
    refused = ErasureRequestSchema().validate({"reason": reason}).get("reason")
    if refused:  # the API's bounds: what a reason kept for good may hold
        problem = f"That reason cannot be kept, so nothing was erased: {' '.join(refused)}"
        return customer_page("ui/erase.html", customer, problem=problem, receipt=None), 422
    receipt = ledger().erase(brand, customer, requested_by=caller().name, reason=reason)
    return customer_page("ui/erase.html", customer, problem=None, receipt=receipt)


@blp.get("/audit/pushes/<customer:push_id>")
@page(*COMPLIANCE)
def push_audit(push_id: str) -> str:
    """One push's decision audit, as the API's `GET /v1/audit/push-decisions/{push_id}`: the
    findings link each decided push here (an erased customer's too, which has no other page)."""
    audit_ = ledger().audit_push_decision(caller().brand, push_id)
    return render_template("ui/push_audit.html", push_id=push_id, audits=[audit_], as_of=None)


@blp.get("/findings")
@page(*COMPLIANCE)
def findings() -> str:
    """The brand's compliance findings, newest sent first, paged by the API's cursor."""
    cursor = request.args.get("cursor") or None
    found = reads.findings(read_side(), caller().brand, limit=PAGE_SIZE, cursor=cursor)
    return render_template(
        "ui/findings.html",
        findings=found["findings"],
        next_cursor=found["next_cursor"],
        first_page=cursor is None,
        ended=(WITHDRAWN, EXPIRED),
    )
