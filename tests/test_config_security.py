"""URLs, TLS policy, retries of permanent errors, and the credential kept out of every message."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import random
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import uvicorn

from jobs.context import configure_logging
from lf_bulk import errors
from lf_bulk.client import LinksfieldClient
from lf_bulk.iccid import with_check_digit
from lf_bulk.redaction import forget_secrets, mask, redact, register_secret
from lf_bulk.retrying import RetryPolicy, call_with_retries
from lf_bulk.sandbox.seed import PILOT_GROUP
from lf_bulk.sandbox.server import SandboxServer

from clihelp import FAST_CLIENT, expect, invoke, write_list

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")

SECRET_CODE = "PSECRET9"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("LF_BULK_") or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    home = tmp_path / "user"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    yield
    forget_secrets()


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


# ---------------------------------------------------------------- issue 9.13: permanent errors


@pytest.mark.parametrize("url", ["not a url", "ftp://example.com/x", "http://", "https:///path"])
def test_a_malformed_base_url_is_rejected_at_start(url: str, tmp_path: Path) -> None:
    started = time.monotonic()
    args = ["--env", "uat", "--partner-code", "P000270", "--base-url", url]
    result = expect(invoke([*args, "--home", str(tmp_path), "groups", "list"]), 2)
    assert time.monotonic() - started < 2
    assert "base URL" in result.stderr and "--base-url" in result.stderr


def test_doctor_gives_up_quickly_on_a_closed_port(tmp_path: Path) -> None:
    started = time.monotonic()
    url = f"http://127.0.0.1:{closed_port()}"
    args = ["--env", "uat", "--partner-code", "P000270", "--base-url", url]
    result = expect(invoke([*args, "--home", str(tmp_path), "doctor"]), 1)
    assert time.monotonic() - started < 6
    assert "FAIL reachable" in result.stdout and "refused" in result.stdout


def test_connection_refused_is_retried_briefly_not_for_the_whole_deadline() -> None:
    slept: list[float] = []
    calls = 0

    def refused() -> None:
        nonlocal calls
        calls += 1
        raise errors.ConnectionRefused("127.0.0.1:9: connection refused")

    policy = RetryPolicy(max_attempts=50, deadline_seconds=600)
    with pytest.raises(errors.ConnectionRefused):
        call_with_retries(refused, policy, sleep=slept.append, rng=random.Random(1))
    assert 1 < calls <= policy.refused_max_attempts
    assert sum(slept) <= policy.refused_deadline_seconds


def test_a_retry_is_announced_only_before_a_sleep_that_happens() -> None:
    slept: list[float] = []
    announced: list[float] = []

    def refused() -> None:
        raise errors.ConnectionRefused("refused")

    with pytest.raises(errors.ConnectionRefused):
        call_with_retries(
            refused,
            RetryPolicy(),
            sleep=slept.append,
            on_retry=lambda _error, wait: announced.append(wait),
            rng=random.Random(3),
        )
    assert announced == slept


def test_other_transport_errors_still_use_the_full_policy() -> None:
    slept: list[float] = []

    def reset() -> None:
        raise errors.TransportError("connection reset")

    policy = RetryPolicy(max_attempts=12, deadline_seconds=600)
    with pytest.raises(errors.TransportError):
        call_with_retries(reset, policy, sleep=slept.append, rng=random.Random(1))
    assert len(slept) == 11


def test_the_client_reports_a_closed_port_as_connection_refused() -> None:
    slept: list[float] = []
    url = f"http://127.0.0.1:{closed_port()}"
    with (
        LinksfieldClient(url, "P000270", sleep=slept.append) as client,
        pytest.raises(errors.ConnectionRefused, match="refused"),
    ):
        client.list_groups()
    assert 0 < len(slept) < RetryPolicy().refused_max_attempts


@pytest.mark.parametrize("url", ["not a url", "ftp://example.com"])
def test_the_client_never_retries_a_url_it_cannot_use(url: str) -> None:
    slept: list[float] = []
    with (
        LinksfieldClient(url, "P000270", sleep=slept.append) as client,
        pytest.raises(errors.InvalidSetting, match="not a usable"),
    ):
        client.list_groups()
    assert slept == []


# ---------------------------------------------------------------- issue 10.2: http and userinfo


def test_prod_refuses_plain_http_from_a_flag(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    args = ["--env", "prod", "--partner-code", "P000270", "--base-url", url]
    result = expect(invoke([*args, "--home", str(tmp_path), "groups", "list"]), 1)
    assert "https" in result.stderr and "--allow-insecure-http" in result.stderr


def test_prod_refuses_plain_http_from_a_config(tmp_path: Path) -> None:
    config = tmp_path / "lf.toml"
    config.write_text('env = "prod"\npartner_code = "P1"\nbase_url = "http://127.0.0.1:9"\n')
    result = expect(invoke(["--config", str(config), "--home", str(tmp_path), "doctor"]), 1)
    assert "https" in result.stderr and str(config) in result.stderr
    assert "ok" not in result.stdout


def test_prod_over_http_only_with_the_command_line_opt_in(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    args = ["--env", "prod", "--partner-code", "P000270", "--base-url", sandbox.base_url]
    result = invoke([*args, "--allow-insecure-http", "--home", str(tmp_path), "groups", "list"])
    expect(result, 0)
    assert "plain http" in result.stderr  # a warning, every time


def test_uat_refuses_plain_http_to_another_machine(tmp_path: Path) -> None:
    args = ["--env", "uat", "--partner-code", "P1", "--base-url", "http://example.invalid/x"]
    result = expect(invoke([*args, "--home", str(tmp_path), "groups", "list"]), 1)
    assert "https" in result.stderr


def test_userinfo_in_the_base_url_is_never_shown_or_stored(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    url = sandbox.base_url.replace("http://", "http://alice:hunter2pw@")
    args = ["--env", "uat", "--partner-code", "P000270", "--base-url", url, "--no-progress"]
    home = tmp_path / "h"
    doctor = expect(invoke([*args, "--home", str(home), "doctor"]), 0)
    sims = write_list(tmp_path / "s.csv", sandbox.state.ungrouped_sims(2))
    add = [*args, *FAST_CLIENT, "--home", str(home), "sims", "add", PILOT_GROUP, str(sims)]
    added = expect(invoke([*add, "--report-dir", str(tmp_path / "r")]), 0)
    listed = json.loads(
        invoke([*args, "--home", str(home), "runs", "list", "--format", "json"]).stdout
    )
    shown = invoke([*args, "--home", str(home), "runs", "show", listed[0]["run_id"]])
    for text in (doctor.output, added.output, shown.output):
        assert "hunter2pw" not in text and "alice" not in text, text
    assert b"hunter2pw" not in (home / "journal.db").read_bytes()
    closed = f"http://alice:hunter2pw@127.0.0.1:{closed_port()}"
    failed = invoke(
        ["--env", "uat", "--partner-code", "P1", "--base-url", closed, "groups", "list"]
    )
    assert failed.exit_code == 1 and "hunter2pw" not in failed.output


# ---------------------------------------------------------------- issue 10.3: the credential


class EchoServer:
    """Answers every request with an error envelope that quotes the request's parameters back."""

    def __init__(self, code: str, *, known_group: str = "") -> None:
        self.code = code
        self.known_group = known_group  # listed by the groups call, so a job gets to its batches

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        params: dict[str, Any] = {
            k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()
        }
        if body:
            params.update(json.loads(body))
        echo = f"bad request partnerCode={params.get('partnerCode')} sign={params.get('sign')}"
        payload = json.dumps({"code": self.code, "message": echo, "data": None}).encode()
        if self.known_group and scope["path"].endswith("/bundle-groups/bundles"):
            group = {"group_id": self.known_group, "group_name": "g", "sim_count": 0, "bundles": []}
            payload = json.dumps({"code": "0000", "message": "success", "data": [group]}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})


