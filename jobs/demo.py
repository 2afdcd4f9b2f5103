"""`make demo`: the main job on a fresh embedded sandbox, then the Recharge Success push loop.

1. `lf-bulk sims add` of samples/sims.xlsx to the sandbox's demo group, exactly as a user would.
2. The push loop (`push_loop`): a served sandbox that pushes (`sandbox serve --push-url`) and a
   receiver (`notify serve`), both on free loopback ports with a demo key; `orders create` tops up
   a handful of SIMs on that sandbox; the sandbox pushes one signed event per order; `notify
   export` writes what arrived; its totals per currency must equal the top-up totals.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from jobs.cli import cli
from lf_bulk.notify import export
from lf_bulk.notify.receiver import parse_keys, running_receiver
from lf_bulk.sandbox import cards, pusher
from lf_bulk.sandbox.pusher import PushStatus, PushTarget
from lf_bulk.sandbox.seed import DEMO_GROUP
from lf_bulk.sandbox.server import running_sandbox
from lf_bulk.sandbox.state import SandboxState
from lf_bulk.settings import SANDBOX_PARTNER_CODE
from lf_bulk.sqlite import ensure_private_dir

ROOT = Path(__file__).resolve().parent.parent
DEMO_HOME = ROOT / ".lf-bulk" / "demo"
DEMO_REPORTS = ROOT / "lf-bulk-reports" / "demo"

PUSH_KEY_ID = "demo-key"
PUSH_KEY_HEX = "6c662d62756c6b2d64656d6f2d6b6579"  # the demo's own key, known to everyone
PUSH_FAULTS = "rate=100,concurrency=10,push_time_scale=0.01"  # a failed push is retried in ms
TOPUPS = ((1, "9.99", "EUR"), (3, "29.97", "EUR"), (1, "8.50", "GBP"), (2, "17.00", "GBP"),
          (1, "12.00", "USD"), (6, "59.94", "EUR"))  # fmt: skip
"""(periods, amount, currency) of each demo top-up."""
PUSH_WAIT_SECONDS = 15.0
PUSH_SANDBOX_SIMS = 2_000
"""A small world for the pushing sandbox: seeded in a fraction of a second."""

Say = Callable[[str], None]


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run(args: list[str]) -> int:
    print(f"\n$ lf-bulk {' '.join(args)}", file=sys.stderr, flush=True)
    try:
        cli.main(args=args, prog_name="lf-bulk", standalone_mode=False)
    except SystemExit as stop:
        return int(stop.code or 0)
    return 0


@dataclass(frozen=True)
class LoopResult:
    exit_code: int
    topped_up: dict[str, Decimal]
    """Exact totals per currency of the orders `orders create` reported created."""
    pushed: dict[str, Decimal]
    """Exact totals per currency of the orders `notify serve` stored (as `notify export`)."""
    push_counts: dict[str, int]

    @property
    def totals_match(self) -> bool:
        return self.exit_code == 0 and bool(self.topped_up) and self.topped_up == self.pushed


def write_topups(state: SandboxState, path: Path) -> Path:
    """The demo's `orders create` file: one top-up per active card of the demo group."""
    iccids = state.iccids_with(
        card_status=cards.CARD_ACTIVE, group_id=DEMO_GROUP, limit=len(TOPUPS)
    )
    if len(iccids) < len(TOPUPS):
        raise RuntimeError(f"the demo sandbox has {len(iccids)} active cards in {DEMO_GROUP}")
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["iccid", "package_code", "periods", "amount", "currency", "pay_id"])
        for number, (iccid, (periods, amount, currency)) in enumerate(
            zip(iccids, TOPUPS, strict=True)
        ):
            writer.writerow([iccid, "DP1002", periods, amount, currency, f"pi_demo{number:03d}"])
    return path


