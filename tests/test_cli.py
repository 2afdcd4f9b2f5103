"""The command surface: help everywhere, settings precedence, read-only commands, clear failures."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import pytest

from jobs.cli import cli
from lf_bulk.client import LinksfieldClient
from lf_bulk.pacing import RequestPacer
from lf_bulk.sandbox import seed
from lf_bulk.sandbox.seed import DEMO_GROUP, PARTNER
from lf_bulk.sandbox.server import SandboxServer

from clihelp import FAST_SERVER, base_args, expect, invoke
from conftest import MakeSandbox

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name in group.list_commands(click.Context(group)):
        command = group.get_command(click.Context(group), name)
        assert command is not None
        path = (*prefix, name)
        found.append(path)
        if isinstance(command, click.Group):
            found += all_commands(command, path)
    return found


COMMANDS = all_commands(cli)


def test_the_documented_commands_exist() -> None:
    expected = {
        ("groups", "list"),
        ("groups", "members"),
        ("ops", "status"),
        ("sims", "add"),
        ("sims", "remove"),
        ("runs", "list"),
        ("runs", "show"),
        ("runs", "resume"),
        ("runs", "wait"),
        ("runs", "retry"),
        ("reconcile",),
        ("orders", "export"),
        ("sandbox", "serve"),
        ("doctor",),
    }
    assert expected <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = expect(invoke([*path, "--help"]), 0)
    assert "Usage:" in result.stdout
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        found = command.get_command(click.Context(command), name)
        assert found is not None
        command = found
    assert command.help and len(command.help.strip()) > 20, f"{path} has no real help text"


def test_prod_without_partner_code_exits_1_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("LF_BULK_PARTNER_CODE", raising=False)
    monkeypatch.chdir(tmp_path)
    result = expect(invoke(["--env", "prod", "groups", "list"]), 1)
    assert "partner code" in result.stderr and "LF_BULK_PARTNER_CODE" in result.stderr


def test_unreachable_base_url_exits_1_after_bounded_retries(tmp_path: Path) -> None:
    started = time.monotonic()
    args = ["--env", "uat", "--partner-code", "P1", "--base-url", "http://127.0.0.1:9"]
    result = expect(invoke([*args, "--retry-deadline", "1", "groups", "list"]), 1)
    assert time.monotonic() - started < 15
    assert "could not be reached after retries" in result.stderr
    assert "127.0.0.1:9" in result.stderr


def test_flags_win_over_environment_which_wins_over_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The mask shows only the first character and the length, so each source has its own.
    config = tmp_path / "lf.toml"
    config.write_text('env = "uat"\npartner_code = "FILE1"\n')
    monkeypatch.delenv("LF_BULK_PARTNER_CODE", raising=False)
    monkeypatch.setenv("LF_BULK_BASE_URL", "http://127.0.0.1:9")

    def masked(*args: str) -> str:
        result = invoke(["--config", str(config), "--retry-deadline", "0", *args, "doctor"])
        return next(line for line in result.stdout.splitlines() if line.startswith("partner code"))

    assert masked().endswith("F**** (5 chars)")
    monkeypatch.setenv("LF_BULK_PARTNER_CODE", "ENVIRON")
    assert masked().endswith("E****** (7 chars)")
    assert masked("--partner-code", "GIVEN_AS_FLAG").endswith("G************ (13 chars)")


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    result = expect(invoke(["--config", str(tmp_path / "nope.toml"), "groups", "list"]), 1)
    assert "does not exist" in result.stderr


def test_groups_list_against_a_served_sandbox(sandbox: SandboxServer, tmp_path: Path) -> None:
    args = ["--env", "uat", "--base-url", sandbox.base_url, "--partner-code", "P000270"]
    result = expect(
        invoke([*args, "--home", str(tmp_path), "groups", "list", "--format", "json"]), 0
    )
    groups = {g["group_id"]: g for g in json.loads(result.stdout)}
    assert DEMO_GROUP in groups
    assert groups[DEMO_GROUP]["sim_count"] == len(sandbox.state.members(DEMO_GROUP))


@pytest.mark.parametrize(
    ("sims", "page_size"),
    [(15_000, 250), pytest.param(150_000, 250, marks=pytest.mark.slow)],
    ids=["2-pages", "20-pages"],
)
def test_members_survive_503s_and_429s_and_are_exact(
    make_sandbox: MakeSandbox, tmp_path: Path, sims: int, page_size: int
) -> None:
    # The retry waits are real here; the many-page case with virtual waits is the next test.
    server = make_sandbox(f"{FAST_SERVER},5xx=0.3,429=0.1,seed=5", sims=sims)
    expected = server.state.members(DEMO_GROUP)
    assert len(expected) == 5_000 * sims // seed.DEFAULT_SIMS
    out = tmp_path / "m.csv"
    args = [*base_args(tmp_path, server.base_url), "groups", "members", DEMO_GROUP]
    result = expect(invoke([*args, "--page-size", str(page_size), "-o", str(out)]), 0)
    assert result.stdout.strip() == str(out)
    lines = out.read_text().splitlines()
    assert lines[0] == "iccid"
    assert lines[1:] == sorted(expected)


class VirtualTime:
    """A clock that only moves when something sleeps: retry waits cost no wall time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_member_pages_are_exact_through_503s_and_429s_with_retry_after_honoured(
    make_sandbox: MakeSandbox,
) -> None:
    server = make_sandbox(f"{FAST_SERVER},5xx=0.3,429=0.1,seed=5", sims=15_000)
    expected = server.state.members(DEMO_GROUP)
    time = VirtualTime()
    pacer = RequestPacer(200, 4, clock=time.clock, sleep=time.sleep)
    with LinksfieldClient(server.base_url, PARTNER, pacer=pacer, sleep=time.sleep) as client:
        members = client.list_members(DEMO_GROUP, page_size=25)  # 20 pages
    assert members == sorted(expected)
    assert 1.0 in time.sleeps, "a 429 was met and its Retry-After: 1 waited out"
    assert len([s for s in time.sleeps if s != 1.0]) >= 2, "5xx answers were met and backed off"