@pytest.fixture(params=[""], ids=["groups-echo"])
def echo_server(request: pytest.FixtureRequest) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = EchoServer("1001", known_group=request.param)
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(5)


def test_an_api_error_echoing_the_credential_is_redacted_everywhere(
    echo_server: str, tmp_path: Path
) -> None:
    args = ["--env", "uat", "--partner-code", SECRET_CODE, "--base-url", echo_server]
    for quiet in ([], ["-q"], ["-vv"]):
        result = expect(invoke([*args, *quiet, "--home", str(tmp_path), "groups", "list"]), 1)
        assert "bad request" in result.stderr
        assert SECRET_CODE not in result.output
        assert "sign=None" not in result.stderr and "sign=***" in result.stderr


@pytest.mark.parametrize("echo_server", ["G1"], ids=["groups-known"], indirect=True)
def test_a_run_whose_batches_fail_with_an_echo_stores_no_credential(
    echo_server: str, tmp_path: Path
) -> None:
    home = tmp_path / "h"
    sims = write_list(tmp_path / "s.csv", [with_check_digit("8986000000000000000")])
    args = ["--env", "uat", "--partner-code", SECRET_CODE, "--base-url", echo_server]
    add = [
        *args,
        *FAST_CLIENT,
        "--no-progress",
        "--home",
        str(home),
        "sims",
        "add",
        "G1",
        str(sims),
    ]
    result = invoke([*add, "--report-dir", str(tmp_path / "r")])
    assert result.exit_code in (1, 3), result.output
    assert SECRET_CODE not in result.output
    with sqlite3.connect(home / "journal.db") as db:
        dump = "\n".join(db.iterdump())
    assert SECRET_CODE not in dump
    for report in (tmp_path / "r").iterdir():
        assert SECRET_CODE.encode() not in report.read_bytes(), report


