"""The console in tests without a browser: an authenticated Starlette TestClient.

    with console_client(tmp_path) as client:      # lifespan: the sandbox stops at the end
        page = client.get("/")
        client.post("/runs/R/cancel", data={"csrf_token": csrf_of(client)})

The console runs on the embedded sandbox of a fresh home (`tmp_path / "home"`) unless
`settings` is given; requests come from http://127.0.0.1:8770 (the Host check passes).
"""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path
from typing import Any

with warnings.catch_warnings():
    # Starlette 1.x would rather have httpx2; the TestClient works the same with httpx.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from lf_bulk import runs
from lf_bulk.console.app import ConsoleConfig, create_console
from lf_bulk.console.security import COOKIE_NAME, csrf_token_for
from lf_bulk.console.state import ConsoleState
from lf_bulk.sandbox.server import SandboxServer
from lf_bulk.sandbox.state import SandboxState
from lf_bulk.settings import SANDBOX_PARTNER_CODE, Settings

BASE_URL = "http://127.0.0.1:8770"
# Quick operations, and the contract's rate limits far away: no test waits on pacing.
CONSOLE_FAULTS = "async=50-150ms,rate=400,concurrency=8"
TEST_TOKEN = "test-token-" + "x" * 32


CONSOLE_SIMS = 2_000


def seeded_home(home: Path, sims: int = CONSOLE_SIMS) -> Path:
    """`home` (owner-only) with a small embedded-sandbox world already seeded: seeding the
    default world (150,000 SIMs) would take seconds; group sizes scale down with the world."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    SandboxState(home / "sandbox.db", sims=sims).close()
    return home


def console_settings(home: Path, *, faults: str = CONSOLE_FAULTS, **kw: Any) -> Settings:
    """Settings of an embedded-sandbox console whose home is `home` (seeded small)."""
    seeded_home(home)
    values: dict[str, Any] = {"rate_per_second": 200.0, "max_in_flight": 4, **kw}
    return Settings(env="sandbox", home=home, sandbox_faults=faults, **values)


def console_config(tmp_path: Path, *, settings: Settings | None = None, **kw: Any) -> ConsoleConfig:
    values: dict[str, Any] = {"token": TEST_TOKEN, **kw}
    return ConsoleConfig(settings=settings or console_settings(tmp_path / "home"), **values)


def anonymous_client(tmp_path: Path, *, settings: Settings | None = None, **kw: Any) -> TestClient:
    """A client of a new console that has not opened the token URL (no cookie)."""
    app = create_console(console_config(tmp_path, settings=settings, **kw))
    return TestClient(app, base_url=BASE_URL, follow_redirects=False)


def console_client(tmp_path: Path, *, settings: Settings | None = None, **kw: Any) -> TestClient:
    """A client of a new console that opened the token URL: its cookie is set."""
    client = anonymous_client(tmp_path, settings=settings, **kw)
    token = client.app.state.console.config.token
    answer = client.get(f"/?token={token}")
    assert answer.status_code == 303, answer.text
    assert client.cookies.get(COOKIE_NAME), "the token URL set no cookie"
    return client


def settings_over(server: SandboxServer, home: Path) -> Settings:
    """Settings for a console over a served sandbox (`sandbox`/`make_sandbox`), paced fast."""
    return Settings(
        env="uat", base_url=server.base_url, partner_code=SANDBOX_PARTNER_CODE, home=home,
        rate_per_second=200, max_in_flight=4,
    )  # fmt: skip


def console_over(server: SandboxServer, tmp_path: Path) -> TestClient:
    """A signed-in console over a served sandbox, its reports in `tmp_path/reports`."""
    settings = settings_over(server, tmp_path / "home")
    return console_client(tmp_path, settings=settings, report_dir=tmp_path / "reports")


def wait_for_run(client: TestClient, run_id: str, timeout: float = 60) -> dict[str, object]:
    """The run as `runs show` shows it, once the console's job driving it has ended."""
    home = state_of(client).settings.home
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        live = state_of(client).runner.live(run_id)
        if live is not None and live.done:
            break
        time.sleep(0.05)
    with runs.open_journal(home) as journal:
        return runs.details(journal, run_id, home)


def state_of(client: TestClient) -> ConsoleState:
    state = client.app.state.console  # type: ignore[attr-defined]
    assert isinstance(state, ConsoleState)
    return state


def csrf_of(client: TestClient) -> str:
    """The CSRF token the console's forms carry for this client's cookie."""
    return csrf_token_for(state_of(client).csrf_secret, client.cookies.get(COOKIE_NAME) or "")


def csrf_in(html: str) -> str:
    """The CSRF token written in a page's first form (to check a page really carries it)."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)
