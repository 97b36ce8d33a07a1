"""The demo's three brands: how each one behaves, and what its staff and systems write.

Pure data. Rates are per customer and year of event time; odds are relative weights. Texts are
templates: ``{month}``, ``{weekday}``, ``{day}``, ``{item}`` and ``{amount}`` are filled in per
event by api/demo.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Words:
    """What a brand's events say: its promises, errors, offers, advice and support topics."""

    promises: tuple[str, ...]
    break_reasons: tuple[str, ...]
    release_reasons: tuple[str, ...]
    fixes: tuple[str, ...]
    """Promises made when admitting an error ("Refund of the double debit by Friday")."""
    errors: tuple[tuple[str, str], ...]
    """(summary, severity)."""
    disputes: tuple[str, ...]
    confirmers: tuple[str, ...]
    offers: tuple[str, ...]
    claims: tuple[str, ...]
    renege_reasons: tuple[str, ...]
    advice: tuple[tuple[str, str], ...]
    """(topic, summary)."""
    topics: tuple[str, ...]
    items: tuple[str, ...]
    staff: tuple[str, ...]


@dataclass(frozen=True)
class Consents:
    """What customers agree to, and what the brand's pushes use."""

    marketing: tuple[str, ...]
    """Data categories customers consent to for marketing."""
    advice: tuple[str, ...]
    """Data categories customers consent to for advice."""
    overreach: tuple[str, ...]
    """Data categories the brand personalises with although no customer consented to them."""


@dataclass(frozen=True)
class Conduct:
    """How a brand treats its customers, as rates per customer-year and odds of each outcome."""

    slug: str
    name: str
    story: str
    """One line for the README and the command's output: what this brand shows."""
    timezone: str
    jurisdiction: str
    policy: Mapping[str, Any]
    words: Words
    consents: Consents
    promises: float
    promise_outcomes: Mapping[str, float]
    """kept (on time), late, broken, released, forgotten (left open past its due time)."""
    errors: float
    error_paths: Mapping[str, float]
    """found (by the brand, admitted at once), admitted (reported, then admitted), disputed,
    ignored (reported, never answered), withdrawn (by the customer)."""
    fix_promised: float
    """Odds that an admitted error comes with a promise to put it right."""
    confirmed: float
    """Odds that a disputed report is later confirmed by an ombudsman or the like."""
    questions: float
    resolved: float
    reopened: float
    advice: float
    helpful: float
    offers: float
    offer_outcomes: Mapping[str, float]
    """honored (accepted, then honored), reneged (accepted, then reneged), declined, lapsed."""
    pushes: float
    push_kinds: Mapping[str, float]
    campaigns: int
    """Brand-wide campaigns over the two years: bursts of pushes over three days."""
    campaign_reach: float
    campaign_pushes: tuple[int, int]
    overreach: float
    """Share of offer and advice pushes personalised beyond what the customer consented to."""
    night: float
    """Share of pushes the brand tries to send late in the evening."""
    unasked: float
    """Share of pushes sent without asking the gate at all."""
    sends_denied: float
    sends_deferred: float
    retries_deferred: bool
    """Whether the brand asks again once a deferred push's retry_after has come."""
    reactions: Mapping[str, float]
    """Customers' reactions to pushes the gate allowed ("silent": no feedback)."""
    reactions_unwelcome: Mapping[str, float]
    """Reactions to pushes the brand sent against the gate's answer."""
    consent_changes: float
    objection: float
    """Odds that a customer objects to all offers and advice (consent.withdrawn of '*')."""


