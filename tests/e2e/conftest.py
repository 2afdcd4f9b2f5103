"""The console's browser tests: a real `lf-bulk console` and a headless Chromium driving it.

- `browser` (one per session): Selenium 4 with Debian's /usr/bin/chromium and its own
  /usr/bin/chromedriver (`make browser` installs both); Selenium Manager never downloads anything.
  Without the browser the tests skip with the reason, except in CI (`CI=true`), where it is a
  failure: CI must run them.
- `console_server` (one per session): `lf-bulk console` in a subprocess on 127.0.0.1, over an
  embedded-sandbox home of its own (a small seeded world, fast operations); its URL and access
  token are read from what it prints, as a user would copy them.
- `console` (per test): the browser on that console, signed in with a clean cookie jar.
- `shot(name)`: a PNG screenshot of the page into `e2e-screens/` (not committed) for review.
"""

from __future__ import annotations

import base64
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import pytest
from httphelp import http_client, http_get
from selenium.webdriver.remote.webdriver import WebDriver

from lf_bulk.sandbox.state import SandboxState

from conftest import E2E_SCREENS

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)
# The console's sandbox finishes an operation in about 0.1 s and allows a faster client: the
# journeys wait on the console, not on the contract's 10 requests/s. Injected failures are off so
# that a report's rows can be checked one by one.
FAST_SANDBOX = "async=50-150ms,rate=400,concurrency=8,sim_locked=0,sim_internal=0"
FAST_CLIENT_CONFIG = "rate = 200\nmax_in_flight = 4\n"
CONSOLE_SIMS = 2_000
CONSOLE_URL = re.compile(r"https?://127\.0\.0\.1:(?P<port>\d+)/\?token=(?P<token>[A-Za-z0-9_\-]+)")
START_SECONDS = 30.0
COOKIE = "lf_console"
# Settings a developer's shell may carry that would point the console elsewhere.
CLEARED_ENV = ("LF_BULK_ENV", "LF_BULK_BASE_URL", "LF_BULK_PARTNER_CODE", "LF_BULK_HOME",
               "LF_BULK_CONFIG", "LF_BULK_SANDBOX_FAULTS")  # fmt: skip


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Compared as text: the whole suite passes through here, and Path.parents is slow for that.
    here = str(Path(__file__).parent) + os.sep
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.browser)


def require_browser() -> None:
    """Skip (or, in CI, fail) with the reason when Chromium or its driver is not installed."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if not missing:
        return
    why = (
        f"{' and '.join(missing)} not installed: run `make browser` (as root) for the browser tests"
    )
    if in_ci():
        pytest.fail(f"CI must run the browser tests: {why}", pytrace=False)
    if len(missing) == 1:  # half an install is a broken one, not an absent one
        pytest.fail(why, pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # Selenium Manager would look for (and download) a driver; it is given one and stays offline.
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _lines_of(stream: IO[str], into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


@dataclass
class ConsoleServer:
    """A running `lf-bulk console`: where it listens, its token and the home it works in."""

    process: subprocess.Popen[str]
    url: str  # the printed URL, token included
    base_url: str
    token: str
    home: Path
    config: Path
    log: Path
    cookie: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def http(self) -> httpx.Client:
        """An HTTP client signed in with the token (its cookie set), for downloads and checks."""
        client = http_client(base_url=self.base_url, timeout=30.0)
        client.get(self.url)
        return client

    def lf_bulk(self, *args: str) -> list[str]:
        """The command line of `lf-bulk` on the console's home and sandbox (same settings)."""
        return [sys.executable, "-m", "jobs", "--home", str(self.home), "--env", "sandbox",
                "--config", str(self.config), *args]  # fmt: skip

    def sandbox_state(self) -> SandboxState:
        return SandboxState(self.home / "sandbox.db")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def console_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV}
    env["LF_BULK_SANDBOX_FAULTS"] = FAST_SANDBOX
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def start_console(home: Path, *, env: dict[str, str] | None = None) -> ConsoleServer:
    """`lf-bulk console` on a free loopback port, over `home`; returns once it printed its URL."""
    config = home.parent / f"{home.name}-config.toml"
    config.write_text(FAST_CLIENT_CONFIG)
    log = home.parent / f"{home.name}-console.log"
    environment = console_env(env)
    command = [sys.executable, "-m", "jobs", "--home", str(home), "--env", "sandbox",
               "--config", str(config), "--no-progress", "console", "--port", str(free_port())]  # fmt: skip
    with log.open("w") as stderr:
        process = subprocess.Popen(
            command, cwd=home.parent, env=environment, stdout=subprocess.PIPE, stderr=stderr,
            text=True, start_new_session=True,
        )  # fmt: skip
    printed: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    threading.Thread(target=_lines_of, args=(process.stdout, printed), daemon=True).start()
    deadline = time.monotonic() + START_SECONDS
    seen: list[str] = []
    while time.monotonic() < deadline:
        try:
            line = printed.get(timeout=0.1)
        except queue.Empty:
            if process.poll() is not None:
                break
            continue
        seen.append(line)
        match = CONSOLE_URL.search(line)
        if match:
            url = match.group(0)
            base = url.split("/?", 1)[0]
            server = ConsoleServer(process, url, base, match["token"], home, config, log,
                                   env=environment)  # fmt: skip
            _wait_until_serving(server)
            return server
    process.kill()
    process.wait()
    raise AssertionError(
        f"lf-bulk console printed no URL within {START_SECONDS:g}s (exit {process.poll()}); "
        f"stdout: {''.join(seen)!r}; stderr: {log.read_text()[-2000:]!r}"
    )


