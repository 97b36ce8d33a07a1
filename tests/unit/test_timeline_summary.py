"""The timeline's one-line summaries: every catalogue type has its own words, on one line."""

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
    assert summarise(made.type, made.data) == (
        f"Promise p1 made: refund by Friday (due {made.data['due_at'].date().isoformat()})"
    )


@pytest.mark.parametrize(
    ("type_", "data", "line"),
    [
        ("promise.broken", {"promise_id": "p", "reason": None}, "Promise p broken"),
        ("promise.broken", {"promise_id": "p", "reason": "late"}, "Promise p broken: late"),
        (
            "consent.withdrawn",
            {"purpose": "*", "channels": None},
            "Consent withdrawn for every purpose (objection) on every channel",
        ),
        (
            "question.answered",
            {"case_id": "c", "topic": "bills", "resolved": False, "rating": 2},
            "Question on bills answered, unresolved, rated 2/5 (case c)",
        ),
        ("advice.rated", {"advice_id": "a", "helpful": False}, "Advice a rated not helpful"),
        ("push.decided", {"push_id": "x", "decision": {"outcome": "deny"}}, "Push x decided: deny"),
        (
            "promise.made",
            {"promise_id": "p", "summary": "[erased]", "due_at": "2026-01-02T00:00:00+00:00"},
            "Promise p made: [erased] (due 2026-01-02)",
        ),
    ],
)
def test_summaries_read_naturally(type_: str, data: dict[str, object], line: str) -> None:
    assert summarise(type_, data) == line


def test_missing_data_never_raises() -> None:
    for type_ in CATALOGUE:
        assert summarise(type_, {})
    assert summarise("something.new", {}) == "something.new"
