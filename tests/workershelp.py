"""Helpers for the worker tests: worker processes, waiting, and the sandbox's own count of the
429s it answered (the PostgreSQL store comes from conftest's `pg_url`)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from lf_bulk.sandbox import app as sandbox_app


def start_worker(
    base: Sequence[str], report_root: Path, env: dict[str, str], log: Path, *extra: str
) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "jobs", *base, "worker", "--heartbeat", "1",
             "--report-dir", str(report_root), *extra],
            env=env, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip


def stop(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class ThrottleCount:
    """How many 429s (rate or in-flight limit, by default) the in-process sandbox answered."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def install(self, monkeypatch: pytest.MonkeyPatch, reply: str = "_throttled") -> ThrottleCount:
        """Count the sandbox's `reply` answers (`_quota_spent`: the 429s for the daily quota)."""
        original = getattr(sandbox_app, reply)

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.count += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(sandbox_app, reply, counted)
        return self