NORTHWIND = Conduct(
    slug="northwind-energy",
    name="Northwind Energy",
    story="keeps its promises, finds and admits its own errors early, gives good support",
    timezone="Europe/London",
    jurisdiction="GB",
    policy={
        "timezone": "Europe/London",
        "quiet_hours": {"start": "20:00", "end": "08:30"},
        "frequency_cap": 3,
        "declines_per_halving": 3,  # a brand that listens: three offers declined halve its pushes
    },
    words=Words(
        promises=(
            "Refund of the {month} overcharge by Friday",
            "Engineer visit to fit the smart meter on {weekday}",
            "Call back about the tariff change within 48 hours",
            "Send the corrected {month} bill",
            "Restore the direct debit discount from the next bill",
            "Move the account to the new address before the moving date",
            "Set up the payment plan of £{amount} a month",
            "Replace the faulty in-home display this week",
        ),
        break_reasons=(
            "No engineer available in the area that week",
            "The meter supplier delayed the delivery",
        ),
        release_reasons=(
            "The customer asked to wait until after the holidays",
            "The customer moved the appointment themselves",
            "The customer no longer needs it",
        ),
        fixes=(
            "Refund of the difference on the next bill",
            "Corrected bill within 5 working days",
            "Credit of £{amount} for the trouble by Friday",
        ),
        errors=(
            ("Estimated reading used although a meter reading was sent in {month}", "minor"),
            ("Direct debit taken twice in {month}", "major"),
            ("Old tariff applied after the price change", "major"),
            ("Smart meter readings missing for {amount} days", "minor"),
            ("Warm Home Discount not applied to the {month} bill", "major"),
            ("Account wrongly passed to debt collection", "critical"),
        ),
        disputes=("The meter reading matches the photo on file",),
        confirmers=("Energy Ombudsman",),
        offers=(
            "Fixed tariff for 12 months at 24.5p/kWh",
            "£50 credit for switching to paperless billing",
            "Free smart thermostat with the Green Saver tariff",
            "EV tariff: 7.5p/kWh from midnight to 5am",
        ),
        claims=("no exit fees", "price fixed for 12 months", "100% renewable electricity"),
        renege_reasons=("The tariff was withdrawn before the switch went through",),
        advice=(
            ("tariff", "Economy 7 would save money: most of your use is at night"),
            ("energy_saving", "Lower the boiler's flow temperature to 55°C"),
            ("heat_pump", "Your home qualifies for the heat pump grant"),
            ("solar", "A 4 kW solar array would cover about a third of your use"),
            ("payment", "£{amount} a month would clear the balance by spring"),
        ),
        topics=("billing", "meter_reading", "moving_home", "payment_plan", "outage", "tariff"),
        items=("meter", "boiler", "thermostat"),
        staff=(
            "Amira Khan",
            "Tom Becker",
            "Grace Okafor",
            "Liam Walsh",
            "Priya Nair",
            "Owen Hughes",
        ),
    ),
    consents=Consents(
        marketing=("energy_usage", "tariff_history"),
        advice=("energy_usage",),
        overreach=(),
    ),
    promises=3.5,
    promise_outcomes={"kept": 88, "late": 6, "broken": 2, "released": 4, "forgotten": 0},
    errors=1.0,
    error_paths={"found": 75, "admitted": 25, "disputed": 0, "ignored": 0, "withdrawn": 0},
    fix_promised=0.7,
    confirmed=0.0,
    questions=5.0,
    resolved=0.9,
    reopened=0.05,
    advice=1.5,
    helpful=0.8,
    offers=2.0,
    offer_outcomes={"honored": 55, "reneged": 2, "declined": 30, "lapsed": 13},
    pushes=1.5,
    push_kinds={"service": 40, "offer": 35, "advice": 25},
    campaigns=3,
    campaign_reach=0.5,
    campaign_pushes=(1, 1),
    overreach=0.0,
    night=0.03,
    unasked=0.0,
    sends_denied=0.0,
    sends_deferred=0.0,
    retries_deferred=True,
    reactions={
        "silent": 30,
        "opened": 35,
        "clicked": 15,
        "dismissed": 17,
        "unwanted": 2,
        "unsubscribed": 1,
    },
    reactions_unwelcome={"silent": 30, "dismissed": 40, "unwanted": 20, "unsubscribed": 10},
    consent_changes=0.15,
    objection=0.01,
)

