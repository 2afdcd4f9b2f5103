"""A `sandbox serve` process on a free loopback port, for the benchmarks that run a job over HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LF_BULK = [sys.executable, "-m", "jobs"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the sandbox did not start on port {port}")


@contextmanager
def served_sandbox(state_path: Path, faults: str) -> Iterator[str]:
    """`lf-bulk sandbox serve` on `state_path` with `faults`; yields its base URL."""
    port = free_port()
    server = subprocess.Popen(
        [*LF_BULK, "sandbox", "serve", "--port", str(port), "--state", str(state_path),
         "--faults", faults],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait()
