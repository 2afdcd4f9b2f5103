"""`make bench`: the numbers behind our claims, reproducible on any machine.

Each figure is the median of several runs, each run in a fresh subprocess so that its peak memory
(ru_maxrss) is its own, next to its baseline measured in the same run and the target of issue 14.
Results are printed as a table and written to bench/results.json (with the CPU model and the load
average before and after: on a shared machine, read the figures against it).

    python -m bench.run [--quick | --smoke] [--only NAME ...] [--output PATH]

`--quick` uses small sizes (a few minutes); `--smoke` the smallest, for the test suite. Targets
are judged only at full size. `sims status` of 5,000 SIMs (25 minutes) has its own run
(`--only status --output bench/results-status.json`); the full run quotes its figure from there.
A full run (`make bench`) also regenerates the README's evidence section (bench/evidence.py).
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
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.serving import LF_BULK, served_sandbox

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
# A worker that builds its inputs first sets this, so that only the work itself is timed.
_TIMED_FROM: float | None = None
JOB_SERVER_FAULTS = "latency=50ms,rate=10,concurrency=3,max_iccids=500,async=2s"
SIZE_VARIABLE = "LF_BULK_BENCH_SIZE"


@dataclass(frozen=True)
class Sizes:
    name: str
    csv_rows: int
    xlsx_rows: int
    diff_rows: int
    report_xlsx_items: int
    report_csv_items: int
    job_iccids: int
    naive_sample: int
    cli_runs: int
    runs: int
    status_sims: int
    million_iccids: int
    open_batches: int


FULL = Sizes(
    "full", 1_000_000, 200_000, 1_000_000, 100_000, 1_000_000, 100_000, 30, 5, 3, 5_000,
    1_000_000, 2_000,
)  # fmt: skip
QUICK = Sizes("quick", 50_000, 10_000, 50_000, 5_000, 50_000, 2_000, 2, 3, 1, 60, 20_000, 2_000)
SMOKE = Sizes("smoke", 300, 200, 300, 100, 300, 500, 1, 1, 1, 0, 1_000, 50)
SIZES = {sizes.name: sizes for sizes in (FULL, QUICK, SMOKE)}


def sizes() -> Sizes:
    """The sizes of this run: a worker subprocess learns them from its environment."""
    return SIZES[os.environ.get(SIZE_VARIABLE, FULL.name)]


TARGETS: dict[str, str] = {
    "cli_start": "<= 0.25 s each (lf-bulk --help, runs list), whole process",
    "add_job": "<= 1.08x its floor, zero HTTP 429",
    "read_validate_csv": "<= 1.2 s (1,000,000 rows)",
    "read_validate_xlsx": ">= 8x faster than read_excel(openpyxl, dtype=str), bounded memory",
    "report_xlsx": "<= 2 s (100,000 items), or off the critical path",
    "add_job_1m_100rps": "<= 1.3x its floor (about 40 s), peak memory < 1 GB",
    "engine_cpu_per_batch": "reported, at 2,000 batches",
    "sims_status": "<= 1.05x its floor (requests sent / 10 req/s); CPU per look-up reported",
    "reconcile_diff": "<= 1.5 s and <= 400 MB (1M x 1M)",
}
"""Issue 14's target per figure; judged at full size only."""

STATUS_RESULTS = ROOT / "bench" / "results-status.json"
"""`sims status` of 5,000 SIMs takes 25 minutes (its floor): it is measured by its own run,
`python -m bench.run --only status --output bench/results-status.json`, and quoted from there."""
DEFAULT_PARTS = ["cli", "read", "diff", "reports", "job", "million", "engine", "naive"]


# ---------------------------------------------------------------- workers (run in subprocesses)


def _iccids(n: int) -> list[str]:
    from lf_bulk.iccid import with_check_digit

    return [with_check_digit(f"8985242{i:012d}") for i in range(n)]


def make_inputs(directory: Path) -> None:
    from openpyxl import Workbook

    size = sizes()
    iccids = _iccids(max(size.csv_rows, size.xlsx_rows))
    (directory / "big.csv").write_text("iccid\n" + "\n".join(iccids[: size.csv_rows]) + "\n")
    book = Workbook(write_only=True)
    sheet = book.create_sheet("SIMs")
    sheet.append(["ICCID", "site"])
    for n, iccid in enumerate(iccids[: size.xlsx_rows]):
        sheet.append([iccid, f"depot {n % 7}"])
    book.save(directory / "big.xlsx")


