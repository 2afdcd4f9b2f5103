"""The look-up figure of `make bench`: `sims status` of N SIMs against its floor.

A look-up costs one request per call and the API allows 10 a second, so the floor of a status run
is (requests sent) / rate; everything above it is ours. Run as a user would: `sandbox serve` in
its own process (50 ms latency, 10 req/s, 3 at once), `lf-bulk sims status FILE` against it.
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RATE = 10.0
SERVER_FAULTS = f"latency=50ms,rate={int(RATE)},concurrency=3"
_SENT = re.compile(r"DEBUG lf_bulk\.client: POST (/singleVerify|/singleQueryOrder|/queryAuto\w+)")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, timeout: float = 120) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the sandbox did not start on port {port}")


def status_run(directory: Path, sims: int) -> dict[str, Any]:
    """`sims status` of `sims` SIMs of the demo group, twice: fresh, then within --max-age."""
    from lf_bulk.sandbox.seed import DEMO_GROUP
    from lf_bulk.sandbox.state import SandboxState

    state_path = directory / f"status-{time.monotonic_ns()}.db"
    state = SandboxState(state_path)
    wanted = state.members(DEMO_GROUP)[:sims]
    state.close()
    listing = directory / "status.csv"
    listing.write_text("iccid\n" + "\n".join(wanted) + "\n")
    port = _free_port()
    lf = [sys.executable, "-m", "jobs"]
    server = subprocess.Popen(
        [*lf, "sandbox", "serve", "--port", str(port), "--state", str(state_path),
         "--faults", SERVER_FAULTS],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    command = [
        *lf, "-vv", "--no-progress", "--env", "uat", "--partner-code", "P000270",
        "--base-url", f"http://127.0.0.1:{port}", "--home", str(directory / "status-home"),
        "--rate", str(RATE), "--daily-quota", str(10 * sims + 1000), "--quota-reserve", "0",
        "sims", "status", str(listing), "-o", str(directory / "fleet.xlsx"),
        "--report-dir", str(directory / "status-rep"),
    ]  # fmt: skip
    try:
        _wait_for_port(port)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        first = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    finally:
        server.terminate()
        server.wait()
    if first.returncode not in (0, 4):
        raise RuntimeError(f"bench status failed ({first.returncode}): {first.stderr[-2000:]}")
    requests = len(_SENT.findall(first.stderr))
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    floor = requests / RATE
    return {
        "sims": sims,
        "seconds": seconds,
        "requests": requests,
        "calls_per_sim": requests / sims,
        "floor_seconds": floor,
        "ratio_to_floor": seconds / floor if floor else 0.0,
        "cpu_ms_per_lookup": 1000 * cpu / requests if requests else 0.0,
        "requests_second_run_within_max_age": len(_SENT.findall(again.stderr)),
        "exit_code": first.returncode,
        "server_faults": SERVER_FAULTS,
    }
