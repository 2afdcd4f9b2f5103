"""The stored pushes for finance: one row per order, exact totals per currency, .xlsx or .csv.

    listing = load(home, since=..., until=...)      # the store read, nothing written
    write_xlsx(listing, Path("pushes.xlsx"))         # Pushes sheet + Summary (totals)
    write_csv(listing, Path("pushes.csv"))           # the Pushes rows only
    as_order_export(listing, zone)                   # the same orders as `orders export` has them

One row per order however often it was pushed (the store keeps each business key once). Amounts
stay Decimal from the store to the cell; ICCIDs and ids are text cells; every text cell is
neutralised by the writers of `lf_bulk.xlsx` and `lf_bulk.files`. Totals are computed by the
finance export's own `orders.total_orders`, on the pushes seen as orders (`as_orders`).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

from lf_bulk import orders
from lf_bulk.api_values import Order
from lf_bulk.files import atomic_file, neutralise
from lf_bulk.notify.store import PushStore, StoredPush, store_path
from lf_bulk.xlsx import Column, Kind, Sheet, Summary, write_workbook

COLUMNS: Final = (
    "order_id",
    "order_no",
    "iccid",
    "plan",
    "periods",
    "amount",
    "currency",
    "pay_id",
    "pay_time",
    "start_date",
    "expire_date",
    "received_at",
)
_KINDS: Final[Mapping[str, Kind]] = {
    "periods": "int",
    "amount": "money",
    "pay_time": "datetime",
    "received_at": "datetime",
}
PAID: Final = "PAID"
"""A Recharge Success event is a paid order: its pay status in an order export."""
PUSH_LOOKUP: Final = "push"
"""The `lookup_kind` of a pushed order in an order export (its `lookup_key`: the business key)."""
UTC_ZONE: Final = ZoneInfo("UTC")


@dataclass(frozen=True)
class PushListing:
    """The Recharge Success orders received in a span, and what else the store holds there."""

    source: str
    pushes: list[StoredPush]
    other_events: int
    """Stored events that are not Recharge Success orders (another event type): not listed."""
    since: datetime | None = None
    until: datetime | None = None

    @property
    def deliveries(self) -> int:
        return sum(push.deliveries for push in self.pushes)

    @property
    def totals(self) -> list[orders.Total]:
        """Per currency (every pushed order is paid): count and exact sum."""
        return orders.total_orders(as_orders(self.pushes))[0]

    def warnings(self) -> list[str]:
        found = []
        if self.other_events:
            found.append(
                f"{self.other_events} stored event(s) are not Recharge Success orders and are "
                "not listed (their raw bodies are in the store)"
            )
        unreadable = sum(1 for push in self.pushes if push.amount is None)
        if unreadable:
            found.append(f"{unreadable} order(s) have no readable amount: counted, not summed")
        return found


def load(
    home: Path, *, since: datetime | None = None, until: datetime | None = None
) -> PushListing:
    """The pushes stored under `home` (none when nothing was ever received there)."""
    path = store_path(home)
    span = " ".join(
        part
        for part in (
            f"since {since.isoformat()}" if since else "",
            f"until {until.isoformat()}" if until else "",
        )
        if part
    )
    source = f"pushes received in {path}{' ' + span if span else ''}"
    if not path.exists():
        return PushListing(source, [], 0, since, until)
    with PushStore.open(home) as store:
        events = store.events(since=since, until=until)
    pushes = [event for event in events if event.is_recharge]
    return PushListing(source, pushes, len(events) - len(pushes), since, until)


def as_order(push: StoredPush) -> Order:
    return Order(
        order_id=push.order_id,
        purchase_order_id=push.order_no,
        sim_id=push.iccid,
        bundle_id=push.package_code,
        bundle_name=push.plan,
        periods=push.periods,
        amount=push.amount,
        currency=push.currency,
        pay_status=PAID,
        pay_type="",
        pay_id=push.pay_id,
        created_at="",
        paid_at=push.pay_time,
        start_time=push.start_date,
        expire_time=push.expire_date,
        auto_renewal="",
        extra={"received_at": _received(push).isoformat(sep=" "), "deliveries": push.deliveries},
    )


def as_orders(pushes: Sequence[StoredPush]) -> list[Order]:
    return [as_order(push) for push in pushes]


def as_order_export(listing: PushListing, zone: ZoneInfo) -> orders.OrderExport:
    """The pushed orders as `orders export` writes them: same sheets, columns and totals."""
    keys = orders.KeyInput(listing.source, [])
    results = [
        orders.LookupResult(orders.Lookup(PUSH_LOOKUP, push.business_key), (as_order(push),))
        for push in listing.pushes
    ]
    return orders.build_export(keys, results, zone)


def _received(push: StoredPush) -> datetime:
    """When the order was first received, as a naive UTC date-time (Excel has no zones)."""
    return push.received_at.astimezone(UTC).replace(tzinfo=None)


def _plan(push: StoredPush) -> str:
    return push.plan or push.package_code


def _pay_time(push: StoredPush) -> datetime | None:
    try:
        return orders.parse_api_time(push.pay_time, UTC_ZONE)
    except ValueError:
        return None


def row_values(push: StoredPush) -> list[object]:
    """One Pushes row as typed cells (Decimal, int, naive datetime, text)."""
    return [
        push.order_id,
        push.order_no,
        push.iccid,
        _plan(push),
        push.periods,
        push.amount,
        push.currency,
        push.pay_id,
        _pay_time(push),
        push.start_date,
        push.expire_date,
        _received(push),
    ]


def json_row(push: StoredPush) -> dict[str, object]:
    """One order for `notify list`: amounts as exact decimal text, ICCIDs as text."""
    return {
        "order_id": push.order_id,
        "order_no": push.order_no,
        "iccid": push.iccid,
        "plan": _plan(push),
        "periods": push.periods,
        "amount": None if push.amount is None else orders.money_text(push.amount),
        "currency": push.currency,
        "pay_id": push.pay_id,
        "pay_time": push.pay_time,
        "start_date": push.start_date,
        "expire_date": push.expire_date,
        "received_at": push.received_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }


def total_lines(listing: PushListing) -> list[str]:
    return [
        f"total {t.currency}: {t.orders} order{'' if t.orders == 1 else 's'}, {orders.money_text(t.amount)}"
        + (f" ({t.without_amount} without an amount)" if t.without_amount else "")
        for t in listing.totals
    ]


NOTE: Final = (
    "One row per order, however often it was pushed. pay_time as Linksfield sends it; "
    "received_at in UTC."
)


def write_xlsx(listing: PushListing, path: Path) -> None:
    """The Summary (exact totals per currency) and the Pushes sheet, written atomically."""
    columns = [Column(name, _KINDS.get(name, "text")) for name in COLUMNS]
    pushes = Sheet("Pushes", columns, (row_values(p) for p in listing.pushes), note=NOTE)
    facts: list[tuple[str, object]] = [
        ("Source", listing.source),
        ("Orders", len(listing.pushes)),
        ("Deliveries (re-sends included)", listing.deliveries),
    ]
    for total in listing.totals:
        facts.append((f"Total {total.currency}", total.amount))
        facts.append((f"Orders in {total.currency}", total.orders))
        if total.without_amount:
            facts.append((f"Orders in {total.currency} without an amount", total.without_amount))
    summary = Summary(
        "Recharge Success pushes",
        facts,
        [(t.currency, t.orders) for t in listing.totals],
        counts_header=("Currency", "Orders"),
    )
    write_workbook(path, [pushes], summary=summary)


def write_csv(listing: PushListing, path: Path) -> None:
    """The Pushes rows (UTF-8, a header line, no totals line), written atomically."""
    with atomic_file(path, newline="") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for push in listing.pushes:
            row = json_row(push)
            writer.writerow(
                ["" if row[name] is None else _csv_cell(name, row[name]) for name in COLUMNS]
            )


def _csv_cell(name: str, value: object) -> str:
    if name in ("periods", "amount") and isinstance(value, int | str | Decimal):
        return str(value)
    return neutralise(str(value))