def test_doctor_passes_against_the_sandbox(sandbox: SandboxServer, tmp_path: Path) -> None:
    result = expect(invoke([*base_args(tmp_path, sandbox.base_url), "doctor"]), 0)
    for check in ("clock", "reachable", "signature", "envelope"):
        assert f"ok   {check}" in result.stdout


def test_doctor_fails_on_a_wrong_signature_profile(sandbox: SandboxServer, tmp_path: Path) -> None:
    args = ["--env", "uat", "--base-url", sandbox.base_url, "--partner-code", "P999999"]
    result = expect(invoke([*args, "--home", str(tmp_path), "doctor"]), 1)
    assert "FAIL" in result.stdout


def test_ops_status_prints_the_async_result(sandbox: SandboxServer, tmp_path: Path) -> None:
    from lf_bulk.client import LinksfieldClient

    with LinksfieldClient(sandbox.base_url, "P000270") as client:
        sims = sandbox.state.ungrouped_sims(2)
        request_id = client.add_sims(DEMO_GROUP, sims).request_id
    result = expect(
        invoke([*base_args(tmp_path, sandbox.base_url), "ops", "status", request_id]), 0
    )
    data = json.loads(result.stdout)
    assert data["request_id"] == request_id and data["group_id"] == DEMO_GROUP
    assert data["status"] in ("PENDING", "PROCESSING", "SUCCESS")


def test_runs_list_json_has_the_documented_keys(sandbox: SandboxServer, tmp_path: Path) -> None:
    file = tmp_path / "s.csv"
    file.write_text("iccid\n" + "\n".join(sandbox.state.ungrouped_sims(3)) + "\n")
    args = base_args(tmp_path / "h", sandbox.base_url)
    expect(
        invoke([*args, "sims", "add", DEMO_GROUP, str(file), "--report-dir", str(tmp_path / "r")]),
        0,
    )
    runs = json.loads(expect(invoke([*args, "runs", "list", "--format", "json"]), 0).stdout)
    assert set(runs[0]) == {"run_id", "operation", "group_id", "status", "started_at", "outcomes"}
    assert runs[0]["outcomes"] == {"added": 3}
    shown = json.loads(expect(invoke([*args, "runs", "show", runs[0]["run_id"]]), 0).stdout)
    assert shown["report_dir"] == str(tmp_path / "r")
