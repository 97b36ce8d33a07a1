"""The brand's push policy: an event-sourced aggregate, one version per change.

A brand that never set a policy has :data:`DEFAULT_POLICY` as version 0. Its first change creates
the aggregate (version 1) and every later change is a new version, each event carrying the whole
policy it makes, so any version reads back exactly as it was in force, whatever the code's defaults
become. The gate records the version it decided under; an audit reads that version back.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache, lru_cache
from importlib import resources
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.errors import InvalidPolicy
from domain.relationship import NAMESPACE

DIMENSIONS = ("consistency", "honesty", "expertise")
TRUST_DIMENSIONS: dict[str, tuple[str, ...]] = {
    "offer": ("consistency", "honesty"),
    "advice": ("expertise",),
}
"""The dimensions DESIGN.md's trust rule checks, per push kind; service pushes check none."""

DEFAULT_POLICY: dict[str, Any] = {
    "thresholds": {
        "offer": {"consistency": 0.5, "honesty": 0.5},
        "advice": {"expertise": 0.5},
    },
    "personalisation_depth": {"per_category": 0.1, "sensitive_weight": 3.0, "cap": 0.8},
    "frequency_cap": 4,
    "quiet_hours": {"start": "21:00", "end": "08:00"},
    "timezone": "UTC",
    "sensitive_categories": [
        "health",
        "genetic",
        "biometric",
        "ethnic_origin",
        "political_opinions",
        "religious_beliefs",
        "trade_union_membership",
        "sex_life",
        "sexual_orientation",
        "precise_location",
        "financial_situation",
        "children",
    ],
    "trust_half_life_days": 180.0,
    "declines_per_halving": None,
    "controller": {
        "name": None,
        "contact": None,
        "address": None,
        "email": None,
        "phone": None,
        "url": None,
        "privacy_policy_url": None,
    },
}
"""Version 0 of every brand's policy. Never change what the gate reads in place: decisions recorded
under version 0 are audited against it. (The first eight sensitive categories are GDPR Art. 9's
special categories.) A field added later (`declines_per_halving`, `controller`) reads as here in
versions stored before it, so it must read as "off": a decision recorded under such a version still
reproduces.
"""
CONTROLLER_LIMITS = {
    "name": 200,
    "contact": 200,
    "address": 500,
    "email": 254,
    "phone": 64,
    "url": 2000,
    "privacy_policy_url": 2000,
}
"""The brand as the customers' data controller, for consent receipts (Kantara v1.1's
piiControllers and policyUrl): each field's longest text."""
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
PHONE = re.compile(r"\+?[0-9][0-9 ().-]*")
WEB_ADDRESS = re.compile(r"https?://[^\s/?#]+[^\s]*")

HH_MM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
MAX_FREQUENCY_CAP = 1000
MAX_HALF_LIFE_DAYS = 3650.0
MAX_DECLINES_PER_HALVING = 100
MAX_CATEGORIES = 200


@lru_cache(maxsize=4096)
def policy_id(brand: str) -> UUID:
    """The stable id of a brand's policy (kept for the brands seen lately: every decision asks)."""
    return uuid5(NAMESPACE, json.dumps(["policy", brand]))


def policy_version_at(history: Iterable[tuple[datetime, int]], at: datetime) -> int:
    """The version in force at record time `at`, given when each was recorded (oldest first):
    the last recorded by then, else 0, the default."""
    return max((version for set_at, version in history if set_at <= at), default=0)


