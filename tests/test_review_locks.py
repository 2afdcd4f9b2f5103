"""Adversarial review: a lock file's text is not the tool's to trust when it is shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from lf_bulk.errors import RunLocked
from lf_bulk.locking import exclusive

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")


def test_the_holder_named_by_a_lock_file_reaches_the_terminal_escaped(tmp_path: Path) -> None:
    # Repro: a lock file rewritten to hold "\x1b[2J..." had it printed raw in "run locked".
    with exclusive(tmp_path, "run-r1", "run r1"):
        (tmp_path / "locks" / "run-r1.lock").write_text("\x1b[2J\x1b]0;owned\x07pid 1" + "x" * 500)
        with pytest.raises(RunLocked) as raised, exclusive(tmp_path, "run-r1", "run r1"):
            pass
    message = str(raised.value)
    assert "\x1b" not in message and "\x07" not in message
    assert "owned" in message and len(message) < 400  # shown made harmless, and short
