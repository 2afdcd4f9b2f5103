"""Reconciliation end to end against the sandbox over 127.0.0.1."""

from __future__ import annotations

import csv
import json
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from lf_bulk.sandbox.seed import FLEET_GROUP, PILOT_GROUP
from lf_bulk.sandbox.server import SandboxServer

from clihelp import FAST_SERVER, base_args, expect, invoke, subprocess_cli, wait_for_run
from conftest import MakeSandbox

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")

G1, G2 = PILOT_GROUP, FLEET_GROUP


# The drift moves half of G2's members out: the mass-removal guard needs this to apply it.
ALLOW_MOVES = ["--max-removal-ratio", "0.5"]


# The default suite's drift: 1,000 desired for G1 in a world of 2,000 SIMs; `make chaos` kills a
# run of ten times that (DRIFT_AT_SCALE). What each test checks is the same at either size.
DRIFT = 10
DRIFT_AT_SCALE = 100
SIMS_FOR = {DRIFT: 2_000, DRIFT_AT_SCALE: 20_000}


def build_drift(server: SandboxServer, tmp_path: Path, unit: int = DRIFT) -> Path:
    """100 units desired for G1 (a unit is `unit` SIMs): 3 in no group, 1 in G2, and G1 holds 2
    not desired; G2 keeps 1 unit more. By default 960 in sync, 30 missing, 20 unexpected and 10
    misplaced: 70 changes."""
    free = server.state.ungrouped_sims(103 * unit)
    in_sync, missing, extra = (
        free[: 96 * unit],
        free[96 * unit : 99 * unit],
        free[99 * unit : 101 * unit],
    )
    g2 = free[101 * unit : 103 * unit]
    moving = g2[:unit]
    server.state.set_members(G1, in_sync + extra)
    server.state.set_members(G2, g2)
    path = tmp_path / "desired.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["iccid", "group_id"])
        writer.writerows([i, G1] for i in in_sync + missing + moving)
        writer.writerows([i, G2] for i in g2[unit:])
    return path


def reconcile(server: SandboxServer, home: Path, *args: str):
    return invoke([*base_args(home, server.base_url), "reconcile", *args])


def counts(report: Path) -> dict[str, int]:
    data: dict[str, int] = json.loads((report / "summary.json").read_text())["counts"]
    return data


@pytest.fixture
def drifted(make_sandbox: MakeSandbox, tmp_path: Path) -> tuple[SandboxServer, Path]:
    server = make_sandbox(FAST_SERVER, sims=SIMS_FOR[DRIFT])
    return server, build_drift(server, tmp_path)


def test_drift_is_reported_exactly_with_exit_4(
    drifted: tuple[SandboxServer, Path], tmp_path: Path
) -> None:
    server, desired = drifted
    result = expect(
        reconcile(server, tmp_path / "h", str(desired), "--report-dir", str(tmp_path / "r")), 4
    )
    summary_line, report_line = result.stdout.strip().splitlines()
    assert "missing 30" in summary_line and report_line == str(tmp_path / "r")
    assert counts(tmp_path / "r") == {
        "in_sync": 960 + 10,
        "missing": 30,
        "unexpected": 20,
        "misplaced": 10,
        "duplicate": 0,
        "conflict": 0,
        "invalid": 0,
    }
    with (tmp_path / "r" / "drift.csv").open() as handle:
        drift = list(csv.DictReader(handle))
    assert Counter(d["category"] for d in drift) == {
        "missing": 30,
        "unexpected": 20,
        "misplaced": 10,
    }
    assert {d["actual_group"] for d in drift if d["category"] == "misplaced"} == {G2}
    assert server.state.mutation_log() == []


def test_all_groups_finds_moves_for_a_file_naming_one_group(
    drifted: tuple[SandboxServer, Path], tmp_path: Path
) -> None:
    server, desired = drifted
    rows = [r for r in desired.read_text().splitlines()[1:] if r.endswith(G1)]
    g1_only = tmp_path / "g1.csv"
    g1_only.write_text("iccid\n" + "\n".join(r.split(",")[0] for r in rows) + "\n")
    args = [str(g1_only), "--group", G1, "--report-dir"]
    expect(reconcile(server, tmp_path / "h", *args, str(tmp_path / "a"), "--all-groups"), 4)
    assert counts(tmp_path / "a")["misplaced"] == 10
    assert counts(tmp_path / "a")["missing"] == 30
    expect(reconcile(server, tmp_path / "h", *args, str(tmp_path / "b")), 4)
    assert counts(tmp_path / "b")["misplaced"] == 0
    assert counts(tmp_path / "b")["missing"] == 40