@dataclass(frozen=True)
class Policy:
    """One version of a brand's push policy, as the gate reads it."""

    brand: str
    version: int
    thresholds: dict[str, dict[str, float]]
    personalisation_depth: dict[str, float]
    frequency_cap: int
    quiet_hours: dict[str, str]
    timezone: str
    sensitive_categories: tuple[str, ...]
    trust_half_life_days: float
    set_at: datetime | None = None
    """The record time of this version; None for the default, version 0."""
    controller: dict[str, str | None] = field(
        default_factory=lambda: dict(DEFAULT_POLICY["controller"])
    )
    """Who the brand is as data controller, for consent receipts; not read by the gate."""
    declines_per_halving: int | None = None
    """Every this many `offer.declined` in 30 days halve the frequency allowance; None: not counted."""

    @classmethod
    def from_settings(
        cls, brand: str, version: int, settings: Mapping[str, Any], set_at: datetime | None = None
    ) -> Policy:
        s = with_later_fields(settings)
        return cls(
            brand=brand,
            version=version,
            thresholds=s["thresholds"],
            personalisation_depth=s["personalisation_depth"],
            frequency_cap=s["frequency_cap"],
            quiet_hours=s["quiet_hours"],
            timezone=s["timezone"],
            sensitive_categories=tuple(s["sensitive_categories"]),
            trust_half_life_days=s["trust_half_life_days"],
            set_at=set_at,
            controller=s["controller"],
            declines_per_halving=s["declines_per_halving"],
        )

    @classmethod
    def default(cls, brand: str) -> Policy:
        return cls.from_settings(brand, 0, DEFAULT_POLICY)

    def settings(self) -> dict[str, Any]:
        """The policy's fields in simple types, as a brand reads and writes them."""
        return {
            "thresholds": copy.deepcopy(self.thresholds),
            "personalisation_depth": dict(self.personalisation_depth),
            "frequency_cap": self.frequency_cap,
            "quiet_hours": dict(self.quiet_hours),
            "timezone": self.timezone,
            "sensitive_categories": list(self.sensitive_categories),
            "trust_half_life_days": self.trust_half_life_days,
            "declines_per_halving": self.declines_per_halving,
            "controller": dict(self.controller),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "set_at": self.set_at.isoformat() if self.set_at else None,
            **self.settings(),
        }


class BrandPolicy(Aggregate, created_event_name="Adopted"):
    """A brand's push policy over time: the aggregate's version is the policy's version."""

    TOPIC = "trustledger:policy"

    class Event(Aggregate.Event):
        TOPIC = "trustledger:policy.event"

    class Adopted(Aggregate.Created):
        """The brand's first change to the defaults: version 1."""

        TOPIC = "trustledger:policy.adopted"
        brand: str
        changes: dict[str, Any]
        settings: dict[str, Any]

    class Changed(Event):
        """A later change: `changes` as the brand sent them, `settings` the whole policy after."""

        TOPIC = "trustledger:policy.changed"
        changes: dict[str, Any]
        settings: dict[str, Any]

        def apply(self, aggregate: Aggregate) -> None:
            aggregate.settings = copy.deepcopy(self.settings)  # type: ignore[attr-defined]

    @staticmethod
    def create_id(brand: str) -> UUID:
        return policy_id(brand)

    def __init__(self, brand: str, changes: dict[str, Any], settings: dict[str, Any]) -> None:
        self.brand = brand
        self.settings = copy.deepcopy(settings)

    @classmethod
    def adopt(cls, brand: str, changes: Mapping[str, Any]) -> BrandPolicy:
        """The aggregate for a brand's first change, validated against the defaults."""
        settings = merged_policy(DEFAULT_POLICY, changes)
        return cls(brand=brand, changes=copy.deepcopy(dict(changes)), settings=settings)

    def change(self, changes: Mapping[str, Any]) -> None:
        """Records a new version, unless the changes leave the policy as it is."""
        settings = merged_policy(self.settings, changes)
        if settings != with_later_fields(self.settings):
            changed = copy.deepcopy(dict(changes))
            self.trigger_event(self.Changed, changes=changed, settings=settings)

    def policy(self) -> Policy:
        return Policy.from_settings(self.brand, self.version, self.settings, self.modified_on)


# --- validation -------------------------------------------------------------------------------