def worker_read_ours(path: str) -> int:
    from lf_bulk.sources import read_iccids

    table = read_iccids(path)
    # Counted from the columns: a valid row's object is made only when something asks for it.
    return table.counts.valid


def worker_read_baseline(path: str) -> int:
    import pandas as pd

    if path.endswith(".xlsx"):
        frame = pd.read_excel(path, engine="openpyxl", dtype=str)
    else:
        frame = pd.read_csv(path, dtype=str)
    return len(frame)


def _diff_inputs() -> tuple[list[Any], dict[str, str]]:
    from lf_bulk import reconcile as rc

    rows = sizes().diff_rows
    shift = min(1_000, rows // 10)  # missing rows, and as many unexpected members
    iccids = [f"8985242{i:013d}" for i in range(rows + shift)]
    desired = [rc.DesiredRow(n + 2, i, "G1") for n, i in enumerate(iccids[:rows])]
    return desired, dict.fromkeys(iccids[shift:], "G1")


def worker_diff(_: str) -> int:
    """Only the diff is timed: the inputs are built first (reading them is measured above)."""
    from lf_bulk import reconcile as rc

    desired, actual = _diff_inputs()
    global _TIMED_FROM
    _TIMED_FROM = time.perf_counter()
    diff = rc.diff(desired, actual, ["G1"])
    return diff.counts["in_sync"]


def worker_diff_baseline(_: str) -> int:
    """The floor of any diff: the two ICCID sets and their differences, nothing categorised."""
    desired, actual = _diff_inputs()
    global _TIMED_FROM
    _TIMED_FROM = time.perf_counter()
    wanted = {row.iccid for row in desired}
    have = set(actual)
    return len(wanted & have) + len(wanted - have) + len(have - wanted)


def _items(n: int) -> list[Any]:
    from lf_bulk.reports import ItemOutcome

    return [
        ItemOutcome(r + 2, i, "added", "", "", "a7f3c2d19e8b4c55a1d0e9f8b7c6d5e4")
        for r, i in enumerate(_iccids(n))
    ]


def worker_report_xlsx(directory: str) -> int:
    """The run report (items.csv, report.xlsx, summary.json); only the writing is timed."""
    from lf_bulk.reports import RunSummary, count_outcomes, write_run_report

    items = _items(sizes().report_xlsx_items)
    summary = RunSummary(
        "bench", "ADD", "G1", len(items), len(items), 0, 0, 200, count_outcomes(items), "", "", 0
    )
    global _TIMED_FROM
    _TIMED_FROM = time.perf_counter()
    write_run_report(Path(directory) / f"report-{os.getpid()}", items, summary)
    return len(items)


def worker_report_xlsx_baseline(directory: str) -> int:
    """The same items written by pandas' to_excel with XlsxWriter, nothing neutralised."""
    import pandas as pd

    items = _items(sizes().report_xlsx_items)
    global _TIMED_FROM
    _TIMED_FROM = time.perf_counter()
    frame = pd.DataFrame(
        [(i.row, i.iccid, i.outcome, i.reason_code, i.reason, i.request_id) for i in items],
        columns=["row", "iccid", "outcome", "reason_code", "reason", "request_id"],
    )
    frame.to_excel(Path(directory) / f"baseline-{os.getpid()}.xlsx", engine="xlsxwriter")
    return len(items)


def worker_items_csv(directory: str) -> int:
    from lf_bulk.reports import write_items_csv

    items = _items(sizes().report_csv_items)
    global _TIMED_FROM
    _TIMED_FROM = time.perf_counter()
    return write_items_csv(Path(directory) / f"items-{os.getpid()}.csv", items)


def worker_items_csv_baseline(directory: str) -> int:
    """The csv module alone, nothing neutralised."""
    import csv

    items = _items(sizes().report_csv_items)
    global _TIMED_FROM
    _TIMED_FROM = time.perf_counter()
    with open(Path(directory) / f"plain-{os.getpid()}.csv", "w", newline="") as out:
        csv.writer(out).writerows(
            (i.row, i.iccid, i.outcome, i.reason_code, i.reason, i.request_id) for i in items
        )
    return len(items)


WORKERS: dict[str, Callable[[str], int]] = {
    "read_ours": worker_read_ours,
    "read_baseline": worker_read_baseline,
    "diff": worker_diff,
    "diff_baseline": worker_diff_baseline,
    "report_xlsx": worker_report_xlsx,
    "report_xlsx_baseline": worker_report_xlsx_baseline,
    "items_csv": worker_items_csv,
    "items_csv_baseline": worker_items_csv_baseline,
}


def run_worker(name: str, arg: str) -> dict[str, float]:
    global _TIMED_FROM
    _TIMED_FROM = None
    started = time.perf_counter()
    count = WORKERS[name](arg)
    seconds = time.perf_counter() - (_TIMED_FROM or started)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_mb": peak_mb, "count": count}


def measure(name: str, arg: str, runs: int, *, in_process: bool = False) -> dict[str, float]:
    """Median of `runs` runs of worker `name`, each in a fresh process (or here, for --smoke)."""
    samples = []
    for _ in range(runs):
        if in_process:
            samples.append(run_worker(name, arg))
            continue
        out = subprocess.run(
            [sys.executable, "-m", "bench.run", "--worker", name, arg],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, SIZE_VARIABLE: sizes().name},
        )
        samples.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        "seconds": statistics.median(s["seconds"] for s in samples),
        "peak_mb": statistics.median(s["peak_mb"] for s in samples),
        "count": samples[0]["count"],
        "runs": runs,
    }


