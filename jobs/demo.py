"""`make demo`: the main job on a fresh embedded sandbox, then where its report is.

Runs `lf-bulk sims add` of samples/sims.xlsx to the sandbox's demo group, exactly as a user would.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from jobs.cli import cli
from lf_bulk.sandbox.seed import DEMO_GROUP

ROOT = Path(__file__).resolve().parent.parent
DEMO_HOME = ROOT / ".lf-bulk" / "demo"
DEMO_REPORTS = ROOT / "lf-bulk-reports" / "demo"


def run(args: list[str]) -> int:
    print(f"\n$ lf-bulk {' '.join(args)}", file=sys.stderr, flush=True)
    try:
        cli.main(args=args, prog_name="lf-bulk", standalone_mode=False)
    except SystemExit as stop:
        return int(stop.code or 0)
    return 0


def main() -> int:
    shutil.rmtree(DEMO_HOME, ignore_errors=True)
    shutil.rmtree(DEMO_REPORTS, ignore_errors=True)
    home = ["--home", str(DEMO_HOME)]
    run([*home, "groups", "list"])
    sims = str(ROOT / "samples" / "sims.xlsx")
    run(
        [
            *home,
            "sims",
            "add",
            DEMO_GROUP,
            sims,
            "--dry-run",
            "--report-dir",
            str(DEMO_REPORTS / "plan"),
        ]
    )
    code = run([*home, "sims", "add", DEMO_GROUP, sims, "--report-dir", str(DEMO_REPORTS / "add")])
    summary = (DEMO_REPORTS / "add" / "summary.json").read_text()
    print(f"\nsummary.json:\n{summary}", file=sys.stderr)
    print(
        f"demo finished with exit code {code}; the report is in {DEMO_REPORTS / 'add'}",
        file=sys.stderr,
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
