"""The browser the journeys drive: headless Debian Chromium, the window the screenshots show."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from .conftest import CHROMIUM


def test_the_browser_is_the_installed_headless_chromium(
    browser: WebDriver, shot: Callable[[str], Path]
) -> None:
    browser.get("data:text/html,<main><h1 id=hello>lf-bulk</h1></main>")
    assert browser.find_element(By.ID, "hello").text == "lf-bulk"
    assert "HeadlessChrome" in browser.execute_script("return navigator.userAgent")
    assert browser.capabilities["browserName"] == "chrome"
    assert browser.get_window_size() == {"width": 1280, "height": 900}
    assert CHROMIUM.exists()
    picture = shot("hello")
    assert picture.read_bytes().startswith(b"\x89PNG")