def compared(ours: dict[str, float], baseline: dict[str, float], target: str) -> dict[str, Any]:
    return {
        "ours": ours,
        "baseline": baseline,
        "speedup": baseline["seconds"] / ours["seconds"] if ours["seconds"] else None,
        "target": target,
    }


# ---------------------------------------------------------------- starting the CLI


CLI_COMMANDS = {"help": ["--help"], "runs_list": ["runs", "list"]}


def cli_start(directory: Path, runs: int) -> dict[str, Any]:
    """The whole `lf-bulk` process, start to exit, median of `runs`; baseline: `python -c pass`."""
    home = directory / "cli-home"
    # As installed: the bytecode cached (pip compiles it at install; a shell that sets
    # PYTHONDONTWRITEBYTECODE would otherwise time compiling every module at every start).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["LF_BULK_HOME"] = str(home)
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "lf_bulk"), str(ROOT / "jobs")],
        env=env, capture_output=True, check=True,
    )  # fmt: skip
    lf = LF_BULK
    figure: dict[str, Any] = {"target": TARGETS["cli_start"], "runs": runs}
    for name, args in {"baseline": None, **CLI_COMMANDS}.items():
        command = [sys.executable, "-c", "pass"] if args is None else [*lf, "--no-progress", *args]
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            done = subprocess.run(
                command, cwd=directory, env=env, capture_output=True, text=True, check=False
            )
            seconds = time.perf_counter() - started
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
            samples.append(seconds)
        figure[name] = {"seconds": statistics.median(samples)}
    return figure


