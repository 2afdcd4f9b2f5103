"""`bench/run.py` runs end to end: the smallest sizes here, `--quick` in the slow suite.

No timing is asserted: the figures are for `make bench` on a quiet machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import run as bench

ROOT = Path(__file__).resolve().parent.parent


def test_the_smoke_run_measures_every_figure_beside_its_baseline_and_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(bench.SIZE_VARIABLE, "smoke")
    output = tmp_path / "results.json"
    argv = ["--smoke", "--only", "read", "diff", "reports", "engine", "--output", str(output)]
    assert bench.main(argv) == 0
    results = json.loads(output.read_text())
    assert results["sizes"] == "smoke"
    assert results["targets_judged"] is False
    assert results["machine"]["cpu"] is not None
    assert "load_average_before" in results["machine"]
    figures = results["figures"]
    for name in ("read_validate_xlsx_200", "read_validate_csv_300", "reconcile_diff_300",
                 "report_xlsx_100", "items_csv_300"):  # fmt: skip
        figure = figures[name]
        assert figure["ours"]["count"] == figure["baseline"]["count"] or name.startswith("rec")
        assert figure["ours"]["seconds"] >= 0
        assert figure["target"]
    assert figures["read_validate_csv_300"]["ours"]["count"] == 300
    assert figures["reconcile_diff_300"]["ours"]["count"] == 270  # 30 missing, 30 unexpected
    assert not any(figure.get("placeholder") for figure in figures.values())
    tick = figures["engine_cpu_per_batch"]["tick"]
    assert tick["open_batches"] == 50 and tick["tick_cpu_ms"] > 0
    # The 25-minute `sims status` figure is quoted from its own run, marked as such.
    status = figures["sims_status_5000"]
    assert status["quoted_from"] == "results-status.json" and status["measured_at"]
    table = capsys.readouterr().out
    assert "report_xlsx_100" in table and "engine_cpu_per_batch" in table
    assert "from results-status.json" in table


@pytest.mark.slow
def test_cli_start_times_the_whole_process_against_a_bare_interpreter(tmp_path: Path) -> None:
    figure = bench.cli_start(tmp_path, runs=1)
    assert set(figure) >= {"baseline", "help", "runs_list", "target"}
    assert figure["help"]["seconds"] > 0


@pytest.mark.slow
def test_quick_runs_every_figure(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(output.read_text())["figures"]
    assert {"cli_start", "add_job_2000", "naive_one_at_a_time"} <= set(figures)
