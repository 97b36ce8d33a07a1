"""The baseline the HTTP benches compare with: bare Flask endpoints doing one raw insert (ingest)
or one indexed lookup (the gate), which may also record its answer.

Same framework, same server (gunicorn with the ledger's worker class), same payload, none of the ledger: one psycopg connection per
worker (opened after the fork), one INSERT per request (one per event for /batch, in one
transaction), optionally inside the LOCK TABLE ... IN EXCLUSIVE MODE that the eventsourcing
library takes on every save, to show what that lock alone costs; optionally validating what it
was sent with the ledger's own marshmallow schemas first, to show what the schemas alone leave of
the baseline: the most any ledger validating with them could serve on the same machine.
"""

from __future__ import annotations

import json
import os
from typing import Any

import psycopg
from flask import Flask, request

TABLE = "bench_baseline"
_connection: dict[str, Any] = {}


def connection() -> psycopg.Connection[Any]:
    if "conn" not in _connection:
        _connection["conn"] = psycopg.connect(os.environ["BENCH_BASELINE_URL"])
    conn: psycopg.Connection[Any] = _connection["conn"]
    return conn


def insert(rows: list[dict[str, Any]], lock: bool) -> None:
    conn = connection()
    with conn.transaction(), conn.cursor() as cursor:
        if lock:
            cursor.execute(f"LOCK TABLE {TABLE} IN EXCLUSIVE MODE")
        cursor.executemany(
            f"INSERT INTO {TABLE} (event_id, body) VALUES (%s, %s)",
            [(row["event_id"], json.dumps(row)) for row in rows],
        )


def validator() -> Any:
    """The ledger's schemas' load of an event or a batch (BENCH_BASELINE_SCHEMAS=y), else nothing."""
    if os.environ.get("BENCH_BASELINE_SCHEMAS") != "y":
        return lambda posted, one: None
    from api.schemas.events import BatchSchema, EventSchema

    event, batch = EventSchema(), BatchSchema()
    return lambda posted, one: (event if one else batch).load(posted)


def create() -> Flask:
    app = Flask(__name__)
    lock = os.environ.get("BENCH_BASELINE_LOCK") == "y"
    validate = validator()

    @app.post("/v1/events")
    def one() -> tuple[dict[str, Any], int]:
        event = request.get_json()
        validate(event, one=True)
        insert([event], lock)
        return {"event_id": event["event_id"], "customer": event["customer"]}, 201

    @app.post("/v1/push-decisions")
    def decide() -> tuple[dict[str, Any], int]:
        """The gate bench's baseline: parse the body, one primary-key lookup, answer; with
        BENCH_BASELINE_LOCK=y, also record the answer in the same transaction, inside the lock the
        library takes on every save: the least a gate that records its decisions can do."""
        asked = request.get_json()
        conn = connection()
        with conn.transaction(), conn.cursor() as cursor:
            lookup = f"SELECT id, event_id FROM {TABLE} WHERE id = %s"
            row = cursor.execute(lookup, [asked["row"]]).fetchone()
            answer = {"push_id": asked["push_id"], "outcome": "allow" if row else "deny"}
            if lock:
                cursor.execute(f"LOCK TABLE {TABLE} IN EXCLUSIVE MODE")
                record = f"INSERT INTO {TABLE} (event_id, body) VALUES (%s, %s)"
                cursor.execute(record, (asked["push_id"], json.dumps(answer)))
        return answer, 200

    @app.post("/v1/events/batch")
    def batch() -> tuple[dict[str, Any], int]:
        batch = request.get_json()
        validate(batch, one=False)
        events = batch["events"]
        insert(events, lock)
        return {"events": [{"event_id": e["event_id"]} for e in events]}, 201

    return app
