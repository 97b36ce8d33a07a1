"""Threads of one server process writing and reading random histories of the same customers at
once (the in-process server is threaded), on both stores: no 5xx, the read models equal a
rebuild from the log, and every decision audits as reproduced. It found prepared customer keys
shared between threads (domain/shredding.py's `sealing`), and on SQLite a read's catch-up waiting
on the event store inside its write transaction (projections/runner.py's `_brands_before`)."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime
from typing import Any

from flask import Flask

from api.app import close_app, create_app
from api.auth import KeyStore
from domain.storage import Store
from projections.runner import Runner
from tests.conftest import open_ledger
from tests.e2e.test_random_histories import CHANNELS, PURPOSES, random_event
from tests.random_refs import random_brand, random_event_id

CUSTOMERS = ("c-1", "c-2", "c-3")


def writes(app: Flask, key: str, seed: int, statuses: list[int], decided: list[str]) -> None:
    rng, http, now = random.Random(seed), app.test_client(), datetime.now(UTC)
    headers = {"Authorization": f"Bearer {key}"}

    def event(customer: str) -> dict[str, Any]:
        return random_event(rng, customer, now)

    for _ in range(60):
        customer, roll = rng.choice(CUSTOMERS), rng.random()
        if roll < 0.2:
            push_id = random_event_id()
            answer = http.post("/v1/push-decisions", headers=headers, json={
                "push_id": push_id, "customer": customer, "channel": rng.choice(CHANNELS),
                "kind": rng.choice(["service", "offer"]), "purpose": rng.choice(PURPOSES),
            })  # fmt: skip
            if answer.status_code == 200:
                decided.append(push_id)
        elif roll < 0.3:
            batch = [event(rng.choice(CUSTOMERS)) for _ in range(rng.randint(1, 5))]
            answer = http.post("/v1/events/batch", headers=headers, json={"events": batch})
        elif roll < 0.4:
            answer = http.get(f"/v1/customers/{customer}/trust", headers=headers)
        else:
            answer = http.post("/v1/events", headers=headers, json=event(customer))
        statuses.append(answer.status_code)


def test_threads_writing_the_same_customers_get_no_5xx_and_a_consistent_ledger(
    empty_store: Store,
) -> None:
    fresh = empty_store  # of its own: the rebuild below reads the whole log
    app = create_app({"database_url": fresh.url})
    keys = KeyStore(fresh)
    brand = random_brand()
    key, auditor = keys.create(brand, "brand").key, keys.create(brand, "compliance").key
    statuses: list[int] = []
    decided: list[str] = []
    threads = [
        threading.Thread(target=writes, args=(app, key, seed, statuses, decided))
        for seed in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(statuses) == 360 and all(status < 500 for status in statuses), statuses
    assert statuses.count(201) > 0 and decided
    http = app.test_client()
    for push_id in decided:
        audit = http.get(f"/v1/audit/push-decisions/{push_id}",
                         headers={"Authorization": f"Bearer {auditor}"})  # fmt: skip
        assert audit.status_code == 200 and (audit.json or {})["reproduced"] is True, audit.text
    ledger = open_ledger(fresh)
    runner = Runner(ledger)
    runner.run_once()
    assert runner.rebuild(verify=True) == {}
    runner.close()
    ledger.close()
    keys.close()
    close_app(app)
