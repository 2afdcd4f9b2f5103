"""Helpers for the worker tests: a database per test on a throwaway PostgreSQL cluster, worker
processes, and the sandbox's own count of the 429s it answered."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from lf_bulk.sandbox import app as sandbox_app

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def server_binaries() -> Path | None:
    if (PG_BIN / "initdb").exists():
        return PG_BIN
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _as_postgres(args: Sequence[str]) -> list[str]:
    # initdb refuses to run as root: the cluster is the `postgres` user's.
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)


@contextmanager
def throwaway_cluster(folder: Path) -> Iterator[str]:
    """A PostgreSQL server on a Unix socket in `folder` (trust auth, fsync off); its URL."""
    binaries = server_binaries()
    if binaries is None:
        if os.environ.get("CI"):
            raise AssertionError("CI needs PostgreSQL's server binaries (the postgresql package)")
        pytest.skip("no PostgreSQL server binaries (initdb): install the postgresql package")
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o777)
    data, socket_dir = folder / "data", folder / "socket"
    socket_dir.mkdir()
    socket_dir.chmod(0o777)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    quiet: dict[str, Any] = {"check": True, "capture_output": True}
    subprocess.run(_as_postgres([str(binaries / "initdb"), "-D", str(data), "-A", "trust",
                                 "-U", "postgres", "--no-sync"]), **quiet)  # fmt: skip
    options = f"-c listen_addresses='' -k {socket_dir} -c fsync=off -c max_connections=200"
    subprocess.run(_as_postgres([str(binaries / "pg_ctl"), "-D", str(data), "-o", options,
                                 "-l", str(folder / "log"), "-w", "start"]), **quiet)  # fmt: skip
    try:
        yield f"postgresql://postgres@/postgres?host={socket_dir}"
    finally:
        subprocess.run(
            _as_postgres([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
        )


def fresh_database(server_url: str) -> str:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    name = "w" + uuid.uuid4().hex[:12]
    with psycopg.connect(server_url, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    parts = conninfo_to_dict(server_url)
    user, host = parts.get("user", "postgres"), str(parts.get("host", ""))
    if host.startswith("/"):
        return f"postgresql://{user}@/{name}?host={host}"
    return f"postgresql://{user}@{host}:{parts.get('port', 5432)}/{name}"


def start_worker(
    base: Sequence[str], report_root: Path, env: dict[str, str], log: Path, *extra: str
) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "jobs", *base, "worker", "--heartbeat", "0.3",
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
    """How many 429s (rate or in-flight limit) the in-process sandbox answered."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> ThrottleCount:
        original = sandbox_app._throttled

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.count += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(sandbox_app, "_throttled", counted)
        return self
