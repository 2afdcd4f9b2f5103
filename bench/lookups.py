"""The look-up figure of `make bench`: `sims status` of N SIMs against its floor.

A look-up costs one request per call and the API allows 10 a second, so the floor of a status run
is (requests sent) / rate; everything above it is ours. Run as a user would: `sandbox serve` in
its own process (50 ms latency, 10 req/s, 3 at once), `lf-bulk sims status FILE` against it.
"""

from __future__ import annotations

import re
import resource
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.serving import LF_BULK, served_sandbox

ROOT = Path(__file__).resolve().parent.parent
RATE = 10.0  # the API's rate limit: the floor of every look-up run
SERVER_FAULTS = f"latency=50ms,rate={int(RATE)},concurrency=3"
_SENT = re.compile(r"DEBUG lf_bulk\.client: POST (/singleVerify|/singleQueryOrder|/queryAuto\w+)")


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
    with served_sandbox(state_path, SERVER_FAULTS) as base_url:
        command = [
            *LF_BULK, "-vv", "--no-progress", "--env", "uat", "--partner-code", "P000270",
            "--base-url", base_url, "--home", str(directory / "status-home"),
            "--rate", str(RATE), "--daily-quota", str(10 * sims + 1000), "--quota-reserve", "0",
            "sims", "status", str(listing), "-o", str(directory / "fleet.xlsx"),
            "--report-dir", str(directory / "status-rep"),
        ]  # fmt: skip
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        first = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
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