def push_loop(home: Path, reports: Path, *, say: Say = _say) -> LoopResult:
    """Top-ups on a pushing sandbox, pushes into a receiver, and the two totals compared."""
    ensure_private_dir(home)
    receiver_home = ensure_private_dir(home / "notify")
    keys = parse_keys(PUSH_KEY_ID, PUSH_KEY_HEX)
    with running_receiver(receiver_home, keys) as receiver_url:
        target = PushTarget(receiver_url, PUSH_KEY_ID, PUSH_KEY_HEX)
        state_path = home / "pushing-sandbox.db"
        with running_sandbox(
            state_path, PUSH_FAULTS, sims=PUSH_SANDBOX_SIMS, push=target
        ) as server:
            say(
                "\nThe push loop: Linksfield pushes a signed Recharge Success event for every "
                "order it confirms. Here, on free loopback ports (as you would start them):\n"
                f"  LF_BULK_NOTIFY_KEY=<key> lf-bulk --home {receiver_home} notify serve "
                f"--port {receiver_url.rsplit(':', 1)[1].strip('/')} --key-id {PUSH_KEY_ID}\n"
                f"  LF_BULK_NOTIFY_KEY=<key> lf-bulk sandbox serve --port {server.port} "
                f"--state {state_path} --push-url {receiver_url} --push-key-id {PUSH_KEY_ID}"
            )
            topups = write_topups(server.state, home / "topups.csv")
            served = ["--env", "uat", "--base-url", server.base_url, "--partner-code",
                      SANDBOX_PARTNER_CODE]  # fmt: skip
            created = reports / "topups"
            code = run(["--home", str(home), *served, "--no-progress", "orders", "create",
                        str(topups), "--report-dir", str(created)])  # fmt: skip
            say("\nwaiting for the sandbox's pushes to reach notify serve ...")
            deadline = time.monotonic() + PUSH_WAIT_SECONDS
            while pusher.counts(server.state)[PushStatus.QUEUED]:
                if time.monotonic() > deadline:
                    say(f"some pushes were not delivered within {PUSH_WAIT_SECONDS:g}s")
                    code = code or 1
                    break
                time.sleep(0.02)
            counts = {str(k): v for k, v in pusher.counts(server.state).items()}
        exported = reports / "pushes.xlsx"
        export_code = run(["--home", str(receiver_home), "notify", "export", "-o", str(exported)])
    topped_up = _created_totals(created)
    pushed = {total.currency: total.amount for total in export.load(receiver_home).totals}
    return LoopResult(code or export_code, topped_up, pushed, counts)


def _created_totals(report_dir: Path) -> dict[str, Decimal]:
    summary_path = report_dir / "summary.json"
    if not summary_path.exists():
        return {}
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    return {c: Decimal(t["amount"]) for c, t in summary.get("totals", {}).items()}


def _totals_text(totals: dict[str, Decimal]) -> str:
    return ", ".join(f"{amount} {currency}" for currency, amount in sorted(totals.items()))


def console_hint(home: Path) -> str:
    """The demo's closing lines: the same jobs, and these runs, from a browser."""
    shown = home.relative_to(ROOT) if home.is_relative_to(ROOT) else home
    return (
        "\nThe same jobs from a browser (upload a spreadsheet, see the plan, confirm, download the "
        f"report): run `.venv/bin/lf-bulk --home {shown} console` and open the URL it prints; "
        "the demo's runs are on its Runs page."
    )


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

    loop = push_loop(DEMO_HOME / "push-loop", DEMO_REPORTS / "push-loop")
    _say(f"\ntop-ups created (orders create): {_totals_text(loop.topped_up) or 'none'}")
    _say(f"orders pushed (notify export):   {_totals_text(loop.pushed) or 'none'}")
    _say(
        "the push loop "
        + (
            "balances: the totals per currency are equal"
            if loop.totals_match
            else "DOES NOT balance"
        )
        + f" (pushes: {loop.push_counts})"
    )
    print(
        f"demo finished with exit code {code}; the report is in {DEMO_REPORTS / 'add'}, the "
        f"push loop's in {DEMO_REPORTS / 'push-loop'}",
        file=sys.stderr,
    )
    _say(console_hint(DEMO_HOME))
    return code or (0 if loop.totals_match else 1)


if __name__ == "__main__":
    sys.exit(main())
