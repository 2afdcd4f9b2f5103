"""Secrets and customer data: logs, reports, file modes, TLS."""

from __future__ import annotations

import re
import socket
import ssl
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette

from lf_bulk.sandbox import server as sandbox_server
from lf_bulk.sandbox.seed import PARTNER, PILOT_GROUP

from clihelp import FAST_SERVER, base_args, expect, invoke, write_list
from conftest import MakeSandbox

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")

SIGNATURE = re.compile(r"\b[0-9a-f]{32}\b")


def test_partner_code_and_signatures_stay_out_of_logs_and_reports(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    server = make_sandbox(f"{FAST_SERVER},5xx=0.3,429=0.2,seed=9")
    file = write_list(tmp_path / "s.csv", server.state.ungrouped_sims(100))
    args = ["--env", "uat", "--partner-code", PARTNER, *base_args(tmp_path / "h", server.base_url)]
    result = expect(
        invoke(
            [
                "-v",
                *args,
                "sims",
                "add",
                PILOT_GROUP,
                str(file),
                "--report-dir",
                str(tmp_path / "r"),
            ]
        ),
        0,
    )
    assert "retrying in" in result.stderr, "no request was retried: the retry logs went unchecked"
    logged = result.stderr + result.stdout
    assert PARTNER not in logged
    request_ids = {
        line.split(",")[-1] for line in (tmp_path / "r" / "items.csv").read_text().splitlines()[1:]
    }
    signatures = set(SIGNATURE.findall(logged)) - request_ids
    assert not signatures, f"something like a signature was logged: {signatures}"
    for report in (tmp_path / "r").iterdir():
        assert PARTNER.encode() not in report.read_bytes(), report


def test_verbose_logs_name_paths_but_not_secrets(make_sandbox: MakeSandbox, tmp_path: Path) -> None:
    server = make_sandbox("5xx=0.5,seed=2")
    args = ["-vv", "--env", "uat", "--partner-code", PARTNER, "--base-url", server.base_url]
    result = expect(invoke([*args, "--home", str(tmp_path), "groups", "list"]), 0)
    assert "/mall/bundle-groups/bundles" in result.stderr
    assert PARTNER not in result.stderr
    assert "sign=" not in result.stderr


def test_formula_like_input_is_neutralised_in_reports(sandbox, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    good = sandbox.state.ungrouped_sims(1)
    file = tmp_path / "f.csv"
    file.write_text("iccid\n" + good[0] + '\n=HYPERLINK("http://x")\n+44123\n@SUM(A1)\n')
    args = [*base_args(tmp_path / "h", sandbox.base_url), "sims", "add", PILOT_GROUP, str(file)]
    expect(invoke([*args, "--skip-invalid", "--report-dir", str(tmp_path / "r")]), 0)
    text = (tmp_path / "r" / "items.csv").read_text()
    for line in text.splitlines()[1:]:
        cell = line.split(",")[1].strip('"')
        assert not cell.startswith(("=", "+", "-", "@")), line


def test_journal_and_sandbox_state_are_owner_only(sandbox, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The in-process sandbox creates its state file as a user's run would, in a small world:
    # seeding the default 150,000 SIMs would take seconds and prove nothing more about modes.
    seeded = sandbox_server.open_state
    monkeypatch.setattr(
        sandbox_server, "open_state", lambda path, faults, sims=None: seeded(path, faults, 500)
    )
    home = tmp_path / "home"
    expect(invoke(["--home", str(home), "--no-progress", "groups", "list"]), 0)
    file = write_list(tmp_path / "s.csv", sandbox.state.ungrouped_sims(1))
    args = [*base_args(home, sandbox.base_url), "sims", "add", PILOT_GROUP, str(file)]
    expect(invoke([*args, "--report-dir", str(tmp_path / "r")]), 0)
    for name in ("sandbox.db", "journal.db"):
        mode = stat.S_IMODE((home / name).stat().st_mode)
        assert mode == 0o600, f"{name} is {oct(mode)}"


@pytest.fixture
def self_signed_https(tmp_path: Path) -> Iterator[str]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    hits: list[float] = []

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http":
            hits.append(time.monotonic())
        await Starlette()(scope, receive, send)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, ssl_certfile=str(cert), ssl_keyfile=str(key), log_level="critical")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)
    assert not hits, "a request got past TLS verification"


def test_certificate_failure_is_a_clear_error_not_a_retry_loop(
    self_signed_https: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    args = ["--env", "prod", "--partner-code", "P1", "--base-url", self_signed_https]
    result = expect(invoke([*args, "--home", str(tmp_path), "groups", "list"]), 1)
    assert time.monotonic() - started < 5
    assert "certificate" in result.stderr and "could not be verified" in result.stderr
    assert ssl.OPENSSL_VERSION  # the check above ran through the real TLS stack
