"""Every page of the console in the browser: reached from the navigation with the keyboard, with
the landmarks the journeys rely on, and refused (with no account data) without the token."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from lf_bulk.sandbox.seed import DEMO_GROUP, PARTNER

from .conftest import Console
from .journeys import Shot, page_text, wait_for

# (link text in the navigation, path, ids the page shows)
PAGES = [
    ("Home", "/", ("groups", "recent-runs", "quota")),
    ("New job", "/jobs/new", ("new-job", "upload", "file")),
    ("Runs", "/runs", ("runs",)),
    ("Reconcile", "/reconcile", ("reconcile-upload", "compare")),
    ("Finance", "/finance", ("export", "pushed", "totals")),
]


def test_the_skip_link_is_the_first_stop_of_the_keyboard(console: Console) -> None:
    driver = console.driver
    console.go("/")
    wait_for(driver, "#groups")
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    skip = driver.switch_to.active_element
    assert (
        skip.get_attribute(
            "href",
        )
        == console.server.base_url + "/#main"
    )
    skip.send_keys(Keys.ENTER)
    assert driver.switch_to.active_element.get_attribute("id") == "main"


@pytest.mark.parametrize(("link", "path", "ids"), PAGES, ids=[p[1] for p in PAGES])
def test_every_page_opens_from_the_navigation_by_keyboard(
    console: Console, shot: Shot, link: str, path: str, ids: tuple[str, ...]
) -> None:
    driver = console.driver
    console.go("/runs" if path == "/" else "/")
    wait_for(driver, "nav")
    driver.find_element(By.CSS_SELECTOR, "nav").find_element(By.LINK_TEXT, link).send_keys(
        Keys.ENTER
    )
    for name in ids:
        wait_for(driver, f"#{name}")
    assert driver.current_url == console.server.base_url + path
    current = driver.find_element(By.CSS_SELECTOR, "nav a[aria-current=page]")
    assert current.text == link
    shot("page")
    assert PARTNER not in driver.page_source  # the partner code is the credential
    if path == "/":
        assert DEMO_GROUP in driver.find_element(By.ID, "groups").text


def test_without_the_token_the_browser_sees_only_the_refusal(console: Console, shot: Shot) -> None:
    driver = console.driver
    driver.delete_all_cookies()
    console.go("/")
    wait_for(driver, "body")
    shot("refused")
    text = page_text(driver)
    assert "Access token needed" in text
    assert DEMO_GROUP not in driver.page_source and "quota" not in text.lower()
    console.go("/?token=" + "x" * 43)
    assert "Access token needed" in page_text(driver)
    assert driver.get_cookies() == []
