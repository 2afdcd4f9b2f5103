"""The order export as library calls: keys in, an export (timed) out, written as .xlsx or .csv.

`jobs/orders.py` is the Click shell around these; a Python caller needs nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from lf_bulk import orders as lib
from lf_bulk import quota
from lf_bulk.client import LinksfieldClient
from lf_bulk.errors import QuotaExhausted
from lf_bulk.xlsx import make_folders

OUTPUT_SUFFIXES = (".xlsx", ".csv")


def prepare_output(output: Path | None, now: datetime | None = None) -> Path:
    """The output file, checked before any lookup so that a typo costs nothing.

    Raises `ValueError` with the reason (a suffix we cannot write, a folder we cannot make).
    """
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    target = output or Path(f"orders-{stamp}.xlsx")
    if target.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(f"{target}: use a .xlsx or .csv file name")
    try:
        make_folders(target.parent)
    except OSError as error:
        raise ValueError(f"{target.parent}: {error.strerror or error}") from None
    return target


@dataclass(frozen=True)
class TimedExport:
    export: lib.OrderExport
    lookups: int
    seconds: float

    def summary(self) -> str:
        export, elapsed = self.export, self.seconds
        rate = f", {self.lookups / elapsed:.1f} lookups/s" if elapsed > 0 and self.lookups else ""
        return (
            f"{len(export.orders)} orders from {self.lookups} lookups in {elapsed:.1f}s{rate}; "
            f"{len(export.not_found)} key(s) not found or invalid. {export.zone_note}"
        )


def check_quota(client: LinksfieldClient, keys: lib.KeyInput) -> None:
    """Refuse an export whose look-ups do not fit in what is left of today's quota.

    An export is not a journaled run: stopped half-way it would have to start again from the
    first key, so it does not start unless every look-up fits (nothing is sent).
    """
    needed = len(keys.lookups)
    plan = quota.client_plan(client, needed)
    if plan is None or plan.fits:
        return
    raise QuotaExhausted(
        f"the order export {plan.describe()}: not enough of today's request quota is left, and "
        "an export is not started unless it can finish. Nothing was sent: run it again after the "
        "reset, or export fewer keys",
        resets_at=plan.resets_at,
        used=None,
        limit=plan.left,
        source=quota.QuotaSource.LEDGER.value,
    )


def export_orders(
    client: LinksfieldClient,
    keys: lib.KeyInput,
    zone: ZoneInfo,
    *,
    on_result: Callable[[lib.LookupResult], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> TimedExport:
    """Look every key up and build the export (each order once, exact totals)."""
    started = clock()
    results = lib.run_lookups(client, keys.lookups, on_result=on_result)
    elapsed = clock() - started
    return TimedExport(lib.build_export(keys, results, zone), len(results), elapsed)


@dataclass(frozen=True)
class CsvOutputs:
    orders: Path
    totals: Path
    not_found: Path | None  # None when every key found something


def write_csv_outputs(export: lib.OrderExport, target: Path) -> CsvOutputs:
    """The orders to `target`, the totals and the keys not found beside it."""
    lib.write_csv(export, target)
    totals = target.with_name(f"{target.stem}.totals.csv")
    lib.write_totals_csv(export, totals)
    missing = None
    if export.not_found:
        missing = target.with_name(f"{target.stem}.not-found.csv")
        lib.write_not_found_csv(export, missing)
    return CsvOutputs(target, totals, missing)


def total_lines(export: lib.OrderExport) -> list[str]:
    """One line per currency and pay status: count and exact sum."""
    return [
        f"total {t.currency} {t.pay_status}: {t.orders} order{'' if t.orders == 1 else 's'}, "
        f"{lib.money_text(t.amount)}"
        for t in export.by_status
    ]