# ---------------------------------------------------------------- the add job over HTTP


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
    with served_sandbox(state_path, JOB_SERVER_FAULTS) as base_url:
        started = time.perf_counter()
        job = subprocess.run(
            [*LF_BULK, "-vv", "--no-progress", "--env", "uat", "--partner-code", "P000270",
             "--base-url", base_url, "--home", str(directory / "home"),
             "sims", "add", EMPTY_GROUP, str(listing), "--report-dir", str(directory / "rep")],
            cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip
        seconds = time.perf_counter() - started
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


def load_average() -> list[float]:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker", nargs=2, metavar=("NAME", "ARG"), help=argparse.SUPPRESS)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes, one run each (minutes)")
    size.add_argument(
        "--smoke", action="store_true", help="the smallest sizes, in this process (the test suite)"
    )
    parser.add_argument(
        "--only", nargs="*", help=f"{' '.join(DEFAULT_PARTS)} status (status: its own run)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="where results.json goes")
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(*args.worker)))
        return 0
    chosen = SMOKE if args.smoke else QUICK if args.quick else FULL
    os.environ[SIZE_VARIABLE] = chosen.name
    in_process = args.smoke
    runs = chosen.runs
    wanted = set(args.only or DEFAULT_PARTS)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "sizes": chosen.name,
        "machine": machine() | {"load_average_before": load_average()},
        "versions": versions(),
        "targets_judged": chosen is FULL,
        "figures": {},
    }
    figures = results["figures"]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        if "cli" in wanted:
            figures["cli_start"] = cli_start(data, chosen.cli_runs)
            _progress("cli", figures["cli_start"])
        if "read" in wanted:
            print("making inputs ...", file=sys.stderr)
            make_inputs(data)
            for kind, rows in (("xlsx", chosen.xlsx_rows), ("csv", chosen.csv_rows)):
                path = str(data / f"big.{kind}")
                name = f"read_validate_{kind}"
                figures[f"{name}_{rows}"] = compared(
                    measure("read_ours", path, runs, in_process=in_process),
                    measure("read_baseline", path, runs, in_process=in_process),
                    TARGETS[name],
                )
                _progress(f"read {kind}", figures[f"{name}_{rows}"])
        if "diff" in wanted:
            figures[f"reconcile_diff_{chosen.diff_rows}"] = compared(
                measure("diff", "-", runs, in_process=in_process),
                measure("diff_baseline", "-", runs, in_process=in_process),
                TARGETS["reconcile_diff"],
            )
            _progress("diff", figures[f"reconcile_diff_{chosen.diff_rows}"])
        if "reports" in wanted:
            figures[f"report_xlsx_{chosen.report_xlsx_items}"] = compared(
                measure("report_xlsx", tmp, runs, in_process=in_process),
                measure("report_xlsx_baseline", tmp, runs, in_process=in_process),
                TARGETS["report_xlsx"],
            )
            figures[f"items_csv_{chosen.report_csv_items}"] = compared(
                measure("items_csv", tmp, runs, in_process=in_process),
                measure("items_csv_baseline", tmp, runs, in_process=in_process),
                "(no target; items.csv is written with every report)",
            )
            _progress("reports", figures[f"report_xlsx_{chosen.report_xlsx_items}"])
        if "job" in wanted:
            job_size = chosen.job_iccids
            samples = [job_run(data, job_size) for _ in range(runs)]
            figures[f"add_job_{job_size}"] = {
                key: statistics.median(s[key] for s in samples) for key in samples[0]
            } | {"runs": runs, "server_faults": JOB_SERVER_FAULTS, "target": TARGETS["add_job"]}
            _progress("job", figures[f"add_job_{job_size}"])
        if "million" in wanted and chosen.million_iccids:
            from bench.engine import million_add

            print(f"the {chosen.million_iccids:,}-ICCID add ...", file=sys.stderr)
            figures["add_job_1m_100rps"] = million_add(data, chosen.million_iccids) | {
                "target": TARGETS["add_job_1m_100rps"],
                "baseline": "its floor: 2 requests per batch at 100 requests/s",
            }
            _progress("million", figures["add_job_1m_100rps"])
        if "engine" in wanted:
            from bench.engine import scheduling_cpu

            ticks = 500 if chosen is not SMOKE else 20
            tick = scheduling_cpu(chosen.open_batches, ticks)
            figure: dict[str, Any] = {"target": TARGETS["engine_cpu_per_batch"], "tick": tick}
            job = figures.get("add_job_1m_100rps")
            if job:
                figure |= {
                    "job_cpu_ms_per_batch": job["cpu_ms_per_batch"],
                    "job_batches": job["batches"],
                }
            figures["engine_cpu_per_batch"] = figure
            _progress("engine", figure)
        if "naive" in wanted:
            figures["naive_one_at_a_time"] = naive_run(data, chosen.naive_sample)
            _progress("naive", figures["naive_one_at_a_time"])
        if "status" in wanted and chosen.status_sims:
            from bench.lookups import status_run

            name = f"sims_status_{chosen.status_sims}"
            figures[name] = status_run(data, chosen.status_sims) | {
                "target": TARGETS["sims_status"]
            }
            _progress("status", figures[name])
    if "status" not in wanted and STATUS_RESULTS.exists():
        figures.update(quoted_status(json.loads(STATUS_RESULTS.read_text())))
    results["machine"]["load_average_after"] = load_average()
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(render(results))
    print(f"\nwritten to {args.output}")
    if chosen is FULL and args.output == RESULTS and not args.only:
        from bench import evidence

        evidence.update_readme()
        print(f"README evidence regenerated from {args.output}")
    return 0


