"""The run engine's figures for `make bench` (bench/run.py calls these; each returns a dict).

    scheduling_cpu()   CPU per engine tick at 2,000 open batches, against the old way (every open
                       batch read each tick)
    million_add(dir)   a 1,000,000-ICCID add against `sandbox serve` at 100 requests/s, limit 500:
                       seconds against the floor, peak memory, CPU per batch of the whole job

Run one directly: `python -m bench.engine scheduling` or `python -m bench.engine million [N]`.
"""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.serving import LF_BULK, served_sandbox

ROOT = Path(__file__).resolve().parent.parent
MILLION = 1_000_000
MILLION_RATE = 100
MILLION_IN_FLIGHT = 8
MILLION_BATCH = 500
MILLION_SERVER_FAULTS = (
    f"latency=50ms,rate={MILLION_RATE},concurrency={MILLION_IN_FLIGHT},"
    f"max_iccids={MILLION_BATCH},async=2s"
)
MILLION_TARGET = 1.3  # times the floor
MILLION_MEMORY_TARGET_MB = 1024


def scheduling_cpu(open_batches: int = 2_000, ticks: int = 500) -> dict[str, Any]:
    """CPU seconds of the journal reads of one engine tick with `open_batches` open batches (half
    planned, half submitted and not yet due), now and as the engine read them before (every open
    batch, each tick)."""
    from lf_bulk.journal import OPEN_STATES, Journal, PlannedItem
    from lf_bulk.models import InputCounts

    with tempfile.TemporaryDirectory() as scratch, Journal(Path(scratch) / "j.db") as journal:
        items = [PlannedItem(n + 2, f"89{n:017d}", "ADD", "G1") for n in range(open_batches)]
        run_id = journal.create_run(
            kind="sims", operation="ADD", group_id="G1", items=items, batch_size=1,
            counts=InputCounts(open_batches, open_batches, 0, 0),
        )  # fmt: skip
        for batch in journal.batches(run_id)[open_batches // 2 :]:
            journal.mark_sending(run_id, batch.batch_id, sent_at=1.0)
            journal.mark_submitted(
                run_id, batch.batch_id, f"r{batch.batch_id}", submitted_at=1.0, first_poll=1e12
            )
        now = 100.0

        def tick() -> None:
            phase = journal.first_pending_phase(run_id)
            assert phase is not None
            journal.has_planned(run_id, phase)
            journal.lost_due(run_id, now - 10)
            journal.ready_to_send(run_id, phase, now, 8)
            journal.polls_due(run_id, now, 8)
            journal.next_due(run_id, phase)

        def old_tick() -> None:
            journal.first_pending_phase(run_id)
            journal.batches(run_id, OPEN_STATES)

        def per_tick(call: Any) -> float:
            started = time.process_time()
            for _ in range(ticks):
                call()
            return (time.process_time() - started) / ticks

        now_seconds, before_seconds = per_tick(tick), per_tick(old_tick)
    return {
        "open_batches": open_batches,
        "tick_cpu_ms": now_seconds * 1000,
        "tick_cpu_ms_reading_every_open_batch": before_seconds * 1000,
        "speedup": before_seconds / now_seconds,
    }


def million_add(directory: Path, iccids: int = MILLION) -> dict[str, Any]:
    """A `sims add` of `iccids` SIMs against `sandbox serve` (its own process) at 100 requests/s,
    8 in flight, 500 per request, 50 ms latency, 2 s asynchronous work: seconds from the command
    to its exit, against the floor the rate sets (2 requests per batch); the job's peak memory
    and CPU per batch (whole process: reading, journal, engine, reports), and the CPU the
    sandbox server used meanwhile (it shares the machine's cores with the job)."""
    from lf_bulk.sandbox.seed import EMPTY_GROUP
    from lf_bulk.sandbox.state import SandboxState

    directory.mkdir(parents=True, exist_ok=True)
    state_path = directory / f"sandbox-{time.monotonic_ns()}.db"
    state = SandboxState(state_path, sims=max(150_000, int(iccids * 1.3)))
    wanted = state.ungrouped_sims(iccids)
    state.close()
    if len(wanted) < iccids:
        raise RuntimeError(f"the sandbox world has only {len(wanted)} ungrouped SIMs")
    listing = directory / "million.csv"
    listing.write_text("iccid\n" + "\n".join(wanted) + "\n")
    with served_sandbox(state_path, MILLION_SERVER_FAULTS) as base_url:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        job = subprocess.run(
            [*LF_BULK, "-v", "--no-progress", "--env", "uat", "--partner-code", "P000270",
             "--base-url", base_url, "--home", str(directory / "home"),
             "--rate", str(MILLION_RATE), "--max-in-flight", str(MILLION_IN_FLIGHT),
             "--daily-quota", "1000000",
             "sims", "add", EMPTY_GROUP, str(listing), "--report-dir", str(directory / "rep")],
            cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # The sandbox is reaped when it stops: what it used is ours too on a 2-core machine.
    served = resource.getrusage(resource.RUSAGE_CHILDREN)
    if job.returncode != 0:
        raise RuntimeError(f"the 1M job failed ({job.returncode}): {job.stderr[-2000:]}")
    batches = -(-iccids // MILLION_BATCH)
    floor = 2 * batches / MILLION_RATE
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "iccids": iccids,
        "seconds": seconds,
        "floor_seconds": floor,
        "ratio_to_floor": seconds / floor,
        "target_ratio": MILLION_TARGET,
        "peak_mb": after.ru_maxrss / 1024,
        "target_peak_mb": MILLION_MEMORY_TARGET_MB,
        "batches": batches,
        "job_cpu_seconds": cpu,
        "cpu_ms_per_batch": cpu / batches * 1000,
        "sandbox_cpu_seconds": (served.ru_utime - after.ru_utime)
        + (served.ru_stime - after.ru_stime),
        "http_429": len(re.findall(r"API error 1429|HTTP 429", job.stderr)),
        "server_faults": MILLION_SERVER_FAULTS,
    }


def main(argv: list[str]) -> int:
    if argv[:1] == ["scheduling"]:
        print(json.dumps(scheduling_cpu(), indent=2))
        return 0
    if argv[:1] == ["million"]:
        size = int(argv[1]) if len(argv) > 1 else MILLION
        with tempfile.TemporaryDirectory() as scratch:
            print(json.dumps(million_add(Path(scratch), size), indent=2))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
