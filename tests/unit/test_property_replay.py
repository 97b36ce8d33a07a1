"""A property test's failure says how to replay it exactly, on another machine too."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
FAILING = """
from hypothesis import given, strategies as st


@given(st.lists(st.integers()))
def test_a_property_that_fails(numbers):
    assert sum(numbers) < 1000
"""


def test_a_failing_property_prints_the_blob_that_replays_it(tmp_path: Path) -> None:
    """Hypothesis draws new examples at each run and keeps a failing one in its example
    database, which stays on the machine the failure happened on (a CI runner's is gone): the
    suite's profile has it print `@reproduce_failure(...)` too, which replays the failure as
    drawn, whatever the test's strategies hold."""
    (tmp_path / "conftest.py").write_text("import tests.conftest  # noqa: F401 (its settings)\n")
    (tmp_path / "test_failing.py").write_text(FAILING)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_failing.py"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.search(r"@reproduce_failure\('[^']+', b'[^']+'\)", done.stdout), done.stdout