def merged_policy(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """`current` with `changes` merged in (objects merge, lists and values replace), checked."""
    if not isinstance(changes, Mapping):
        raise InvalidPolicy("the policy changes must be an object", field="")
    settings = _merge(with_later_fields(current), changes, "")
    validate_policy(settings)
    return settings


def with_later_fields(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of stored settings with the fields added since they were stored, as version 0 has
    them: every version reads, and changes, as a whole policy."""
    later = {name: value for name, value in DEFAULT_POLICY.items() if name not in settings}
    return copy.deepcopy({**dict(settings), **later})


def _merge(into: dict[str, Any], changes: Mapping[str, Any], path: str) -> dict[str, Any]:
    for key, value in changes.items():
        where = f"{path}{key}"
        if key not in into:
            raise InvalidPolicy(f"unknown policy field {where!r}", field=where)
        if isinstance(into[key], dict):
            if not isinstance(value, Mapping):
                raise InvalidPolicy(f"{where} must be an object", field=where)
            into[key] = _merge(into[key], value, f"{where}.")
        else:
            into[key] = copy.deepcopy(value)
    return into


def validate_policy(settings: Mapping[str, Any]) -> None:
    """Raises InvalidPolicy naming the first field that is out of range or of the wrong type."""
    for kind, dimensions in settings["thresholds"].items():
        for dimension, value in dimensions.items():
            _require_fraction(value, f"thresholds.{kind}.{dimension}")
    depth = settings["personalisation_depth"]
    _require_fraction(depth["per_category"], "personalisation_depth.per_category")
    _require_fraction(depth["cap"], "personalisation_depth.cap")
    _require_number(depth["sensitive_weight"], "personalisation_depth.sensitive_weight", 1.0, 100.0)
    _require_count(settings["frequency_cap"], "frequency_cap", 0, MAX_FREQUENCY_CAP)
    for end in ("start", "end"):
        _require_clock_time(settings["quiet_hours"][end], f"quiet_hours.{end}")
    _require_timezone(settings["timezone"], "timezone")
    _require_categories(settings["sensitive_categories"], "sensitive_categories")
    half_life = settings["trust_half_life_days"]
    _require_number(half_life, "trust_half_life_days", 1.0, MAX_HALF_LIFE_DAYS)
    _require_declines_per_halving(settings["declines_per_halving"])
    _require_controller(settings["controller"])


def _require_controller(controller: Mapping[str, Any]) -> None:
    """Each field null, or a text a receipt can carry: an address that looks like one."""
    shapes = {"email": EMAIL, "phone": PHONE, "url": WEB_ADDRESS, "privacy_policy_url": WEB_ADDRESS}
    for name, longest in CONTROLLER_LIMITS.items():
        value, where = controller[name], f"controller.{name}"
        if value is None:
            continue
        shape = shapes.get(name)
        if (
            not isinstance(value, str)
            or not 0 < len(value) <= longest
            or not value.isprintable()
            or not value.strip()  # blank: a receipt would name no one (null names the slug)
            or (shape is not None and not shape.fullmatch(value))
        ):
            raise InvalidPolicy(
                f"{where} must be null or a valid {name.replace('_', ' ')}", field=where
            )


def _require_declines_per_halving(value: object) -> None:
    """Null (declines are not counted), or how many declines halve the allowance."""
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 0 < value <= MAX_DECLINES_PER_HALVING
    ):
        raise InvalidPolicy(
            f"declines_per_halving must be null or a whole number from 1 to"
            f" {MAX_DECLINES_PER_HALVING}",
            field="declines_per_halving",
        )


def _require_number(value: object, field: str, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidPolicy(f"{field} must be a number from {low:g} to {high:g}", field=field)


def _require_fraction(value: object, field: str) -> None:
    _require_number(value, field, 0.0, 1.0)


def _require_count(value: object, field: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidPolicy(f"{field} must be a whole number from {low} to {high}", field=field)


def _require_clock_time(value: object, field: str) -> None:
    if not isinstance(value, str) or not HH_MM.match(value):
        raise InvalidPolicy(f"{field} must be a time of day as HH:MM", field=field)


def _require_timezone(value: object, field: str) -> None:
    if not is_timezone(value):
        raise InvalidPolicy(f"{field} must be an IANA time zone such as Europe/Paris", field=field)


def _require_categories(value: object, field: str) -> None:
    if (
        not isinstance(value, list)
        or len(value) > MAX_CATEGORIES
        or not all(isinstance(c, str) and 0 < len(c) <= 128 for c in value)
    ):
        raise InvalidPolicy(f"{field} must be a list of data category names", field=field)
    if len(set(value)) != len(value):
        raise InvalidPolicy(f"{field} names a category twice", field=field)


def is_timezone(value: object) -> bool:
    """Whether `value` names a time zone of the IANA database, like Europe/Paris or UTC."""
    return isinstance(value, str) and value in iana_zones()


@cache
def iana_zones() -> frozenset[str]:
    """The IANA database's zone names, as the tzdata package (a dependency) lists them.

    Not whatever `ZoneInfo` can open: that includes files of the host's /usr/share/zoneinfo that
    are no zone ("localtime", "posixrules", the posix/ and right/ trees), and zoneinfo's own
    `available_timezones()` lists "localtime" where the host has it. Quiet hours in those would
    depend on the server's configuration, and a server without the system files has none of them.
    """
    listed = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8")
    return frozenset(listed.split())
