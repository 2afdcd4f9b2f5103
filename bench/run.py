"""`make bench`: the numbers behind our claims, reproducible on any machine.

Each figure is the median of several runs, each run in a fresh subprocess so that its peak memory
(ru_maxrss) is its own. Results are printed as a table and written to bench/results.json.

    python -m bench.run [--quick] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
XLSX_ROWS = 200_000
CSV_ROWS = 1_000_000
JOB_ICCIDS = 100_000
NAIVE_SAMPLE = 30
DIFF_ROWS = 1_000_000
REPORT_XLSX_ITEMS = 100_000
REPORT_CSV_ITEMS = 1_000_000
# A worker that builds its inputs first sets this, so that only the work itself is timed.
_TIMED_FROM: float | None = None
JOB_SERVER_FAULTS = "latency=50ms,rate=10,concurrency=3,max_iccids=500,async=2s"


# ---------------------------------------------------------------- workers (run in subprocesses)


def _iccids(n: int) -> list[str]:
    from lf_bulk.iccid import with_check_digit

    return [with_check_digit(f"8985242{i:012d}") for i in range(n)]


def make_inputs(directory: Path) -> None:
    from openpyxl import Workbook

    iccids = _iccids(CSV_ROWS)
    (directory / "big.csv").write_text("iccid\n" + "\n".join(iccids) + "\n")
    book = Workbook(write_only=True)
    sheet = book.create_sheet("SIMs")
    sheet.append(["ICCID", "site"])
    for n, iccid in enumerate(iccids[:XLSX_ROWS]):
        sheet.append([iccid, f"depot {n % 7}"])
    book.save(directory / "big.xlsx")


def worker_read_ours(path: str) -> int:
    from lf_bulk.sources import read_iccids

    table = read_iccids(path)
    return table.counts.valid


def worker_read_baseline(path: str) -> int:
    import pandas as pd

    if path.endswith(".xlsx"):
        frame = pd.read_excel(path, engine="openpyxl", dtype=str)
    else:
        frame = pd.read_csv(path, dtype=str)
    return len(frame)


def worker_diff(_: str) -> int:
    """Only the diff is timed: the inputs are built first (reading them is measured above)."""
    from lf_bulk import reconcile as rc

    iccids = [f"8985242{i:013d}" for i in range(DIFF_ROWS + 1_000)]
    desired = [rc.DesiredRow(n + 2, i, "G1") for n, i in enumerate(iccids[:DIFF_ROWS])]
    actual = dict.fromkeys(iccids[1_000:], "G1")
    global _TIMED_FROM
    _TIMED_FROM = time.perf_counter()
    diff = rc.diff(desired, actual, ["G1"])
    return diff.counts["in_sync"]


def _items(n: int) -> list[Any]:
    from lf_bulk.reports import ItemOutcome

    return [
        ItemOutcome(r + 2, i, "added", "", "", "a7f3c2d19e8b4c55a1d0e9f8b7c6d5e4")
        for r, i in enumerate(_iccids(n))
    ]


def worker_report_xlsx(directory: str) -> int:
    from lf_bulk.reports import RunSummary, count_outcomes, write_run_report

    items = _items(REPORT_XLSX_ITEMS)
    summary = RunSummary(
        "bench", "ADD", "G1", len(items), len(items), 0, 0, 200, count_outcomes(items), "", "", 0
    )
    write_run_report(Path(directory) / "report", items, summary)
    return len(items)


def worker_items_csv(directory: str) -> int:
    from lf_bulk.reports import write_items_csv

    return write_items_csv(Path(directory) / "items.csv", _items(REPORT_CSV_ITEMS))


WORKERS: dict[str, Callable[[str], int]] = {
    "read_ours": worker_read_ours,
    "read_baseline": worker_read_baseline,
    "diff": worker_diff,
    "report_xlsx": worker_report_xlsx,
    "items_csv": worker_items_csv,
}


def run_worker(name: str, arg: str) -> None:
    started = time.perf_counter()
    count = WORKERS[name](arg)
    seconds = time.perf_counter() - (_TIMED_FROM or started)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "count": count}))


def measure(name: str, arg: str, runs: int) -> dict[str, float]:
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-m", "bench.run", "--worker", name, arg],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        samples.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        "seconds": statistics.median(s["seconds"] for s in samples),
        "peak_mb": statistics.median(s["peak_mb"] for s in samples),
        "count": samples[0]["count"],
        "runs": runs,
    }


# ---------------------------------------------------------------- the add job over HTTP


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def job_run(directory: Path, iccids: int) -> dict[str, float]:
    """One add job against `sandbox serve` in its own process, as a user would run it."""
    from lf_bulk.sandbox.state import SandboxState

    state_path = directory / f"sandbox-{time.monotonic_ns()}.db"
    state = SandboxState(state_path)
    from lf_bulk.sandbox.seed import EMPTY_GROUP

    wanted = state.ungrouped_sims(iccids)
    state.close()
    listing = directory / "job.csv"
    listing.write_text("iccid\n" + "\n".join(wanted) + "\n")
    port = _free_port()
    lf = [sys.executable, "-m", "jobs"]
    server = subprocess.Popen(
        [*lf, "sandbox", "serve", "--port", str(port), "--state", str(state_path),
         "--faults", JOB_SERVER_FAULTS],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for_port(port)
        started = time.perf_counter()
        job = subprocess.run(
            [*lf, "-vv", "--no-progress", "--env", "uat", "--partner-code", "P000270",
             "--base-url", f"http://127.0.0.1:{port}", "--home", str(directory / "home"),
             "sims", "add", EMPTY_GROUP, str(listing), "--report-dir", str(directory / "rep")],
            cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip
        seconds = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait()
    if job.returncode != 0:
        raise RuntimeError(f"bench job failed ({job.returncode}): {job.stderr[-2000:]}")
    sent = re.findall(r"DEBUG lf_bulk\.client: (GET|POST|DELETE) (\S+)", job.stderr)
    throttled = len(re.findall(r"API error 1429|HTTP 429", job.stderr))
    batches = -(-iccids // 500)
    floor = 2 * batches / 10
    return {
        "seconds": seconds,
        "requests": len(sent),
        "submissions": sum(1 for m, _ in sent if m == "POST"),
        "polls": sum(1 for _, p in sent if p.startswith("/async-result/")),
        "requests_per_batch": len(sent) / batches,
        "http_429": throttled,
        "floor_seconds": floor,
        "ratio_to_floor": seconds / floor,
    }


def _wait_for_port(port: int, timeout: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the sandbox did not start on port {port}")


def naive_run(directory: Path, iccids: int) -> dict[str, float]:
    """Peers' scripts: one ICCID per request, one request at a time, each polled to its end."""
    from lf_bulk.client import LinksfieldClient
    from lf_bulk.pacing import RequestPacer
    from lf_bulk.sandbox.seed import EMPTY_GROUP
    from lf_bulk.sandbox.server import running_sandbox

    with running_sandbox(directory / "naive.db", JOB_SERVER_FAULTS) as server:
        wanted = server.state.ungrouped_sims(iccids)
        with LinksfieldClient(server.base_url, "P000270", pacer=RequestPacer(10, 1)) as client:
            started = time.perf_counter()
            for iccid in wanted:
                request_id = client.add_sims(EMPTY_GROUP, [iccid]).request_id
                while not client.async_result(request_id).status.is_final:
                    time.sleep(0.5)
            seconds = time.perf_counter() - started
    return {
        "sample_iccids": iccids,
        "seconds": seconds,
        "seconds_per_iccid": seconds / iccids,
        "extrapolated_1000_seconds": seconds / iccids * 1_000,
        "extrapolated_100000_hours": seconds / iccids * 100_000 / 3600,
    }


