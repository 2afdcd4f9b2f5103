"""The README's "Using it" examples run, as written and in order, with the exit codes they state.

Each `lf-bulk ...` line of the section's code block carries a comment `# exit N: ...`; the test runs
it in-process in a copy of samples/ against the embedded sandbox (its state under the copy's
default home) and checks the code. `RUN` becomes the run id the previous jobs printed on stderr and
`REQUEST_ID` a request id from the newest report's items.csv, as a user would copy them.
"""

from __future__ import annotations

import csv
import importlib.util
import re
import shlex
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner, Result

from jobs.cli import cli
from lf_bulk.sandbox import seed

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SAMPLES = ROOT / "samples"
USAGE_HEADING = "## Using it"
# Only the pace differs from a user's run: the sandbox finishes operations in about 0.1 s instead
# of 1-2 s and allows the client's faster rate (set by the copy's config file), so no example
# waits on the contract's 10 requests/s.
FAST_SANDBOX = "async=50-150ms,rate=400,concurrency=8"
FAST_CLIENT_CONFIG = "rate = 200\nmax_in_flight = 4\n"
NOT_RUN = {
    "lf-bulk sandbox serve": "serves until Ctrl-C; tests/test_sandbox.py covers the server",
}
EXIT_COMMENT = re.compile(r"^exit (?P<code>\d+)\b")
RUN_LINE = re.compile(r"^run (?P<run>\d{8}-\d{6}-[0-9a-f]+)\b", re.MULTILINE)
GROUP_ID = re.compile(r"\bG\d{3,}\b")
# Settings a developer's shell may carry that would point the examples elsewhere.
CLEARED_ENV = ("LF_BULK_ENV", "LF_BULK_BASE_URL", "LF_BULK_PARTNER_CODE", "LF_BULK_HOME")


@dataclass(frozen=True)
class Example:
    line: int  # in README.md
    command: str
    comment: str

    @property
    def expected_exit(self) -> int | None:
        match = EXIT_COMMENT.match(self.comment)
        return int(match["code"]) if match else None

    @property
    def skip_reason(self) -> str | None:
        return next((why for cmd, why in NOT_RUN.items() if self.command.startswith(cmd)), None)

    def where(self) -> str:
        return f"README.md line {self.line}: {self.command}"


def usage_section(text: str) -> tuple[int, str]:
    """The "Using it" section and the README line number it starts on."""
    start = text.index(USAGE_HEADING)
    end = text.find("\n## ", start + len(USAGE_HEADING))
    return text.count("\n", 0, start) + 1, text[start : end if end >= 0 else len(text)]


def usage_examples(text: str) -> list[Example]:
    first_line, section = usage_section(text)
    examples: list[Example] = []
    in_block = False
    for offset, raw in enumerate(section.splitlines()):
        if raw.startswith("```"):
            in_block = raw.strip() == "```sh" if not in_block else False
            continue
        if not in_block or not raw.strip():
            continue
        command, _, comment = raw.partition("#")
        examples.append(Example(first_line + offset, command.strip(), comment.strip()))
    return examples


def test_every_usage_line_is_a_command_with_an_exit_code_or_a_reason_not_to_run() -> None:
    examples = usage_examples(README.read_text())
    assert len(examples) >= 15
    for example in examples:
        assert example.command.startswith("lf-bulk "), example.where()
        if example.skip_reason is None:
            assert example.expected_exit is not None, f"{example.where()}: add `# exit N: ...`"
        else:
            assert example.expected_exit is None, f"{example.where()} is not run by the test"


NOT_RUN_EXAMPLES = [e for e in usage_examples(README.read_text()) if e.skip_reason]


@pytest.mark.parametrize("example", NOT_RUN_EXAMPLES, ids=lambda e: e.command)
def test_examples_that_cannot_run_offline(example: Example) -> None:
    pytest.skip(f"{example.where()}: {example.skip_reason}")


