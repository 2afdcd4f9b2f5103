"""`sims add/remove --help` tells what FILE may be and what the reason codes mean."""

from __future__ import annotations

import pytest

from lf_bulk.iccid import Reason

from clihelp import expect, invoke


@pytest.mark.parametrize("command", ["add", "remove"])
def test_sims_help_names_stdin_the_formats_and_every_reason_code(command: str) -> None:
    text = " ".join(expect(invoke(["sims", command, "--help"]), 0).stdout.split())
    assert "- reads standard input" in text
    for suffix in (".csv", ".tsv", ".txt", ".xlsx", ".xlsm"):
        assert suffix in text, suffix
    for reason in Reason:
        assert reason.value in text, reason
    assert "--skip-invalid" in text and "exit 2" in text
