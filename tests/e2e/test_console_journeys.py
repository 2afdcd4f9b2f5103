"""The console's acceptance journeys, in headless Chromium, as a new user would try them (#15).

One real `lf-bulk console` serves this module (its own embedded-sandbox home); each journey
uploads through the browser, reads what the pages say and checks the sandbox's own record of what
was sent. Every page visited is saved to e2e-screens/ for review.
"""

from __future__ import annotations

from pathlib import Path

from selenium.webdriver.common.by import By

from lf_bulk.sandbox.seed import DEMO_GROUP

from .conftest import Console
from .journeys import (
    Shot,
    download,
    page_text,
    run_id_of,
    table_cells,
    through_to_plan,
    upload,
    wait_for,
    wait_for_status,
    workbook_items,
    write_list,
)

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"


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
