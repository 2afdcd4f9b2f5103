"""`lf-bulk console`: who may reach it (loopback, or --allow-remote with TLS; exit 2 otherwise),
the URL with the token printed once on stdout and nowhere else, a real server that serves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from consolehelp import console_config, seeded_home
from httphelp import http_client, http_get

from lf_bulk.console import server
from lf_bulk.console.app import ConsoleConfig

from clihelp import expect, invoke


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[ConsoleConfig]:
    """`serve` replaced by one that announces its URL and returns at once."""
    configs: list[ConsoleConfig] = []

    def fake_serve(config: ConsoleConfig, **kw: Any) -> None:
        configs.append(config)
        kw["on_ready"](server.console_url(config.host, 8770, config.token, tls=config.tls))

    monkeypatch.setattr(server, "serve", fake_serve)
    return configs


def console_args(tmp_path: Path, *args: str) -> list[str]:
    return ["--home", str(tmp_path / "home"), "console", *args]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--host", "0.0.0.0"], "--allow-remote"),
        (["--host", "192.0.2.10", "--allow-remote"], "needs TLS"),
        (["--host", "::"], "--allow-remote"),
    ],
    ids=["any-address", "remote-without-tls", "any-ipv6"],
)
def test_a_reachable_address_without_consent_and_tls_is_a_usage_error(
    tmp_path: Path, served: list[ConsoleConfig], args: list[str], says: str
) -> None:
    result = expect(invoke(console_args(tmp_path, *args)), 2)
    assert says in result.stderr
    assert not served and result.stdout == ""


def test_a_certificate_without_its_key_is_a_usage_error(
    tmp_path: Path, served: list[ConsoleConfig]
) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("not used")
    result = expect(invoke(console_args(tmp_path, "--certfile", str(cert))), 2)
    assert "--keyfile" in result.stderr and not served


def test_remote_behind_a_tls_proxy_is_allowed_and_its_cookie_is_secure(
    tmp_path: Path, served: list[ConsoleConfig]
) -> None:
    args = ["--host", "0.0.0.0", "--allow-remote", "--behind-tls-proxy"]
    result = expect(invoke(console_args(tmp_path, *args)), 0)
    [config] = served
    assert config.host == "0.0.0.0" and config.tls
    assert result.stdout.count(config.token) == 1
    assert config.token not in result.stderr


def test_loopback_prints_the_url_with_the_token_once_on_stdout(
    tmp_path: Path, served: list[ConsoleConfig]
) -> None:
    reports = tmp_path / "reports"
    result = expect(
        invoke(console_args(tmp_path, "--port", "9000", "--report-dir", str(reports))), 0
    )
    [config] = served
    assert config.host == "127.0.0.1" and not config.tls and config.port == 9000
    assert config.report_dir == reports
    assert result.stdout.strip() == f"http://127.0.0.1:8770/?token={config.token}"
    assert len(config.token) >= 40  # secrets.token_urlsafe(32)
    assert "sandbox" in result.stderr  # the embedded sandbox says so


def test_a_console_in_a_thread_serves_over_a_real_socket(tmp_path: Path) -> None:
    config = console_config(tmp_path, port=0)
    with server.running_console(config) as url, http_client(timeout=20) as browser:
        assert url.startswith("http://127.0.0.1:") and url.endswith(f"/?token={config.token}")
        answer = browser.get(url)
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        page = browser.get(url.split("?")[0] + "runs")
        assert page.status_code == 200 and 'id="runs"' in page.text
        assert http_get(url.split("?")[0] + "runs", timeout=20).status_code == 401


@pytest.mark.slow  # a fresh interpreter, the sandbox and a shutdown: ~5 s (fast variant above)
def test_the_console_serves_over_a_real_socket_and_never_logs_its_token(tmp_path: Path) -> None:
    home = seeded_home(tmp_path / "home")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "jobs", "-vv", "--home", str(home), "console", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and "/?token=" in url, url
        token = url.split("token=", 1)[1]
        with http_client(follow_redirects=True, timeout=20) as browser:
            home_page = browser.get(url)
            assert home_page.status_code == 200
            assert str(home_page.url).endswith("/")  # the token left the address bar
            assert "G1000001" in home_page.text
            assert browser.get(url.split("?")[0] + "runs").status_code == 200
        with http_client(timeout=20) as stranger:
            assert stranger.get(url.split("?")[0]).status_code == 401
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    assert token not in out and token not in err
    assert "console stopped" in err


PROBE = """
import json, sys
from jobs.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})), file=sys.stderr)
"""


def test_console_help_loads_neither_starlette_nor_jinja2() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "console", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "--allow-remote" in done.stdout
    loaded = set(json.loads(done.stderr.strip().splitlines()[-1]))
    assert "jobs" in loaded and "click" in loaded
    assert loaded.isdisjoint({"starlette", "jinja2", "uvicorn", "httpx", "pandas"}), loaded


def test_the_embedded_sandbox_is_started_once_and_stopped_with_the_console(
    tmp_path: Path,
) -> None:
    from consolehelp import console_client, state_of

    with console_client(tmp_path) as client:
        state = state_of(client)
        assert client.get("/").status_code == 200
        with state.job_session() as first, state.job_session() as second:
            assert first.client is not second.client  # each job its own client (quota flags)
            assert first.base_url == second.base_url == state.session().base_url
        assert client.get("/").status_code == 200
        url = state.session().base_url
        assert http_get(url, timeout=5).status_code in (200, 404)
    with pytest.raises(httpx.TransportError):
        http_get(url, timeout=2)


def test_each_job_gets_a_fresh_report_folder_under_the_report_root(tmp_path: Path) -> None:
    from consolehelp import console_client, state_of

    state = state_of(console_client(tmp_path))
    assert state.report_root == state.settings.home / "console" / "reports"
    first, second = state.new_report_dir("remove G1"), state.new_report_dir("remove G1")
    assert first != second and first.parent == second.parent == state.report_root.absolute()
    assert first.name.startswith("console-") and "remove-G1" in first.name
    assert (
        state_of(console_client(tmp_path, report_dir=tmp_path / "r")).report_root == tmp_path / "r"
    )