# ---------------------------------------------------------------- main


def versions() -> dict[str, str]:
    names = ["lf-bulk", "pandas", "python-calamine", "openpyxl", "httpx", "starlette", "uvicorn"]
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "missing"
    return found


def machine() -> dict[str, Any]:
    cpu = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        match = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        cpu = match.group(1) if match else ""
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu": cpu,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker", nargs=2, metavar=("NAME", "ARG"), help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="one run each, a 10,000 SIM job")
    parser.add_argument("--only", nargs="*", help="read diff reports job naive")
    args = parser.parse_args()
    if args.worker:
        run_worker(*args.worker)
        return 0
    runs = 1 if args.quick else 3
    wanted = set(args.only or ["read", "diff", "reports", "job", "naive"])
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "figures": {},
    }
    figures = results["figures"]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        if "read" in wanted:
            print("making inputs ...", file=sys.stderr)
            make_inputs(data)
            for kind, rows in (("xlsx", XLSX_ROWS), ("csv", CSV_ROWS)):
                ours = measure("read_ours", str(data / f"big.{kind}"), runs)
                base = measure("read_baseline", str(data / f"big.{kind}"), runs)
                figures[f"read_validate_{kind}_{rows}"] = {
                    "ours": ours,
                    "baseline": base,
                    "speedup": base["seconds"] / ours["seconds"],
                }
                _progress(f"read {kind}", figures[f"read_validate_{kind}_{rows}"])
        if "diff" in wanted:
            figures["reconcile_diff_1m_vs_1m"] = measure("diff", "-", runs)
            _progress("diff", figures["reconcile_diff_1m_vs_1m"])
        if "reports" in wanted:
            figures["report_xlsx_100k"] = measure("report_xlsx", tmp, runs)
            figures["items_csv_1m"] = measure("items_csv", tmp, runs)
            _progress("reports", figures["items_csv_1m"])
        if "job" in wanted:
            size = 10_000 if args.quick else JOB_ICCIDS
            samples = [job_run(data, size) for _ in range(runs)]
            figures[f"add_job_{size}"] = {
                key: statistics.median(s[key] for s in samples) for key in samples[0]
            } | {"runs": runs, "server_faults": JOB_SERVER_FAULTS}
            _progress("job", figures[f"add_job_{size}"])
        if "naive" in wanted:
            figures["naive_one_at_a_time"] = naive_run(data, NAIVE_SAMPLE)
            _progress("naive", figures["naive_one_at_a_time"])
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(render(results))
    print(f"\nwritten to {RESULTS}")
    return 0


