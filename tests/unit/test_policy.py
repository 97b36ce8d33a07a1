"""The brand's push policy: defaults, versions, validation, the policy at a version or time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.demo import OTHER_TIMEZONES
from api.demo_brands import BRANDS
from domain.application import Ledger
from domain.brand import DEFAULT_POLICY, BrandPolicy, Policy, is_timezone, policy_id
from domain.errors import InvalidPolicy, PolicyNotFound
from domain.storage import Store
from tests.random_refs import random_brand


@pytest.fixture
def memory_ledger() -> Iterator[Ledger]:
    ledger = Ledger(Store.from_url("memory://"))
    yield ledger
    ledger.close()


def test_a_brand_that_never_set_a_policy_has_the_defaults_as_version_0(
    memory_ledger: Ledger,
) -> None:
    policy = memory_ledger.policy("brand-a")
    assert (policy.version, policy.set_at) == (0, None)
    assert policy.settings() == DEFAULT_POLICY
    assert memory_ledger.policy("brand-a", version=0) == policy


def test_the_defaults_are_pinned_since_version_0_decisions_are_audited_against_them() -> None:
    assert DEFAULT_POLICY["thresholds"] == {
        "offer": {"consistency": 0.5, "honesty": 0.5},
        "advice": {"expertise": 0.5},
    }
    assert DEFAULT_POLICY["personalisation_depth"] == {
        "per_category": 0.1,
        "sensitive_weight": 3.0,
        "cap": 0.8,
    }
    assert DEFAULT_POLICY["frequency_cap"] == 4
    assert DEFAULT_POLICY["quiet_hours"] == {"start": "21:00", "end": "08:00"}
    assert DEFAULT_POLICY["timezone"] == "UTC"
    assert DEFAULT_POLICY["trust_half_life_days"] == 180.0
    assert DEFAULT_POLICY["declines_per_halving"] is None  # declines not counted
    assert "health" in DEFAULT_POLICY["sensitive_categories"]
    assert len(DEFAULT_POLICY["sensitive_categories"]) == 12


def test_each_change_is_a_new_version_and_older_versions_read_back_unchanged(
    memory_ledger: Ledger,
) -> None:
    first = memory_ledger.set_policy("brand-a", {"frequency_cap": 2})
    second = memory_ledger.set_policy("brand-a", {"thresholds": {"offer": {"honesty": 0.7}}})
    third = memory_ledger.set_policy("brand-a", {"frequency_cap": 9, "timezone": "Europe/Paris"})
    assert [first.version, second.version, third.version] == [1, 2, 3]
    assert memory_ledger.policy("brand-a") == third
    at_one = memory_ledger.policy("brand-a", version=1)
    assert at_one == first
    assert (at_one.frequency_cap, at_one.thresholds["offer"]["honesty"]) == (2, 0.5)
    at_two = memory_ledger.policy("brand-a", version=2)
    assert (at_two.frequency_cap, at_two.thresholds["offer"]) == (
        2,
        {"consistency": 0.5, "honesty": 0.7},
    )
    assert (third.frequency_cap, third.timezone, third.thresholds["offer"]["honesty"]) == (
        9,
        "Europe/Paris",
        0.7,
    )


def test_the_policy_in_force_at_a_record_time(memory_ledger: Ledger) -> None:
    first = memory_ledger.set_policy("brand-a", {"frequency_cap": 2})
    second = memory_ledger.set_policy("brand-a", {"frequency_cap": 3})
    assert first.set_at is not None and second.set_at is not None
    assert memory_ledger.policy("brand-a", as_of=first.set_at).version == 1
    assert memory_ledger.policy("brand-a", as_of=second.set_at).version == 2
    before = memory_ledger.policy("brand-a", as_of=first.set_at.replace(year=2000))
    assert (before.version, before.frequency_cap) == (0, 4)


def test_a_change_that_changes_nothing_makes_no_version(memory_ledger: Ledger) -> None:
    memory_ledger.set_policy("brand-a", {"frequency_cap": 2})
    again = memory_ledger.set_policy("brand-a", {"frequency_cap": 2, "timezone": "UTC"})
    assert again.version == 1
    assert len(list(memory_ledger.events.get(policy_id("brand-a")))) == 1


@pytest.mark.parametrize(
    "changes",
    [{}, {"frequency_cap": DEFAULT_POLICY["frequency_cap"]}, {"thresholds": {"offer": {}}}],
)
def test_a_first_change_that_changes_nothing_keeps_version_0(
    memory_ledger: Ledger, changes: dict[str, object]
) -> None:
    assert memory_ledger.set_policy("brand-a", changes).version == 0  # was 1, a copy of 0
    assert list(memory_ledger.events.get(policy_id("brand-a"))) == []
    assert memory_ledger.set_policy("brand-a", {"frequency_cap": 2}).version == 1


def test_policies_are_kept_per_brand(memory_ledger: Ledger) -> None:
    memory_ledger.set_policy("brand-a", {"frequency_cap": 2})
    assert memory_ledger.policy("brand-b").frequency_cap == DEFAULT_POLICY["frequency_cap"]
    assert policy_id("brand-a") != policy_id("brand-b")
    assert policy_id("brand-a") == BrandPolicy.adopt("brand-a", {}).id


@pytest.mark.parametrize("version", [-1, 2, 7])
def test_a_version_never_made_is_not_found(memory_ledger: Ledger, version: int) -> None:
    memory_ledger.set_policy("brand-a", {"frequency_cap": 2})
    with pytest.raises(PolicyNotFound):
        memory_ledger.policy("brand-a", version=version)


def test_a_brand_without_a_policy_has_no_version_1(memory_ledger: Ledger) -> None:
    with pytest.raises(PolicyNotFound):
        memory_ledger.policy("brand-a", version=1)


def test_topics_are_explicit_and_stable() -> None:
    assert BrandPolicy.TOPIC == "trustledger:policy"
    assert BrandPolicy.Adopted.TOPIC == "trustledger:policy.adopted"
    assert BrandPolicy.Changed.TOPIC == "trustledger:policy.changed"


INVALID: list[Any] = [
    pytest.param({"colour": "red"}, "colour", id="unknown-field"),
    pytest.param(
        {"thresholds": {"service": {"honesty": 0.5}}}, "thresholds.service", id="threshold-kind"
    ),
    pytest.param(
        {"thresholds": {"offer": {"expertise": 0.5}}},
        "thresholds.offer.expertise",
        id="threshold-dimension",
    ),
    pytest.param(
        {"thresholds": {"offer": {"honesty": 1.5}}},
        "thresholds.offer.honesty",
        id="threshold-above-1",
    ),
    pytest.param(
        {"thresholds": {"offer": {"honesty": -0.1}}},
        "thresholds.offer.honesty",
        id="threshold-below-0",
    ),
    pytest.param(
        {"thresholds": {"offer": {"honesty": "high"}}},
        "thresholds.offer.honesty",
        id="threshold-text",
    ),
    pytest.param(
        {"thresholds": {"offer": {"honesty": True}}},
        "thresholds.offer.honesty",
        id="threshold-bool",
    ),
    pytest.param({"thresholds": 0.5}, "thresholds", id="thresholds-not-an-object"),
    pytest.param(
        {"personalisation_depth": {"cap": 2}}, "personalisation_depth.cap", id="depth-cap"
    ),
    pytest.param(
        {"personalisation_depth": {"sensitive_weight": 0.5}},
        "personalisation_depth.sensitive_weight",
        id="sensitive-lighter-than-ordinary",
    ),
    pytest.param({"frequency_cap": 2.5}, "frequency_cap", id="cap-fraction"),
    pytest.param({"frequency_cap": -1}, "frequency_cap", id="cap-negative"),
    pytest.param({"frequency_cap": 100_000}, "frequency_cap", id="cap-huge"),
    pytest.param({"quiet_hours": {"start": "25:00"}}, "quiet_hours.start", id="quiet-hour-25"),
    pytest.param({"quiet_hours": {"end": "8:00"}}, "quiet_hours.end", id="quiet-hour-unpadded"),
    pytest.param({"quiet_hours": {"end": None}}, "quiet_hours.end", id="quiet-hour-null"),
    pytest.param({"timezone": "Mars/Olympus_Mons"}, "timezone", id="timezone-unknown"),
    pytest.param({"timezone": ""}, "timezone", id="timezone-empty"),
    pytest.param({"timezone": "../../etc/passwd"}, "timezone", id="timezone-path"),
    pytest.param({"timezone": "localtime"}, "timezone", id="timezone-host-localtime"),
    pytest.param({"timezone": "posixrules"}, "timezone", id="timezone-host-posixrules"),
    pytest.param({"timezone": "posix/Europe/Paris"}, "timezone", id="timezone-host-posix-tree"),
    pytest.param({"timezone": "right/UTC"}, "timezone", id="timezone-host-leap-seconds"),
    pytest.param(
        {"sensitive_categories": "health"}, "sensitive_categories", id="categories-not-a-list"
    ),
    pytest.param(
        {"sensitive_categories": ["health", "health"]},
        "sensitive_categories",
        id="categories-repeated",
    ),
    pytest.param(
        {"sensitive_categories": [""]}, "sensitive_categories", id="categories-empty-name"
    ),
    pytest.param({"trust_half_life_days": 0}, "trust_half_life_days", id="half-life-zero"),
    pytest.param({"declines_per_halving": 0}, "declines_per_halving", id="declines-zero"),
    pytest.param({"declines_per_halving": 101}, "declines_per_halving", id="declines-over-100"),
    pytest.param({"declines_per_halving": 2.5}, "declines_per_halving", id="declines-fraction"),
    pytest.param({"declines_per_halving": True}, "declines_per_halving", id="declines-bool"),
    pytest.param({"declines_per_halving": "3"}, "declines_per_halving", id="declines-text"),
    pytest.param([("frequency_cap", 2)], "", id="changes-not-an-object"),
]


def test_the_zones_of_the_defaults_and_the_demo_are_time_zones() -> None:
    used = {DEFAULT_POLICY["timezone"], *OTHER_TIMEZONES}
    used |= {zone for brand in BRANDS for zone in (brand.timezone, brand.policy["timezone"])}
    assert sorted(zone for zone in used if not is_timezone(zone)) == []
    assert len(used) >= 6


@pytest.mark.parametrize(("changes", "field"), INVALID)
def test_an_invalid_change_is_rejected_names_the_field_and_makes_no_version(
    memory_ledger: Ledger, changes: Any, field: str
) -> None:
    memory_ledger.set_policy("brand-a", {"frequency_cap": 2})
    with pytest.raises(InvalidPolicy) as rejected:
        memory_ledger.set_policy("brand-a", changes)
    assert rejected.value.field == field
    assert memory_ledger.policy("brand-a").version == 1


def test_an_invalid_first_change_creates_nothing(memory_ledger: Ledger) -> None:
    with pytest.raises(InvalidPolicy):
        memory_ledger.set_policy("brand-a", {"frequency_cap": -1})
    assert list(memory_ledger.events.get(policy_id("brand-a"))) == []


def test_the_policy_reads_as_simple_types() -> None:
    policy = Policy.default("brand-a")
    assert policy.as_dict() == {"version": 0, "set_at": None, **DEFAULT_POLICY}


CHANGES = st.one_of(
    st.fixed_dictionaries({"frequency_cap": st.integers(0, 50)}),
    st.fixed_dictionaries(
        {
            "thresholds": st.fixed_dictionaries(
                {"advice": st.fixed_dictionaries({"expertise": st.floats(0, 1)})}
            )
        }
    ),
    st.fixed_dictionaries({"timezone": st.sampled_from(["UTC", "Europe/Paris", "Asia/Tokyo"])}),
    st.fixed_dictionaries(
        {"sensitive_categories": st.lists(st.sampled_from(["a", "b", "c"]), unique=True)}
    ),
)


@settings(max_examples=30, deadline=None)
@given(st.lists(CHANGES, min_size=1, max_size=6))
def test_every_version_reads_back_as_it_was_set(changes: list[dict[str, Any]]) -> None:
    ledger = Ledger(Store.from_url("memory://"))
    brand = random_brand()
    try:
        made = [ledger.set_policy(brand, change) for change in changes]
        for policy in made:
            assert ledger.policy(brand, version=policy.version) == policy
        assert ledger.policy(brand) == made[-1]
    finally:
        ledger.close()


def test_a_version_stored_before_the_controller_reads_and_changes_as_a_whole_policy() -> None:
    """Versions stored before `controller` existed lack it: they read it as version 0 has it, a
    change that leaves everything as it was makes no version, and one of the controller does."""
    before = {name: value for name, value in DEFAULT_POLICY.items() if name != "controller"}
    aggregate = BrandPolicy(brand="b", changes={"frequency_cap": 4}, settings=before)
    assert aggregate.policy().controller == DEFAULT_POLICY["controller"]
    aggregate.collect_events()
    aggregate.change({"frequency_cap": 4})
    assert aggregate.collect_events() == []
    aggregate.change({"controller": {"email": "dpo@brand.example"}})
    assert aggregate.policy().controller["email"] == "dpo@brand.example"
    assert aggregate.policy().frequency_cap == 4 and aggregate.version == 2


def test_declines_per_halving_is_null_in_versions_stored_before_it_and_can_be_set_and_cleared(
    memory_ledger: Ledger,
) -> None:
    """Versions stored before `declines_per_halving` existed lack it: they read it as null (no
    decline counted), as version 0 does, so their decisions still reproduce."""
    assert memory_ledger.policy("brand-a").declines_per_halving is None
    before = {
        name: value for name, value in DEFAULT_POLICY.items() if name != "declines_per_halving"
    }
    aggregate = BrandPolicy(brand="b", changes={"frequency_cap": 4}, settings=before)
    assert aggregate.policy().declines_per_halving is None
    assert aggregate.policy().settings()["declines_per_halving"] is None
    counted = memory_ledger.set_policy("brand-a", {"declines_per_halving": 3})
    assert (counted.version, counted.declines_per_halving) == (1, 3)
    assert counted.as_dict()["declines_per_halving"] == 3
    for bound in (1, 100):
        assert memory_ledger.set_policy("brand-a", {"declines_per_halving": bound}).version
    cleared = memory_ledger.set_policy("brand-a", {"declines_per_halving": None})
    assert (cleared.version, cleared.declines_per_halving) == (4, None)
    assert memory_ledger.policy("brand-a", version=1).declines_per_halving == 3
