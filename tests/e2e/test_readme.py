"""The README's HTTP API section, run as written: each `curl` example in order against
`trustledger serve`, on a fresh store of each kind, its answer held to the one the README shows.

The examples tell one story (a promise, a consent, a decision, an audit, an erasure), so they run
as a CRM and a compliance team would type them. An answer must have the status the README shows
(201 where it says so, else 200) and the shape of the answer it prints: every key it names, and
every value it gives in full. What the README elides (`...`), times, and scores (they decay with
the day the example is run) are not compared.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from api.auth import KeyStore
from domain.storage import Store
from tests.integration.test_serve import serving

README = Path(__file__).parents[2] / "README.md"
pytestmark = pytest.mark.slow

_CURL = r"""curl() {
  command curl --silent --show-error --write-out '%{stderr}%{http_code}\n' "$@"
}
"""
"""Each curl writes its answer's status to standard error, its body where the example says."""


def api_section() -> str:
    text = README.read_text()
    return text[text.index("\n## HTTP API\n") : text.index("\n## Benchmarks\n")]


def examples() -> list[tuple[str, str, str]]:
    """(heading, commands, the answer shown in comments after them) of each shell block that
    runs curl, in the README's order."""
    found = []
    heading = ""
    for part in re.split(r"(?m)^(### .*)$", api_section()):
        if part.startswith("### "):
            heading = part[4:]
            continue
        for block in re.findall(r"```sh\n(.*?)```", part, re.S):
            if "curl" not in block:
                continue
            lines = block.splitlines()
            commands = [line for line in lines if not line.startswith("#")]
            shown = "\n".join(line[2:] for line in lines if line.startswith("# "))
            found.append((heading, "\n".join(commands), shown))
    return found


def shown_answer(shown: str) -> tuple[int, Any]:
    """The status and the JSON a comment shows, `...` taken out: `{...}` is any object, `[...]`
    any list, and a string holding `...` any string."""
    status = 200
    if match := re.match(r"(\d{3}) ", shown):
        status, shown = int(match.group(1)), shown[match.end() :]
    if not shown.strip():
        return status, None
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\.\.\.', lambda m: "" if m[0] == "..." else m[0], shown)
    for pattern, replacement in ((r",\s*(?=[,}\]])", ""), (r"([{\[])\s*,", r"\1")):
        text = re.sub(pattern, replacement, text)
    return status, json.loads(text)


def last_answer(body: str) -> Any:
    """The last of the JSON answers the commands wrote one after the other (None: none)."""
    decoder, at, answer = json.JSONDecoder(), 0, None
    while body[at:].strip():
        at += len(body[at:]) - len(body[at:].lstrip())
        answer, at = decoder.raw_decode(body, at)
    return answer


VARYING = {"requested_by", "consentReceiptID", "relationship_id"}
"""Keys whose values differ on each run: the key's id, ids made from a fresh relationship."""


def differences(shown: Any, answer: Any, path: str = "") -> list[str]:
    """Where `answer` lacks what `shown` shows."""
    if isinstance(shown, dict):
        if not isinstance(answer, dict):
            return [f"{path or '.'}: {answer!r} is not an object"]
        found = []
        for key, value in shown.items():
            if key not in answer:
                found.append(f"{path}.{key}: missing (keys: {sorted(answer)})")
            elif not (key in VARYING or key.endswith("_at")):
                found += differences(value, answer[key], f"{path}.{key}")
        return found
    if isinstance(shown, list):
        if not isinstance(answer, list) or len(answer) < len(shown):
            return [f"{path}: {answer!r} does not hold the {len(shown)} items shown"]
        return [d for i, s in enumerate(shown) for d in differences(s, answer[i], f"{path}[{i}]")]
    if (isinstance(shown, str) and "..." in shown) or isinstance(shown, float):
        return [] if isinstance(answer, type(shown)) else [f"{path}: {answer!r} is not a {shown!r}"]
    return [] if shown == answer and type(shown) is type(answer) else [f"{path}: {answer!r}"]


def test_every_operation_has_an_example_under_its_heading() -> None:
    document = create_app({"database_url": "memory:"}).test_client().get("/v1/openapi.json").json
    assert document is not None
    headed = {heading for heading, _, _ in examples()}
    titles = re.findall(r"(?m)^### (.*)$", api_section())
    for path, operations in document["paths"].items():
        readme_path = path.replace("<", "{").replace(">", "}")
        for method in operations.keys() & {"get", "put", "post", "delete", "patch"}:
            call = f"{method.upper()} {readme_path}"
            title = next((t for t in titles if re.search(rf"\b{re.escape(call)}(\s|$)", t)), None)
            assert title is not None, f"{call} has no heading in the README's HTTP API section"
            assert title in headed, f"{call}: its section has no curl example"


def test_the_examples_answer_as_the_readme_shows(empty_store: Store, tmp_path: Path) -> None:
    keys = KeyStore(empty_store)
    env = dict(os.environ)
    for variable, role in (("KEY", "brand"), ("AGENT", "agent"), ("COMPLIANCE", "compliance")):
        env[variable] = keys.create("acme", role).key
    keys.close()
    with serving(empty_store, workers=1) as url:
        for heading, commands, shown in examples():
            script = _CURL + commands.replace("http://127.0.0.1:8000", url)
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", script],
                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            statuses = done.stderr.split()
            assert done.returncode == 0 and statuses, (heading, done.stderr)
            status, expected = shown_answer(shown)
            assert all(s.startswith("2") for s in statuses), (heading, statuses, done.stdout)
            assert int(statuses[-1]) == status, (heading, statuses, done.stdout)
            body = done.stdout
            if not body and (downloads := sorted(tmp_path.glob("*.json"))):
                body = downloads[-1].read_text()
            answer = last_answer(body)
            if expected is not None:
                assert differences(expected, answer) == [], (heading, json.dumps(answer))
