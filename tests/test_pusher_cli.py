"""`lf-bulk sandbox serve --push-url URL --push-key-id ID`: the key only from LF_BULK_NOTIFY_KEY,
clear usage errors, and a served sandbox whose orders reach a real receiver."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from notifyhelp import KEY_HEX, KEY_ID
from pusherhelp import create_orders, receiver_keys, store_home, wait_for

from jobs.cli import cli
from lf_bulk.notify import export
from lf_bulk.notify.receiver import running_receiver
from lf_bulk.sandbox.faults import FaultSpec
from lf_bulk.sandbox.server import SandboxServer
from lf_bulk.sandbox.state import SandboxState

ROOT = Path(__file__).resolve().parent.parent


def serve_args(tmp_path: Path, *extra: str) -> list[str]:
    return ["--home", str(tmp_path / "h"), "sandbox", "serve", "--port", "0",
            "--state", str(tmp_path / "s.db"), *extra]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "env", "message"),
    [
        (["--push-url", "http://127.0.0.1:1/"], {"LF_BULK_NOTIFY_KEY": KEY_HEX}, "both"),
        (["--push-key-id", KEY_ID], {"LF_BULK_NOTIFY_KEY": KEY_HEX}, "both"),
        (["--push-url", "http://127.0.0.1:1/", "--push-key-id", KEY_ID], {}, "LF_BULK_NOTIFY_KEY"),
        (
            ["--push-url", "http://example.com/", "--push-key-id", KEY_ID],
            {"LF_BULK_NOTIFY_KEY": KEY_HEX},
            "plain http",
        ),
        (
            ["--push-url", "http://127.0.0.1:1/", "--push-key-id", "bad id"],
            {"LF_BULK_NOTIFY_KEY": KEY_HEX},
            "not an id",
        ),
        (
            ["--push-url", "http://127.0.0.1:1/", "--push-key-id", KEY_ID],
            {"LF_BULK_NOTIFY_KEY": "not-hex-secret-value"},
            "not hexadecimal",
        ),
    ],
)
def test_push_options_are_checked_before_anything_is_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: list[str], env: dict[str, str],
    message: str,
) -> None:  # fmt: skip
    monkeypatch.delenv("LF_BULK_NOTIFY_KEY", raising=False)
    result = CliRunner().invoke(cli, serve_args(tmp_path, *extra), env=env)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert "not-hex-secret-value" not in result.output
    assert not (tmp_path / "s.db").exists()  # nothing was started


def test_a_served_sandbox_pushes_every_order_to_notify_serve(
    tmp_path: Path, fresh_world: Callable[[Path, int], Path]
) -> None:
    state_path = fresh_world(tmp_path / "s.db", 2_000)
    home = store_home(tmp_path)
    with running_receiver(home, receiver_keys()) as receiver_url:
        extra = ["--push-url", receiver_url, "--push-key-id", KEY_ID,
                 "--faults", "rate=1000,concurrency=50,push_dup=1,push_time_scale=0.0001"]  # fmt: skip
        process = subprocess.Popen(
            [sys.executable, "-m", "jobs", *serve_args(tmp_path, *extra)],
            stderr=subprocess.PIPE, text=True, cwd=tmp_path,
            env={**os.environ, "LF_BULK_NOTIFY_KEY": KEY_HEX},
        )  # fmt: skip
        lines: list[str] = []
        try:
            assert process.stderr is not None
            deadline = time.monotonic() + 20
            while not any("listening on" in line for line in lines):
                assert time.monotonic() < deadline, lines
                lines.append(process.stderr.readline())
            found = re.search(r"listening on (http://\S+)", lines[-1])
            assert found, lines
            with SandboxState(state_path) as state:
                server = SandboxServer(found[1], state, FaultSpec(), "127.0.0.1", 0)
                totals = create_orders(server, 4)
            wait_for(
                lambda: (
                    len(export.load(home).pushes) == 4 and export.load(home).deliveries == 8
                ),  # push_dup=1: each one sent twice
                what="4 orders, each pushed twice",
            )
        finally:
            process.terminate()
            process.wait(timeout=10)
            assert process.stderr is not None
            lines.append(process.stderr.read())
    shown = "".join(lines)
    assert f"pushing Recharge Success events to {receiver_url} (key id {KEY_ID})" in shown
    assert KEY_HEX not in shown
    assert {t.currency: t.amount for t in export.load(home).totals} == totals