def quoted_status(status_results: dict[str, Any]) -> dict[str, Any]:
    """The `sims status` figures of their own run, marked as such (with that run's date and
    load average)."""
    return {
        name: figure
        | {
            "quoted_from": STATUS_RESULTS.name,
            "measured_at": status_results["date"],
            "load_average": [
                status_results["machine"].get("load_average_before"),
                status_results["machine"].get("load_average_after"),
            ],
        }
        for name, figure in status_results["figures"].items()
        if name.startswith("sims_status") and not figure.get("placeholder")
    }


def _progress(label: str, figure: dict[str, Any]) -> None:
    print(f"  {label}: {json.dumps(figure)[:200]}", file=sys.stderr)


def render(results: dict[str, Any]) -> str:
    machine_ = results["machine"]
    lines = [
        f"lf-bulk bench {results['date']} ({results.get('sizes', 'full')} sizes) on "
        f"{machine_['cpu']} ({machine_['cpus']} cpus), Python {machine_['python']}, load "
        f"{machine_.get('load_average_before')} -> {machine_.get('load_average_after')}"
    ]
    lines.append(f"{'figure':<30} {'seconds':>8} {'peak MB':>8}  {'baseline':<26} target")
    for name, fig in results["figures"].items():
        target = fig.get("target", "")
        if name == "add_job_1m_100rps":
            floor = f"floor {fig['floor_seconds']:.0f}s, {fig['ratio_to_floor']:.2f}x"
            lines.append(
                f"{name:<30} {fig['seconds']:>8.2f} {fig['peak_mb']:>8.0f}  {floor:<26} {target}; "
                f"{fig['cpu_ms_per_batch']:.1f} ms CPU per batch, {fig['http_429']} HTTP 429"
            )
        elif name == "engine_cpu_per_batch":
            tick = fig["tick"]
            job = (
                f"{fig['job_cpu_ms_per_batch']:.1f} ms per batch of the 1M job; "
                if "job_cpu_ms_per_batch" in fig
                else ""
            )
            lines.append(
                f"{name:<30} {'':>8} {'':>8}  {job}one tick {tick['tick_cpu_ms']:.2f} ms at "
                f"{tick['open_batches']} open batches ({tick['speedup']:.0f}x reading every open "
                f"batch)"
            )
        elif "ours" in fig:
            ours, base = fig["ours"], fig["baseline"]
            baseline = f"{base['seconds']:.2f}s {base['peak_mb']:.0f}MB, {fig['speedup']:.1f}x"
            lines.append(
                f"{name:<30} {ours['seconds']:>8.2f} {ours['peak_mb']:>8.0f}  {baseline:<26} "
                f"{target}"
            )
        elif "runs_list" in fig:
            base = f"python -c pass {fig['baseline']['seconds']:.2f}s"
            for command in CLI_COMMANDS:
                lines.append(
                    f"{'cli_start ' + command:<30} {fig[command]['seconds']:>8.2f} {'':>8}  "
                    f"{base:<26} {target}"
                )
        elif "cpu_ms_per_lookup" in fig:
            floor = f"floor {fig['floor_seconds']:.0f}s, {fig['ratio_to_floor']:.2f}x"
            quoted = (
                f" (from {fig['quoted_from']}, {fig['measured_at']})"
                if "quoted_from" in fig
                else ""
            )
            lines.append(
                f"{name:<30} {fig['seconds']:>8.2f} {'':>8}  {floor:<26} {target}{quoted}; "
                f"{fig['cpu_ms_per_lookup']:.1f} ms CPU per look-up, "
                f"{fig['requests_second_run_within_max_age']} requests in a second run"
            )
        elif "ratio_to_floor" in fig:
            floor = f"floor {fig['floor_seconds']:.0f}s, {fig['ratio_to_floor']:.2f}x"
            lines.append(
                f"{name:<30} {fig['seconds']:>8.2f} {'':>8}  {floor:<26} {target}; "
                f"{fig['requests_per_batch']:.2f} requests/batch, {fig['http_429']:.0f} HTTP 429"
            )
        elif "seconds_per_iccid" in fig:
            lines.append(
                f"{name:<30} {fig['seconds']:>8.2f} {'':>8}  {fig['sample_iccids']} ICCIDs; "
                f"1,000 would take {fig['extrapolated_1000_seconds']:.0f}s, "
                f"100,000 {fig['extrapolated_100000_hours']:.1f}h"
            )
        else:
            lines.append(f"{name:<30} {fig['seconds']:>8.2f} {fig.get('peak_mb', 0):>8.0f}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
