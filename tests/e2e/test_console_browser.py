"""The browser the journeys drive: headless Debian Chromium, the window the screenshots show."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from . import conftest as e2e_conftest
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


@pytest.mark.parametrize(
    ("ci", "present", "outcome"),
    [
        ("", (), pytest.skip.Exception),  # no browser on a developer's machine: skipped, with why
        ("true", (), pytest.fail.Exception),  # CI must run them
        ("", ("chromium",), pytest.fail.Exception),  # half an install is broken, not absent
        ("true", ("chromium", "chromedriver"), None),
    ],
)
def test_without_the_browser_the_tests_skip_except_in_ci(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ci: str,
    present: tuple[str, ...],
    outcome: type[BaseException] | None,
) -> None:
    for name in ("chromium", "chromedriver"):
        path = tmp_path / name
        if name in present:
            path.touch()
        monkeypatch.setattr(e2e_conftest, name.upper(), path)
    monkeypatch.setenv("CI", ci)
    if outcome is None:
        e2e_conftest.require_browser()
        return
    with pytest.raises(outcome) as refused:
        e2e_conftest.require_browser()
    assert "make browser" in str(refused.value)
