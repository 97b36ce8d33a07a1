"""The read models' personal values, sealed with their customer's own key.

The timeline's actor, personal data fields and summary, the relationships row's customer
reference and the customer in a decision's request are stored sealed (CustomerKey.seal_value:
AES-SIV, deterministic, so a rebuild writes what the live projection wrote), each bound to its
relationship, row and column. An erasure masks them as before ("[erased]" in clear); from then
on the old bytes left in dead row versions, the WAL, replicas and backups are ciphertext under a
destroyed key. Everything else (types, ids, times, purposes, channels, categories, statuses)
stays in clear: the read models' queries, indexes and trust replays read it, and it identifies
no one without the customer reference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from domain.relationship import CATALOGUE, ERASED
from domain.shredding import SEALED_VALUE, CustomerKey

Change = Callable[[str, Any], Any]
"""(the field's name as in PERSONAL, e.g. "request.customer"; its value) -> its new value."""


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(SEALED_VALUE)


def seal(key: CustomerKey | None, value: Any, column: str, row: str | int = "") -> Any:
    """The value as a read model stores it: sealed with the customer's key; "[erased]" without
    one (erased: as the erasure's masking writes it, and as the log reads it); None stays None."""
    if value is None:
        return None
    if key is None:
        return ERASED
    return key.seal_value(value, column, row)


def opened(
    keys: Mapping[str, CustomerKey | None] | None,
    rid: str,
    value: Any,
    column: str,
    row: str | int = "",
) -> Any:
    """A stored value as it reads: opened when sealed, "[erased]" when sealed under a key that
    is gone, as stored otherwise (None, or masked by an erasure)."""
    if not is_sealed(value):
        return value
    if keys is None:
        raise RuntimeError("this read-model connection holds no customer keys to open values with")
    key = keys.get(rid)
    return ERASED if key is None else key.open_value(value, column, row)


def quotes_personal_data(type_: str) -> bool:
    """Whether an event of this type has personal data fields (the actor aside), which its
    timeline summary may quote: only then is the summary sealed. The others' summaries are made
    of fields stored in clear anyway ("Kept promise p1"), and a read tells them apart by their
    start (`is_sealed`), which no summary has."""
    return type_ in CATALOGUE and CATALOGUE[type_].PERSONAL != ("actor",)


def personal_data(type_: str, data: Mapping[str, Any], change: Change) -> dict[str, Any]:
    """A copy of an event's data with each personal field that holds a value (the actor aside:
    it is a column of its own) replaced by `change(name, value)`; nested dicts are copied, never
    changed in place (they are the event's own)."""
    copy = dict(data)
    for name in CATALOGUE[type_].PERSONAL if type_ in CATALOGUE else ():
        if name != "actor":
            _change(copy, name.split("."), name, change)
    return copy


def _change(values: dict[str, Any], path: list[str], name: str, change: Change) -> None:
    head, rest = path[0], path[1:]
    if not rest:
        if values.get(head) is not None:
            values[head] = change(name, values[head])
    elif isinstance(values.get(head), dict):
        values[head] = inner = dict(values[head])
        _change(inner, rest, name, change)