def test_max_changes_refuses_a_larger_plan_and_sends_nothing(
    drifted: tuple[SandboxServer, Path], tmp_path: Path
) -> None:
    server, desired = drifted
    result = expect(
        reconcile(server, tmp_path / "h", str(desired), "--apply", "--max-changes", "50"), 2
    )
    assert "70 changes" in result.stderr and "--max-changes 70 to allow" in result.stderr
    assert server.state.mutation_log() == []


def test_apply_converges_and_a_second_run_is_in_sync(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    server = make_sandbox(
        f"{FAST_SERVER},5xx=0.1,429=0.05,async=0.2-0.8s,seed=3", sims=SIMS_FOR[DRIFT]
    )
    desired = build_drift(server, tmp_path)
    home = tmp_path / "h"
    applied = expect(
        reconcile(
            server,
            home,
            str(desired),
            "--apply",
            "--max-changes",
            "1000",
            *ALLOW_MOVES,
            "--report-dir",
            str(tmp_path / "r"),
        ),
        0,
    )
    assert "after apply" in applied.stdout
    assert counts(tmp_path / "r")["in_sync"] == 1_010
    again = expect(reconcile(server, home, str(desired), "--report-dir", str(tmp_path / "r2")), 0)
    assert "in sync" in again.stdout
    assert counts(tmp_path / "r2")["in_sync"] == 1_010


@pytest.mark.slow  # a kill, an async window and a resume: the default suite kills adds
def test_killed_mid_apply_then_resumed_converges(make_sandbox: MakeSandbox, tmp_path: Path) -> None:
    server = make_sandbox(f"{FAST_SERVER},async=0.5-1.5s", sims=SIMS_FOR[DRIFT_AT_SCALE])
    desired = build_drift(server, tmp_path, DRIFT_AT_SCALE)
    home = tmp_path / "h"
    args = [*base_args(home, server.base_url), "--rate", "5", "reconcile", str(desired)]
    job = subprocess_cli([*args, "--apply", "--max-changes", "1000", *ALLOW_MOVES])
    run_id = wait_for_run(home)
    time.sleep(1.5)
    job.send_signal(signal.SIGKILL)
    job.wait()
    expect(invoke([*base_args(home, server.base_url), "runs", "resume", run_id]), 0)
    again = expect(reconcile(server, home, str(desired), "--report-dir", str(tmp_path / "r")), 0)
    assert counts(tmp_path / "r")["in_sync"] == 10_100, again.stdout


def test_a_conflict_is_reported_and_never_applied(sandbox: SandboxServer, tmp_path: Path) -> None:
    sim, new, kept1, kept2 = sandbox.state.ungrouped_sims(4)
    sandbox.state.set_members(G1, [kept1])
    sandbox.state.set_members(G2, [kept2])
    desired = tmp_path / "d.csv"
    desired.write_text(
        f"iccid,group\n{sim},{G1}\n{sim},{G2}\n{kept1},{G1}\n{kept2},{G2}\n{new},{G1}\n"
    )
    result = expect(
        reconcile(
            sandbox, tmp_path / "h", str(desired), "--apply", "--report-dir", str(tmp_path / "r")
        ),
        4,
    )
    assert counts(tmp_path / "r")["conflict"] == 2, result.stdout
    assert sandbox.state.group_of(new) == G1  # the rest of the plan was applied
    assert sandbox.state.group_of(sim) is None
    assert sandbox.state.mutation_log() == [] or all(
        sim not in m.iccids for m in sandbox.state.mutation_log()
    )


def test_second_reconcile_of_the_same_groups_is_refused_while_one_runs(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    server = make_sandbox(f"{FAST_SERVER},async=3-4s", sims=SIMS_FOR[DRIFT])
    desired = build_drift(server, tmp_path)
    home = tmp_path / "h"
    job = subprocess_cli(
        [
            *base_args(home, server.base_url),
            "reconcile",
            str(desired),
            "--apply",
            "--max-changes",
            "1000",
            *ALLOW_MOVES,
        ]
    )
    try:
        wait_for_run(home)
        second = expect(reconcile(server, home, str(desired)), 1)
        assert "is being driven by another lf-bulk process" in second.stderr
        assert f"pid {job.pid}" in second.stderr
    finally:
        # Its end proves nothing here; waiting for it would cost the whole async window.
        job.kill()
        job.communicate(timeout=30)
