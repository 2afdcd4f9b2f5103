"""Steps the browser journeys share: moving through the console's pages as a user would."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from httphelp import http_get
from openpyxl import Workbook, load_workbook
from selenium.common.exceptions import NoSuchElementException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

from .conftest import Console

Shot = Callable[[str], Path]
RUN_PATH = re.compile(r"/runs/(?P<run>[^/?#]+)$")
FINAL_STATUSES = ("finished", "not_finished", "cancelled", "failed")


def element(driver: WebDriver, css: str) -> WebElement | None:
    try:
        return driver.find_element(By.CSS_SELECTOR, css)
    except NoSuchElementException:
        return None


def text_of(driver: WebDriver, css: str) -> str | None:
    """The text of the element `css` now (None: not on the page), read in one round trip, so a
    page that reloads itself meanwhile never leaves a stale element behind."""
    text = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent.trim() : null;",
        css,
    )
    return None if text is None else str(text)


def table_cells(driver: WebDriver, css: str) -> list[list[str]]:
    """The text of every body cell of the table `css`, row by row (one round trip)."""
    rows = driver.execute_script(
        "const t = document.querySelector(arguments[0]);"
        "return t ? Array.from(t.querySelectorAll('tbody tr'), r => "
        "Array.from(r.cells, c => c.textContent.trim())) : null;",
        css,
    )
    assert rows is not None, f"{driver.current_url} has no table {css}"
    return [list(map(str, row)) for row in rows]


def page_text(driver: WebDriver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def wait_for(
    driver: WebDriver, css: str, *, seconds: float = 15.0, refresh: bool = False
) -> WebElement:
    """The element `css`, once the page shows it (reloading the page each second with `refresh`)."""
    deadline = time.monotonic() + seconds
    last_reload = time.monotonic()
    while True:
        found = element(driver, css)
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{driver.current_url} shows no {css} after {seconds:g}s:\n{page_text(driver)[:2000]}"
            )
        if refresh and time.monotonic() - last_reload > 1.0:
            driver.refresh()
            last_reload = time.monotonic()
        time.sleep(0.05)


def upload(
    console: Console, path: Path, *, action: str, group: str | None = None, shot: Shot | None = None
) -> None:
    """The New job form: the action, the group, the file; then Upload."""
    driver = console.driver
    console.go("/jobs/new")
    form = wait_for(driver, "form#new-job")
    Select(form.find_element(By.CSS_SELECTOR, "select[name=action]")).select_by_value(action)
    if group is not None:
        Select(form.find_element(By.CSS_SELECTOR, "select[name=group_id]")).select_by_value(group)
    form.find_element(By.CSS_SELECTOR, "input[type=file][name=file]").send_keys(str(path))
    if shot:
        shot("new-job")
    form.find_element(By.ID, "upload").click()


def through_to_plan(driver: WebDriver, shot: Shot | None = None) -> WebElement:
    """From an upload to the plan page, taking the sheet/column and validation steps when shown."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        plan = element(driver, "#plan")
        if plan is not None:
            return plan
        choose = element(driver, "#choose")
        if choose is not None:
            if shot:
                shot("columns")
            choose.click()
            continue
        onward = element(driver, "#to-plan")
        if onward is not None:
            if shot:
                shot("check")
            onward.click()
            continue
        time.sleep(0.05)
    raise AssertionError(f"no plan page at {driver.current_url}:\n{page_text(driver)[:2000]}")


def run_id_of(driver: WebDriver, within: float = 30.0) -> str:
    """The id of the run page the browser is on, or arriving at: a confirmation's answer comes
    once its run has started, which a loaded machine can take a while to do."""
    deadline = time.monotonic() + within
    while (match := RUN_PATH.search(driver.current_url.split("?", 1)[0])) is None:
        assert time.monotonic() < deadline, f"not a run page: {driver.current_url}"
        time.sleep(0.05)
    return match["run"]


def wait_for_status(
    driver: WebDriver, wanted: str, *, seconds: float = 60.0, reload: bool = False
) -> str:
    """The run page's #run-status once it reads `wanted`.

    The page gets there by itself (live events with JavaScript, its refresh without); `reload`
    also reloads it each 1.5 s, for a run whose status changes without the console knowing.
    The deadline is generous: on a loaded 2-core machine a resumed run once took 20 s to show
    `running` (the test failed there); waiting longer costs nothing when the run is quick.
    """
    deadline = time.monotonic() + seconds
    status = ""
    last_reload = time.monotonic()
    while time.monotonic() < deadline:
        status = text_of(driver, "#run-status") or ""
        if status == wanted:
            return status
        if status in FINAL_STATUSES and status != wanted:
            break
        if reload and time.monotonic() - last_reload > 1.5:
            driver.refresh()
            last_reload = time.monotonic()
        time.sleep(0.1)
    raise AssertionError(
        f"run page {driver.current_url} says {status!r}, not {wanted!r}:\n{page_text(driver)[:2000]}"
    )


@contextmanager
def without_javascript(driver: WebDriver) -> Iterator[None]:
    """The tab with JavaScript off (the console must work without it), on again afterwards."""
    driver.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})  # type: ignore[attr-defined]
    try:
        yield
    finally:
        driver.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})  # type: ignore[attr-defined]


def download(console: Console, driver: WebDriver, name: str) -> bytes:
    """The file behind the result page's download link `name`, fetched with the browser's cookie."""
    links = driver.find_elements(By.CSS_SELECTOR, "#downloads a")
    hrefs = [link.get_attribute("href") or "" for link in links]
    href = next((h for h in hrefs if h.split("?", 1)[0].endswith("/" + name)), None)
    assert href, f"no {name} among the downloads {hrefs}"
    cookies = {c["name"]: c["value"] for c in driver.get_cookies()}
    answer = http_get(href, cookies=cookies, timeout=30.0)
    assert answer.status_code == 200, (href, answer.status_code, answer.text[:500])
    assert "attachment" in answer.headers.get("content-disposition", "")
    return answer.content


def workbook_items(content: bytes) -> list[dict[str, str]]:
    """The Items sheet of a run's report.xlsx, one dict per row."""
    book = load_workbook(io.BytesIO(content), read_only=True)
    sheet = book["Items"]
    rows = list(sheet.iter_rows(values_only=True))
    header = [str(cell) for cell in rows[0]]
    return [
        {key: "" if value is None else str(value) for key, value in zip(header, row, strict=False)}
        for row in rows[1:]
    ]


def write_list(path: Path, iccids: list[str]) -> Path:
    """An .xlsx list as admins receive it: a title column of ICCIDs stored as text, and a note."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "SIMs"
    sheet.append(["ICCID", "Site"])
    for number, iccid in enumerate(iccids):
        sheet.append([iccid, f"Depot {number % 3 + 1}"])
    for cells in sheet.iter_rows(min_row=2, max_col=1):
        for cell in cells:
            cell.number_format = "@"
    book.save(path)
    return path


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows(rows)
    return path