BRIGHTLINE = Conduct(
    slug="brightline-telecom",
    name="Brightline Telecom",
    story="customers report its errors, it never admits them; disputes, late and broken promises",
    timezone="Europe/Dublin",
    jurisdiction="IE",
    policy={"timezone": "Europe/Dublin", "frequency_cap": 4},
    words=Words(
        promises=(
            "Credit for the broadband outage of {day} {month}",
            "Technician visit between 8:00 and 12:00 on {weekday}",
            "Remove the roaming charges from the {month} bill",
            "Port the number within 2 working days",
            "Unlock the handset within 5 days",
            "Call back with the retention offer tomorrow",
            "Replace the faulty router by courier",
        ),
        break_reasons=(
            "The credit was not approved by the billing team",
            "No technician capacity in the region",
            "The order was cancelled in the system",
        ),
        release_reasons=("The customer cancelled the visit", "The customer kept the old router"),
        fixes=("Credit of €{amount} on the next bill",),
        errors=(
            ("Charged for roaming while at home in {month}", "major"),
            ("Broadband below the contracted 100 Mbit/s for weeks", "major"),
            ("Contract renewed at a higher price without notice", "critical"),
            ("Data add-on billed twice in {month}", "minor"),
            ("Cancellation fee charged after a cooling-off cancellation", "major"),
        ),
        disputes=(
            "Usage records show roaming connections",
            "Line tests at the exchange are within contract",
            "The price change was in the terms and conditions",
            "The add-on was requested from the app",
        ),
        confirmers=("Communications Ombudsman", "ComReg", "the customer's bank statement"),
        offers=(
            "Unlimited data for €5 more a month",
            "Fibre 500 at the price of Fibre 100 for 6 months",
            "Free handset upgrade with a 24-month renewal",
            "Half price for 3 months on the TV add-on",
        ),
        claims=("no price rise during the contract", "fastest broadband in your area"),
        renege_reasons=(
            "The promotion ended before activation",
            "Not available at your address after all",
            "Only for new customers",
        ),
        advice=(
            ("plan", "The 30 GB plan covers your use for €8 less a month"),
            ("coverage", "Use Wi-Fi calling indoors for a better signal"),
            ("router", "Move the router off the floor and away from the TV"),
            ("roaming", "Add the EU roaming pass before travelling"),
        ),
        topics=("billing", "coverage", "broadband_speed", "roaming", "contract", "handset"),
        items=("router", "handset", "SIM"),
        staff=(
            "Sean Byrne",
            "Aoife Kelly",
            "Ciara Doyle",
            "Mark Nolan",
            "Niamh Walsh",
            "Darragh Ryan",
        ),
    ),
    consents=Consents(
        marketing=("usage_data", "plan_history"),
        advice=("usage_data",),
        overreach=("location",),
    ),
    promises=3.0,
    promise_outcomes={"kept": 45, "late": 25, "broken": 18, "released": 4, "forgotten": 8},
    errors=1.5,
    error_paths={"found": 0, "admitted": 0, "disputed": 45, "ignored": 30, "withdrawn": 25},
    fix_promised=0.0,
    confirmed=0.5,
    questions=5.0,
    resolved=0.6,
    reopened=0.2,
    advice=1.0,
    helpful=0.45,
    offers=2.0,
    offer_outcomes={"honored": 35, "reneged": 15, "declined": 35, "lapsed": 15},
    pushes=1.5,
    push_kinds={"service": 30, "offer": 50, "advice": 20},
    campaigns=3,
    campaign_reach=0.6,
    campaign_pushes=(1, 2),
    overreach=0.05,
    night=0.05,
    unasked=0.0,
    sends_denied=0.0,
    sends_deferred=0.0,
    retries_deferred=True,
    reactions={
        "silent": 30,
        "opened": 25,
        "clicked": 8,
        "dismissed": 27,
        "unwanted": 7,
        "unsubscribed": 3,
    },
    reactions_unwelcome={"silent": 25, "dismissed": 35, "unwanted": 25, "unsubscribed": 15},
    consent_changes=0.3,
    objection=0.03,
)