def _progress(label: str, figure: dict[str, Any]) -> None:
    print(f"  {label}: {json.dumps(figure)[:200]}", file=sys.stderr)


def render(results: dict[str, Any]) -> str:
    lines = [f"lf-bulk bench {results['date']} on {results['machine']['cpu']} "
             f"({results['machine']['cpus']} cpus), Python {results['machine']['python']}"]  # fmt: skip
    lines.append(f"{'figure':<34} {'seconds':>9} {'peak MB':>8}  notes")
    for name, fig in results["figures"].items():
        if "ours" in fig:
            ours, base = fig["ours"], fig["baseline"]
            lines.append(
                f"{name:<34} {ours['seconds']:>9.2f} {ours['peak_mb']:>8.0f}  baseline "
                f"{base['seconds']:.2f}s {base['peak_mb']:.0f}MB, {fig['speedup']:.1f}x faster"
            )
        elif "ratio_to_floor" in fig:
            lines.append(
                f"{name:<34} {fig['seconds']:>9.2f} {'':>8}  floor {fig['floor_seconds']:.0f}s, "
                f"{fig['ratio_to_floor']:.2f}x floor, {fig['requests_per_batch']:.2f} requests/batch, "
                f"{fig['http_429']:.0f} HTTP 429"
            )
        elif "seconds_per_iccid" in fig:
            lines.append(
                f"{name:<34} {fig['seconds']:>9.2f} {'':>8}  {fig['sample_iccids']} ICCIDs; "
                f"1,000 would take {fig['extrapolated_1000_seconds']:.0f}s, "
                f"100,000 {fig['extrapolated_100000_hours']:.1f}h"
            )
        else:
            lines.append(f"{name:<34} {fig['seconds']:>9.2f} {fig['peak_mb']:>8.0f}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