def test_the_usage_examples_cover_every_exit_code_a_user_meets_first() -> None:
    codes = {e.expected_exit for e in usage_examples(README.read_text())}
    assert {0, 4, 5} <= codes


def test_every_group_the_readme_names_exists_in_the_sandbox() -> None:
    known = {plan.group_id for plan in seed.GROUP_PLANS if plan.partner_code == seed.PARTNER}
    named = set(GROUP_ID.findall(README.read_text()))
    assert named, "the README names no group"
    assert named <= known, f"not in the sandbox: {sorted(named - known)}"


def load_make_demo_lists() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_demo_lists", SAMPLES / "make_demo_lists.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_committed_demo_lists_match_the_script(tmp_path: Path, default_world: seed.World) -> None:
    script = load_make_demo_lists()
    written = script.write_all(tmp_path, default_world)
    assert {p.name for p in written} >= {"leavers.csv", "more.xlsx", "desired.xlsx", "orders.xlsx"}
    for path in written:
        assert path.read_bytes() == (SAMPLES / path.name).read_bytes(), (
            f"samples/{path.name} is stale: run `python samples/make_demo_lists.py`"
        )


@pytest.fixture
def samples_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh copy of samples/ as the current directory, with its own config file."""
    folder = tmp_path / "samples"
    shutil.copytree(SAMPLES, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    # Found before ~/.config/lf-bulk/config.toml, so no developer's settings leak in.
    (folder / "lf-bulk.toml").write_text(FAST_CLIENT_CONFIG)
    monkeypatch.chdir(folder)
    yield folder


@dataclass
class Session:
    """What a user reads off earlier output to type the next command."""

    folder: Path
    run_id: str | None = None
    report_dir: Path | None = None

    def note(self, result: Result) -> None:
        runs = RUN_LINE.findall(result.stderr)
        if runs:
            self.run_id = runs[-1]
        for line in result.stdout.splitlines():
            candidate = self.folder / line.strip()
            if line.strip() and (candidate / "items.csv").is_file():
                self.report_dir = candidate

    def args(self, example: Example) -> list[str]:
        args = shlex.split(example.command)[1:]
        if "RUN" in args:
            assert self.run_id, f"{example.where()}: no job printed `run <id>` before it"
            args = [self.run_id if a == "RUN" else a for a in args]
        if "REQUEST_ID" in args:
            args = [self.request_id(example) if a == "REQUEST_ID" else a for a in args]
        return args

    def request_id(self, example: Example) -> str:
        assert self.report_dir, f"{example.where()}: no report before it"
        with (self.report_dir / "items.csv").open(newline="") as handle:
            ids = [row["request_id"] for row in csv.DictReader(handle) if row["request_id"]]
        assert ids, f"{example.where()}: {self.report_dir}/items.csv has no request id"
        return ids[0]


def test_readme_usage_examples_run_in_order_with_their_exit_codes(samples_copy: Path) -> None:
    # The in-process sandbox's world is the session's shared one (conftest.py), built only by
    # the first process of the session to need it.
    runner = CliRunner()
    env: dict[str, str | None] = dict.fromkeys(CLEARED_ENV)
    env["LF_BULK_SANDBOX_FAULTS"] = FAST_SANDBOX
    session = Session(samples_copy)
    ran = 0
    for example in usage_examples(README.read_text()):
        if example.skip_reason is not None:
            continue
        result = runner.invoke(cli, session.args(example), env=env, catch_exceptions=True)
        report = (
            f"{example.where()}\nexpected exit {example.expected_exit}, got {result.exit_code}"
            f"\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            f"{report}\n{result.exception!r}"
        )
        assert "Traceback" not in result.stderr, report
        assert result.exit_code == example.expected_exit, report
        session.note(result)
        ran += 1
    assert ran >= 15
    assert (samples_copy / "finance.xlsx").is_file()
