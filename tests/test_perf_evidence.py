"""The README's benchmark table is the one generated from bench/results.json, and it states each
figure as a ratio to its baseline and whether its target is met."""

from __future__ import annotations

import json
from pathlib import Path

from bench import evidence

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_quotes_the_committed_results() -> None:
    results = json.loads((ROOT / "bench" / "results.json").read_text())
    readme = (ROOT / "README.md").read_text()
    block = evidence.render(results)
    assert block in readme, "run `python -m bench.evidence` after `make bench`"
    assert evidence.readme_with(block, readme) == readme


def test_each_figure_is_a_ratio_to_its_baseline_and_judged_against_its_target(
    tmp_path: Path,
) -> None:
    results = {
        "date": "2026-11-29T20:00:00+00:00",
        "sizes": "full",
        "machine": {"cpu": "X", "cpus": 2, "python": "3.11.7", "load_average_before": [3.5]},
        "figures": {
            "cli_start": {
                "baseline": {"seconds": 0.02}, "help": {"seconds": 0.2},
                "runs_list": {"seconds": 0.3},
            },
            "add_job_1m_100rps": {
                "seconds": 80.0, "floor_seconds": 40.0, "ratio_to_floor": 2.0, "peak_mb": 500.0,
                "cpu_ms_per_batch": 30.0, "http_429": 0,
            },
            "add_job_100000": {
                "seconds": 42.0, "floor_seconds": 40.0, "ratio_to_floor": 1.05, "http_429": 0,
            },
        },
    }  # fmt: skip
    block = evidence.render(results)
    assert "load average [3.5] before" in block
    assert "| 0.20 s | `python -c pass` 0.02 s | 0.80x the target | <= 0.25 s: met |" in block
    assert "| 0.30 s |" in block and "1.20x the target | <= 0.25 s: **missed** |" in block
    assert "| 2.00x the floor | <= 1.3x, zero 429: **missed** |" in block
    assert "peak 500 MB (< 1,024 MB), 30 ms CPU per batch" in block
    assert "| 1.05x the floor | <= 1.08x, zero 429: met |" in block
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{evidence.BEGIN}\nold\n{evidence.END}\nafter\n")
    (tmp_path / "results.json").write_text(json.dumps(results))
    evidence.update_readme(tmp_path / "results.json", readme)
    assert readme.read_text() == f"before\n{block}\nafter\n"