def _wait_until_serving(server: ConsoleServer) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        try:
            http_get(server.base_url + "/static/progress.js", timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"the console at {server.base_url} does not answer")


@pytest.fixture(scope="session")
def console_server(
    tmp_path_factory: pytest.TempPathFactory, fresh_world: Callable[[Path, int], Path]
) -> Iterator[ConsoleServer]:
    folder = tmp_path_factory.mktemp("console")
    home = folder / "home"
    home.mkdir(mode=0o700)
    fresh_world(home / "sandbox.db", CONSOLE_SIMS)
    server = start_console(home)
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Console:
    """The browser on one console, signed in."""

    driver: WebDriver
    server: ConsoleServer

    def go(self, path: str) -> None:
        self.driver.get(self.server.base_url + path)


def sign_in(driver: WebDriver, server: ConsoleServer) -> None:
    """Open the printed URL once (the console sets its cookie); later, give the browser that cookie.

    One browser serves every console of the session and cookies ignore the port, so each test
    starts with an empty cookie jar and this console's cookie only.
    """
    driver.delete_all_cookies()
    if not server.cookie:
        driver.get(server.url)
        cookie = driver.get_cookie(COOKIE)
        assert cookie, f"opening {server.base_url}/?token=... set no {COOKIE} cookie"
        server.cookie = cookie["value"]
        return
    driver.get(server.base_url + "/static/progress.js")
    driver.add_cookie(
        {
            "name": COOKIE,
            "value": server.cookie,
            "path": "/",
            "httpOnly": True,
            "sameSite": "Strict",
        }
    )


@pytest.fixture
def console(browser: WebDriver, console_server: ConsoleServer) -> Console:
    sign_in(browser, console_server)
    return Console(browser, console_server)


@pytest.fixture
def shot(browser: WebDriver, request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """`shot("plan")`: the page as it is now, to e2e-screens/<test>-<name>.png."""
    E2E_SCREENS.mkdir(parents=True, exist_ok=True)
    test = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name).strip("-")[:60]

    def take(name: str) -> Path:
        path = E2E_SCREENS / f"{test}-{re.sub(r'[^A-Za-z0-9_-]+', '-', name)}.png"
        # The whole page, not only the window (tall tables are reviewed too), in one call.
        height = browser.execute_script("return document.documentElement.scrollHeight")
        picture = browser.execute_cdp_cmd(  # type: ignore[attr-defined]
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {
                    "x": 0,
                    "y": 0,
                    "width": 1280,
                    "height": min(int(height), 6000),
                    "scale": 1,
                },
            },
        )
        path.write_bytes(base64.b64decode(picture["data"]))
        return path

    return take
