"""Running the CLI in tests: in-process with CliRunner, or as a real subprocess."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from storehelp import journal_at, journal_exists

from jobs.cli import cli
from lf_bulk.settings import SANDBOX_PARTNER_CODE

ROOT = Path(__file__).resolve().parent.parent
# Fast but contract-shaped: the test sandboxes allow this rate, so no test waits on pacing.
FAST_SERVER = "rate=400,concurrency=8"
FAST_CLIENT = ["--rate", "200", "--max-in-flight", "4"]


def invoke(args: Sequence[str], *, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=True)


def explain(result: Result) -> str:
    return f"exit {result.exit_code}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def expect(result: Result, code: int) -> Result:
    assert result.exit_code == code, explain(result)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"unexpected exception: {result.exception!r}\n{explain(result)}")
    assert "Traceback" not in result.stderr, explain(result)
    return result


def served_sandbox_args(base_url: str) -> list[str]:
    """How a user points lf-bulk at `lf-bulk sandbox serve` (`--env sandbox` is in-process only)."""
    return ["--env", "uat", "--partner-code", SANDBOX_PARTNER_CODE, "--base-url", base_url]


def base_args(home: Path, base_url: str) -> list[str]:
    return ["--home", str(home), *served_sandbox_args(base_url), "--no-progress", *FAST_CLIENT]


# The CLI as a terminal starts it, with Ctrl-C (SIGINT) raising KeyboardInterrupt, however the
# tests were started: a shell's background job (`make chaos &`) starts its children with SIGINT
# ignored, and Python leaves a signal ignored that it inherited ignored (as `nohup` wants).
_AS_FROM_A_TERMINAL = (
    "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from jobs.cli import main; main()"
)


def subprocess_cli(args: Sequence[str], **kwargs: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", _AS_FROM_A_TERMINAL, *args],
        cwd=Path.cwd(),  # the tests' scratch folder (conftest.py), where default reports go
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def wait_for_run(home: Path, timeout: float = 30) -> str:
    """The id of the newest run a job (often a subprocess) has recorded in `home`'s journal."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if journal_exists(home / "journal.db"):
            with journal_at(home / "journal.db") as journal:
                runs = journal.runs()
            if runs:
                return runs[0].run_id
        time.sleep(0.05)
    raise AssertionError("the job never recorded its run")


def read_items(report_dir: Path) -> list[dict[str, str]]:
    with (report_dir / "items.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def read_summary(report_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((report_dir / "summary.json").read_text())
    return data


def write_list(path: Path, iccids: Sequence[str], header: str = "iccid") -> Path:
    path.write_text(header + "\n" + "".join(f"{i}\n" for i in iccids))
    return path


def write_xlsx(path: Path, iccids: Sequence[str]) -> Path:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("SIMs")
    sheet.append(["ICCID"])
    for iccid in iccids:
        sheet.append([iccid])
    book.save(path)
    return path