def test_doctor_masks_the_code_to_its_first_character_and_length(
    echo_server: str, tmp_path: Path
) -> None:
    args = ["--env", "uat", "--partner-code", SECRET_CODE, "--base-url", echo_server]
    result = expect(invoke([*args, "--home", str(tmp_path), "doctor"]), 1)
    assert "P******* (8 chars)" in result.stdout
    assert SECRET_CODE not in result.output and "SECRET" not in result.output


def test_mask_shows_at_most_the_first_character_and_the_length() -> None:
    assert mask("P000270") == "P****** (7 chars)"
    assert mask("ab") == "** (2 chars)"
    assert mask("") == ""


def test_log_lines_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(2)
    register_secret(SECRET_CODE)
    logging.getLogger("lf_bulk.anything").warning("sent %s to the server", SECRET_CODE)
    logging.getLogger("jobs").error(f"inline {SECRET_CODE}")
    err = capsys.readouterr().err
    assert "sent *** to the server" in err and "inline ***" in err
    assert SECRET_CODE not in err


def test_redact_replaces_every_registered_secret_and_recent_signatures() -> None:
    register_secret(SECRET_CODE)
    register_secret("0123456789abcdef0123456789abcdef")
    text = f"code {SECRET_CODE}, sign 0123456789abcdef0123456789abcdef, other ffffffffffffffffffffffffffffffff"
    assert redact(text) == "code ***, sign ***, other ffffffffffffffffffffffffffffffff"


# ---------------------------------------------------------------- issue 10.6: SOCKS proxy


@pytest.mark.skipif(importlib.util.find_spec("socksio") is not None, reason="socksio installed")
def test_a_socks_proxy_without_socksio_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ALL_PROXY", "socks5://user:pw@127.0.0.1:1080")
    args = ["--env", "uat", "--partner-code", "P1", "--base-url", "https://example.invalid", "-q"]
    result = expect(invoke([*args, "--home", str(tmp_path), "groups", "list"]), 1)
    assert "ALL_PROXY" in result.stderr and "httpx[socks]" in result.stderr
    assert "pw@" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_nothing_printed_by_a_failed_start_carries_the_code(tmp_path: Path) -> None:
    args = ["--env", "prod", "--partner-code", SECRET_CODE, "--base-url", "http://x.example"]
    result = invoke([*args, "--home", str(tmp_path), "groups", "list"])
    assert result.exit_code == 1 and SECRET_CODE not in result.output


def test_the_journal_redacts_reasons_and_events_whatever_their_source(tmp_path: Path) -> None:
    from lf_bulk.journal import Journal, Outcome, PlannedItem

    register_secret(SECRET_CODE)
    journal = Journal(tmp_path / "journal.db")
    iccid = with_check_digit("8986000000000000000")
    item = PlannedItem(row=2, iccid=iccid, operation="add", group_id="G1")
    run_id = journal.create_run(
        kind="bulk", operation="add", group_id="G1", items=[item], batch_size=10
    )
    batch = journal.batches(run_id)[0].batch_id
    journal.mark_unsent(run_id, batch, f"refused for partner {SECRET_CODE}")
    outcome = Outcome("failed", "X", f"echo {SECRET_CODE}")
    journal.close_batch(
        run_id,
        batch,
        state="done",
        api_status="FAILED",
        outcomes={iccid: outcome},
        error=SECRET_CODE,
    )
    journal.close()
    with sqlite3.connect(tmp_path / "journal.db") as db:
        dump = "\n".join(db.iterdump())
    assert "refused for partner ***" in dump and "echo ***" in dump
    assert SECRET_CODE not in dump


def test_settings_never_show_the_credential_in_their_repr() -> None:
    from lf_bulk.settings import Settings

    settings = Settings(env="uat", base_url="https://u:pw9@h/x", partner_code=SECRET_CODE)
    assert SECRET_CODE not in repr(settings) and "pw9" not in repr(settings)
    assert settings.display_base_url == "https://h/x"
