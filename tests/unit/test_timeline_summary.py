"""The timeline's one-line summaries (domain/timeline.py): every type has its words, on one line."""

from __future__ import annotations

import json

import pytest

from domain.relationship import CATALOGUE
from domain.timeline import SUMMARIES, summarise
from tests.factories import story


def test_every_catalogue_type_has_a_summary() -> None:
    assert set(SUMMARIES) == set(CATALOGUE)


@pytest.mark.parametrize("event", story(), ids=lambda e: e.type)
def test_a_summary_is_one_line_naming_what_happened(event: object) -> None:
    line = summarise(event.type, event.data)  # type: ignore[attr-defined]
    assert "\n" not in line
    assert line and line != event.type  # type: ignore[attr-defined]


def test_the_json_form_of_the_data_reads_the_same_as_the_python_one() -> None:
    made = story()[0]
    as_json = json.loads(json.dumps(made.data, default=lambda d: d.isoformat()))
    assert summarise(made.type, as_json) == summarise(made.type, made.data)
    assert made.data["due_at"].date().isoformat() in summarise(made.type, made.data)


def test_missing_data_never_raises() -> None:
    for type_ in CATALOGUE:
        assert summarise(type_, {})
    assert summarise("something.new", {}) == "something.new"


@pytest.mark.parametrize(
    ("request_", "line"),
    [
        ({"kind": "service", "purpose": None}, "Push p1 allow (service)"),
        ({"kind": "offer", "purpose": "marketing"}, "Push p1 allow (offer, marketing)"),
    ],
)
def test_a_decision_names_its_kind_and_its_purpose_if_it_has_one(
    request_: dict[str, object], line: str
) -> None:
    """A service push has no purpose: the timeline read "Push p1 allow (service, None)"."""
    data = {"push_id": "p1", "decision": {"outcome": "allow"}, "request": request_}
    assert summarise("push.decided", data) == line
