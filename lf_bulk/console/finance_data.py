"""Finance for the console, as data: the order export by keys or by group, and pushed orders.

export_by_keys   `lf-bulk orders export FILE -o X.xlsx`: the keys of an upload looked up
export_by_group  `lf-bulk orders export --group G -o X.xlsx`: every order of a group's SIMs
pushed_orders    `lf-bulk orders export --from-pushes`: the orders pushed to `notify serve`,
                 with exact totals per currency
export_name      the workbook's fixed-pattern name (the only names the download serves)
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

from lf_bulk import order_export, orders
from lf_bulk.client import LinksfieldClient
from lf_bulk.files import make_missing_folders
from lf_bulk.notify import export as notify_export

EXPORT_NAME: Final = re.compile(r"orders-\d{8}-\d{6}-[0-9a-f]{8}\.xlsx")
UTC: Final = ZoneInfo("UTC")


@dataclass(frozen=True)
class FinanceExport:
    path: Path
    export: orders.OrderExport

    @property
    def name(self) -> str:
        return self.path.name


def export_name() -> str:
    return f"orders-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(4)}.xlsx"


def _target(folder: Path) -> Path:
    make_missing_folders(folder, mode=0o700)
    return folder / export_name()


def _export(
    client: LinksfieldClient, keys: orders.KeyInput, zone: ZoneInfo, folder: Path
) -> FinanceExport:
    target = _target(folder)
    order_export.check_quota(client, keys)  # the whole export fits today, or nothing is sent
    timed = order_export.export_orders(client, keys, zone)
    orders.write_xlsx(timed.export, target)
    return FinanceExport(target, timed.export)


def export_by_keys(
    client: LinksfieldClient, path: Path, folder: Path, *, sheet: str | None = None,
    zone: ZoneInfo = UTC, source: str | None = None,
) -> FinanceExport:  # fmt: skip
    """The orders found by the keys of the file at `path`, written to a new workbook in `folder`;
    `source` names the file in the workbook and on the page (the user's name for an upload)."""
    keys = orders.read_keys(path, sheet=sheet)
    if source is not None:
        keys = replace(keys, source=source)
    return _export(client, keys, zone, folder)


def export_by_group(
    client: LinksfieldClient, group_id: str, folder: Path, *, zone: ZoneInfo = UTC
) -> FinanceExport:
    """Every order of every SIM in `group_id` (its members read first), as a new workbook."""
    keys = orders.group_keys(group_id, client.list_members(group_id))
    return _export(client, keys, zone, folder)


def pushed_orders(home: Path, *, since: datetime | None = None) -> notify_export.PushListing:
    """The orders pushed to `notify serve` under `home` (totals per currency: `.totals`)."""
    return notify_export.load(home, since=since)