PULSE = Conduct(
    slug="pulse-retail",
    name="Pulse Retail",
    story="over-pushes, and personalises with browsing history and location nobody consented to",
    timezone="Europe/Berlin",
    jurisdiction="DE",
    policy={
        "timezone": "Europe/Berlin",
        "quiet_hours": {"start": "22:00", "end": "07:00"},
        "frequency_cap": 5,
        "thresholds": {"offer": {"consistency": 0.4, "honesty": 0.4}},
    },
    words=Words(
        promises=(
            "Replacement for the damaged parcel within 3 days",
            "Refund of the returned {item} within 5 days",
            "Price match credit for the {item}",
            "Redeliver the missed parcel on {weekday}",
            "Loyalty points for the {month} order by the weekend",
        ),
        break_reasons=("The refund was held by the payment provider", "Out of stock"),
        release_reasons=("The customer kept the item after all", "The customer chose store credit"),
        fixes=("Refund of the difference within 5 days", "€{amount} voucher for the trouble"),
        errors=(
            ("Wrong size of {item} delivered", "minor"),
            ("Loyalty points not credited for the {month} order", "minor"),
            ("Charged full price for a discounted {item}", "major"),
            ("Parcel marked delivered but never arrived", "major"),
        ),
        disputes=("The courier's photo shows the parcel at the door",),
        confirmers=("the courier's investigation",),
        offers=(
            "20% off trainers this weekend",
            "Free delivery on orders over €30 until Sunday",
            "Double loyalty points on home goods",
            "€10 off your next order over €50",
            "Early access to the summer sale",
        ),
        claims=("lowest price guaranteed", "free returns"),
        renege_reasons=("The code expired before the order shipped", "The item sold out"),
        advice=(
            ("sizing", "These trainers run small: order half a size up"),
            ("care", "Wash the down jacket at 30°C with dryer balls"),
            ("returns", "Print-free returns at any parcel shop"),
        ),
        topics=("delivery", "returns", "sizing", "loyalty", "payment"),
        items=("trainers", "rain jacket", "desk lamp", "coffee grinder", "backpack"),
        staff=("Lena Fischer", "Jonas Weber", "Mia Schulz", "Felix Wagner", "Sara Becker"),
    ),
    consents=Consents(
        marketing=("purchase_history",),
        advice=("purchase_history",),
        overreach=("browsing_history", "location"),
    ),
    promises=1.5,
    promise_outcomes={"kept": 75, "late": 15, "broken": 5, "released": 5, "forgotten": 0},
    errors=0.8,
    error_paths={"found": 20, "admitted": 50, "disputed": 5, "ignored": 5, "withdrawn": 20},
    fix_promised=0.5,
    confirmed=0.3,
    questions=3.0,
    resolved=0.8,
    reopened=0.08,
    advice=0.8,
    helpful=0.6,
    offers=2.0,
    offer_outcomes={"honored": 40, "reneged": 5, "declined": 35, "lapsed": 20},
    pushes=2.0,
    push_kinds={"service": 15, "offer": 70, "advice": 15},
    campaigns=8,
    campaign_reach=0.6,
    campaign_pushes=(2, 5),
    overreach=0.45,
    night=0.2,
    unasked=0.03,
    sends_denied=0.35,
    sends_deferred=0.5,
    retries_deferred=False,
    reactions={
        "silent": 25,
        "opened": 25,
        "clicked": 10,
        "dismissed": 25,
        "unwanted": 10,
        "unsubscribed": 5,
    },
    reactions_unwelcome={
        "silent": 15,
        "opened": 10,
        "dismissed": 30,
        "unwanted": 30,
        "unsubscribed": 15,
    },
    consent_changes=0.4,
    objection=0.04,
)

BRANDS: tuple[Conduct, ...] = (NORTHWIND, BRIGHTLINE, PULSE)
