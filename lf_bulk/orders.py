"""The finance order export: keys in, order details and exact totals out (GitHub issue 5).

    keys = read_keys("orders.xlsx")       # or group_keys(group_id, client.list_members(group_id))
    results = run_lookups(client, keys.lookups)   # concurrent, within the client's rate budget
    export = build_export(keys, results, zone_named("Europe/London"))
    write_xlsx(export, Path("orders.xlsx"))       # or write_csv(export, Path("orders.csv"))

Keys: each input row has up to three key cells, `purchase_order_id`, `order_id` and `iccid` (the
API's `sim_id`); the first non-empty one is the row's key, the API's own precedence. An invalid
key (an ICCID failing `lf_bulk.iccid.check`, an id Excel turned into a rounded number) does not
stop the export: the row is listed on the Not found sheet with its row number and reason. Each
distinct key is looked up once; an order found by several lookups is exported (and totalled)
once, under the first lookup in input order.

Amounts stay `Decimal` from the wire to the cell: totals are exact sums. Times are written as the
API gives them, read as naive date-times in the time zone the user says the API uses (default
UTC); the sheets say which zone that is, since Excel has no time zones.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lf_bulk import errors, wire
from lf_bulk.api_values import Order
from lf_bulk.client import LinksfieldClient
from lf_bulk.files import atomic_file, neutralise
from lf_bulk.iccid import Reason, looks_rounded
from lf_bulk.sources import InputRow, InputTable, is_iccid_header, read_iccids
from lf_bulk.xlsx import Column, Kind, Sheet, write_workbook

__all__ = [
    "KEY_ALIASES",
    "ExportedOrder",
    "KeyInput",
    "KeyRow",
    "Lookup",
    "LookupResult",
    "NotFound",
    "OrderExport",
    "Total",
    "build_export",
    "flatten",
    "group_keys",
    "money_text",
    "parse_api_time",
    "read_keys",
    "run_lookups",
    "total_orders",
    "write_csv",
    "write_not_found_csv",
    "write_totals_csv",
    "write_xlsx",
    "zone_named",
]

PURCHASE_ORDER_ID, ORDER_ID, SIM_ID = wire.ORDER_KEYS

KEY_ALIASES: Mapping[str, tuple[str, ...]] = {
    PURCHASE_ORDER_ID: ("purchase order id", "purchase order", "purchase order no", "po id"),
    ORDER_ID: ("order id", "order no", "order number"),
}
"""Headers (besides the name itself) of the two id columns; the ICCID column is found by
`sources.ICCID_HEADERS`. Case, spaces, underscores, dashes and dots are ignored."""

API_TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"
TIME_FIELDS: Final = ("created_at", "paid_at", "start_time", "expire_time")
LOOKUP_KIND: Final = "lookup_kind"
LOOKUP_KEY: Final = "lookup_key"

# Reasons on the Not found sheet, besides the ICCID reasons of `lf_bulk.iccid.Reason`.
NOT_FOUND: Final = "not_found"
REJECTED: Final = "rejected"
BAD_CHARACTERS: Final = "bad_characters"
TOO_LONG: Final = "too_long"
MAX_KEY_LENGTH: Final = 128
"""Longer than any order id; a key past it would not even fit in a URL at 70,000 characters."""

_PAY_STATUS_ORDER = ("PAID", "UNPAID", "FAILED", "REFUNDED")
_COLUMN_KINDS: Mapping[str, Kind] = {
    "periods": "int",
    "amount": "money",
    **dict.fromkeys(TIME_FIELDS, "datetime"),
}
_INNER_JUNK = re.compile(r"[\s\x00-\x1f\x7f]")
_EXPLANATIONS: Mapping[str, str] = {
    NOT_FOUND: "The API found no order for this key.",
    Reason.NUMERIC_CELL: (
        "The spreadsheet stored this value as a number, so its last digits are already lost. "
        "Format the column as Text and enter the value again."
    ),
    BAD_CHARACTERS: "The value contains spaces or control characters, which no id has.",
    TOO_LONG: f"The value is longer than {MAX_KEY_LENGTH} characters, which no id is.",
    Reason.EMPTY: "The row has no purchase_order_id, order_id or iccid.",
}


def zone_named(name: str) -> ZoneInfo:
    """The IANA time zone `name` (e.g. "UTC", "Europe/London"); ValueError says what is wrong."""
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name such as UTC or Europe/London"
        ) from None


# ---------------------------------------------------------------- keys


@dataclass(frozen=True, slots=True)
class Lookup:
    kind: str
    """One of `wire.ORDER_KEYS`."""
    key: str


@dataclass(frozen=True, slots=True)
class KeyRow:
    row: int | None
    """Row number as the user sees it; None for keys that came from a group's member list."""
    kind: str
    """The key's column as an API parameter name; '' for an empty row."""
    key: str
    """The value to look up (an ICCID normalised), or the cell as written when invalid."""
    reason: str | None = None
    """None for a valid key."""

    @property
    def lookup(self) -> Lookup:
        return Lookup(self.kind, self.key)


@dataclass(frozen=True)
class KeyInput:
    source: str
    """The file as given, or 'group G...'."""
    rows: list[KeyRow]

    @property
    def invalid_rows(self) -> list[KeyRow]:
        return [row for row in self.rows if row.reason is not None]

    @property
    def lookups(self) -> list[Lookup]:
        """Each valid key once, in input order."""
        return list(dict.fromkeys(row.lookup for row in self.rows if row.reason is None))


def read_keys(
    path: str | Path, *, sheet: str | None = None, stdin: IO[bytes] | None = None
) -> KeyInput:
    """The keys of a .csv/.tsv/.txt/.xlsx file (or `-`); InputError when it has no key column."""
    return keys_of(read_key_table(path, sheet=sheet, stdin=stdin))


def read_key_table(
    path: str | Path, *, sheet: str | None = None, stdin: IO[bytes] | None = None
) -> InputTable:
    """A keys file as read, before its keys are found (`keys_of`)."""
    return read_iccids(
        path, sheet=sheet, extra_columns=KEY_ALIASES, require_column=False, stdin=stdin
    )


def keys_of(table: InputTable) -> KeyInput:
    """The keys of a table read by `read_key_table`; InputError when it has none (a worker
    finds the keys of the rows its job carries)."""
    has_iccid_column = is_iccid_header(table.column) or (
        table.column == "" and any(row.raw or row.reason is not None for row in table.rows)
    )
    has_id_values = any(row.extra.get(kind) for row in table.rows for kind in KEY_ALIASES)
    if not has_iccid_column and not has_id_values:
        listed = ", ".join(repr(name) for name in table.headers) or "none"
        raise errors.InputError(
            "found none of the key columns purchase_order_id, order_id, iccid (or sim_id). "
            f"Columns seen: {listed}. The first row must name the key column(s).",
            path=table.source,
            sheet=table.sheet,
        )
    keys = KeyInput(
        table.source, [_key_row(row, with_iccid=has_iccid_column) for row in table.rows]
    )
    if not keys.lookups:
        rejected = [
            errors.RejectedRow(r.row or 0, _shortened(r.key), r.reason or "") for r in keys.rows
        ]
        raise errors.InvalidRowsError(table.source, rejected)
    return keys


def group_keys(group_id: str, iccids: Iterable[str]) -> KeyInput:
    """One `sim_id` key per member ICCID of a group (the server's list, taken as valid)."""
    return KeyInput(f"group {group_id}", [KeyRow(None, SIM_ID, iccid) for iccid in iccids])


def _key_row(row: InputRow, *, with_iccid: bool) -> KeyRow:
    for kind in KEY_ALIASES:
        value = row.extra.get(kind, "")
        if value:
            return KeyRow(row.row, kind, value, _id_reason(value))
    if with_iccid and (row.raw.strip() or row.reason not in (None, Reason.EMPTY)):
        # A repeated ICCID is a valid key: it is looked up once, like any repeated key.
        reason = None if row.reason in (None, Reason.DUPLICATE) else str(row.reason)
        return KeyRow(row.row, SIM_ID, row.iccid if reason is None else row.raw, reason)
    return KeyRow(row.row, "", "", str(Reason.EMPTY))


def _id_reason(value: str) -> str | None:
    if len(value) > MAX_KEY_LENGTH:
        return TOO_LONG
    if looks_rounded(value):
        return str(Reason.NUMERIC_CELL)
    if _INNER_JUNK.search(value):
        return BAD_CHARACTERS
    return None


def _shortened(value: str, limit: int = 40) -> str:
    return value if len(value) <= limit else f"{value[:limit]}...({len(value)} characters)"


# ---------------------------------------------------------------- lookups


@dataclass(frozen=True, slots=True)
class LookupResult:
    lookup: Lookup
    orders: tuple[Order, ...] = ()
    rejected: str | None = None
    """The API's message when it refused this one key (code 1001), else None."""


def run_lookups(
    client: LinksfieldClient,
    lookups: Sequence[Lookup],
    *,
    workers: int | None = None,
    on_result: Callable[[LookupResult], None] | None = None,
) -> list[LookupResult]:
    """Look every key up, several at once; the results in the order of `lookups`.

    The client's pacer keeps the whole process within the rate and in-flight limits, so one
    worker per in-flight slot is enough. `on_result` is called in this thread as lookups finish.
    Any error other than a per-key refusal stops the export: a finance export must not look
    complete when it is not.
    """
    count = workers or client.pacer.max_in_flight
    results: list[LookupResult | None] = [None] * len(lookups)
    pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix="order-lookup")
    try:
        futures: dict[Future[LookupResult], int] = {
            pool.submit(_look_up, client, lookup): index for index, lookup in enumerate(lookups)
        }
        for future in as_completed(futures):
            result = future.result()
            results[futures[future]] = result
            if on_result is not None:
                on_result(result)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return [result for result in results if result is not None]


def _look_up(client: LinksfieldClient, lookup: Lookup) -> LookupResult:
    where = f"{lookup.kind} {lookup.key}"
    try:
        found = tuple(client.find_orders(lookup.kind, lookup.key))
    except errors.InvalidParameter as error:
        return LookupResult(lookup, rejected=error.api_message or str(error))
    except errors.EnvelopeError as error:
        raise errors.EnvelopeError(f"{where}: {error}") from error
    for order in found:
        if order.amount is not None and not order.amount.is_finite():
            raise errors.EnvelopeError(f"{where}: order {order.order_id} has amount {order.amount}")
    return LookupResult(lookup, found)


# ---------------------------------------------------------------- the export


@dataclass(frozen=True, slots=True)
class ExportedOrder:
    order: Order
    lookup: Lookup
    """The first lookup, in input order, that found this order."""


@dataclass(frozen=True, slots=True)
class NotFound:
    row: int | None
    kind: str
    key: str
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Total:
    currency: str
    pay_status: str = ""
    bundle_id: str = ""
    bundle_name: str = ""
    orders: int = 0
    amount: Decimal = Decimal("0.00")
    without_amount: int = 0
    """Orders counted here whose amount the API left empty (so not in `amount`)."""


@dataclass(frozen=True)
class OrderExport:
    source: str
    zone: ZoneInfo
    orders: list[ExportedOrder]
    extra_fields: list[str]
    """Flattened names of the fields beyond `wire.ORDER_FIELDS`, in first-seen order."""
    not_found: list[NotFound]
    by_status: list[Total]
    """Per currency and pay status."""
    by_bundle: list[Total]
    """Per bundle and currency."""
    lookups: int
    invalid_rows: int
    warnings: list[str] = field(default_factory=list)

    @property
    def zone_note(self) -> str:
        return f"Times are in {self.zone.key}, as the API gives them."


def build_export(keys: KeyInput, results: Sequence[LookupResult], zone: ZoneInfo) -> OrderExport:
    """Merge the lookups' orders (each order once), list what was not found, total the rest."""
    merged = merge_orders(results)
    extra_fields = list(
        dict.fromkeys(name for item in merged for name in flatten(item.order.extra))
    )
    orders = [item.order for item in merged]
    by_status, by_bundle = total_orders(orders)
    return OrderExport(
        source=keys.source,
        zone=zone,
        orders=merged,
        extra_fields=extra_fields,
        not_found=_not_found(keys, results),
        by_status=by_status,
        by_bundle=by_bundle,
        lookups=len(results),
        invalid_rows=len(keys.invalid_rows),
        warnings=_time_warnings(orders, zone),
    )


def merge_orders(results: Iterable[LookupResult]) -> list[ExportedOrder]:
    seen: set[str] = set()
    merged: list[ExportedOrder] = []
    for result in results:
        for order in result.orders:
            if order.order_id:
                if order.order_id in seen:
                    continue
                seen.add(order.order_id)
            merged.append(ExportedOrder(order, result.lookup))
    return merged


def _not_found(keys: KeyInput, results: Sequence[LookupResult]) -> list[NotFound]:
    by_lookup = {result.lookup: result for result in results}
    missing: list[NotFound] = []
    for row in keys.rows:
        if row.reason is not None:
            missing.append(NotFound(row.row, row.kind, row.key, row.reason, _explain(row.reason)))
            continue
        result = by_lookup.get(row.lookup)
        if result is None or result.orders:
            continue
        if result.rejected is not None:
            detail = f"The API refused this key: {result.rejected}"
            missing.append(NotFound(row.row, row.kind, row.key, REJECTED, detail))
        else:
            missing.append(NotFound(row.row, row.kind, row.key, NOT_FOUND, _explain(NOT_FOUND)))
    return missing


def _explain(reason: str) -> str:
    if reason in _EXPLANATIONS:
        return _EXPLANATIONS[reason]
    try:
        return Reason(reason).explanation
    except ValueError:
        return reason


def total_orders(orders: Iterable[Order]) -> tuple[list[Total], list[Total]]:
    """(per currency and pay status, per bundle and currency): counts and exact sums."""
    by_status: dict[tuple[str, str], Total] = {}
    by_bundle: dict[tuple[str, str], Total] = {}
    for order in orders:
        status_key = (order.currency, order.pay_status)
        current = by_status.get(status_key) or Total(order.currency, pay_status=order.pay_status)
        by_status[status_key] = _add(current, order)
        bundle_key = (order.bundle_id, order.currency)
        current = by_bundle.get(bundle_key) or Total(
            order.currency, bundle_id=order.bundle_id, bundle_name=order.bundle_name
        )
        by_bundle[bundle_key] = _add(current, order)
    status_rank = {status: rank for rank, status in enumerate(_PAY_STATUS_ORDER)}
    return (
        sorted(
            by_status.values(),
            key=lambda t: (t.currency, status_rank.get(t.pay_status, 99), t.pay_status),
        ),
        sorted(by_bundle.values(), key=lambda t: (t.bundle_id, t.currency)),
    )


def _add(total: Total, order: Order) -> Total:
    if order.amount is None:
        return replace(total, orders=total.orders + 1, without_amount=total.without_amount + 1)
    return replace(total, orders=total.orders + 1, amount=total.amount + order.amount)


# ---------------------------------------------------------------- values


def parse_api_time(text: str, zone: ZoneInfo) -> datetime | None:
    """An API time as a naive date-time in `zone`; None when empty; ValueError when unreadable.

    The documented form `yyyy-MM-dd HH:mm:ss` carries no zone and is taken as it is. An ISO time
    with an offset (not what the contract says, but cheap to honour) is converted to `zone`.
    """
    text = text.strip()
    if not text:
        return None
    try:
        return datetime.strptime(text, API_TIME_FORMAT)
    except ValueError:
        parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(zone).replace(tzinfo=None)
    return parsed


def _time_or_none(text: str, zone: ZoneInfo) -> datetime | None:
    try:
        return parse_api_time(text, zone)
    except ValueError:
        return None


def _time_warnings(orders: Sequence[Order], zone: ZoneInfo) -> list[str]:
    bad = [
        (order.order_id, name, getattr(order, name))
        for order in orders
        for name in TIME_FIELDS
        if getattr(order, name).strip() and _time_or_none(getattr(order, name), zone) is None
    ]
    if not bad:
        return []
    order_id, name, text = bad[0]
    return [
        f"{len(bad)} time value(s) could not be read and are left empty in the workbook "
        f"(the CSV keeps them as text), e.g. order {order_id} {name} {text!r}"
    ]


def flatten(extra: Mapping[str, object], prefix: str = "") -> dict[str, str]:
    """Extra fields as text: nested objects as dotted names, lists and other values as JSON."""
    flat: dict[str, str] = {}
    for name, value in extra.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{key}."))
        elif isinstance(value, str):
            flat[key] = value
        elif value is None:
            flat[key] = ""
        else:
            flat[key] = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return flat


def money_text(amount: Decimal) -> str:
    """`amount` in plain digits with at least two decimals, never rounded."""
    if not amount.is_finite():
        raise ValueError(f"{amount!r} is not a finite amount")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        amount = amount.quantize(Decimal("0.01"))
    return format(amount, "f")


def order_headers(extra_fields: Sequence[str]) -> list[str]:
    return [*wire.ORDER_FIELDS, LOOKUP_KIND, LOOKUP_KEY, *extra_fields]


def order_columns(extra_fields: Sequence[str]) -> list[Column]:
    return [Column(name, _COLUMN_KINDS.get(name, "text")) for name in order_headers(extra_fields)]


def order_values(item: ExportedOrder, extra_fields: Sequence[str], zone: ZoneInfo) -> list[object]:
    """One Orders row as typed cell values (Decimal, int, naive datetime, str)."""
    order = item.order
    values: list[object] = []
    for name in wire.ORDER_FIELDS:
        value: object = getattr(order, name)
        values.append(_time_or_none(str(value), zone) if name in TIME_FIELDS else value)
    values += [item.lookup.kind, item.lookup.key]
    flat = flatten(order.extra)
    values += [flat.get(name, "") for name in extra_fields]
    return values


# ---------------------------------------------------------------- files

_TOTAL_COLUMNS = (
    Column("Totals by"),
    Column("Currency"),
    Column("Pay status"),
    Column("Bundle id"),
    Column("Bundle name"),
    Column("Orders", "int"),
    Column("Amount", "money"),
)
_NOT_FOUND_COLUMNS = (
    Column("Row", "int"),
    Column("Key kind"),
    Column("Key"),
    Column("Reason"),
    Column("Detail"),
)
BY_STATUS: Final = "currency and pay status"
BY_BUNDLE: Final = "bundle and currency"


def total_rows(export: OrderExport) -> list[list[object]]:
    rows: list[list[object]] = [
        [BY_STATUS, t.currency, t.pay_status, "", "", t.orders, t.amount] for t in export.by_status
    ]
    rows += [
        [BY_BUNDLE, t.currency, "", t.bundle_id, t.bundle_name, t.orders, t.amount]
        for t in export.by_bundle
    ]
    return rows


def _totals_note(export: OrderExport) -> str:
    note = f"Exact sums of the {len(export.orders)} orders on the Orders sheet, each counted once."
    without = sum(t.without_amount for t in export.by_status)
    if without:
        note += f" {without} order(s) have no amount: counted, not summed."
    return note


def write_xlsx(export: OrderExport, path: Path) -> None:
    """The workbook: Orders, Totals and Not found sheets, written atomically."""
    orders = Sheet(
        "Orders",
        order_columns(export.extra_fields),
        (order_values(item, export.extra_fields, export.zone) for item in export.orders),
        note=f"{export.zone_note} Source: {export.source}.",
    )
    totals = Sheet("Totals", _TOTAL_COLUMNS, total_rows(export), note=_totals_note(export))
    not_found = Sheet(
        "Not found",
        _NOT_FOUND_COLUMNS,
        ([m.row, m.kind, m.key, m.reason, m.detail] for m in export.not_found),
        note="Keys that found no order, and input rows whose key is invalid.",
    )
    write_workbook(path, [orders, totals, not_found])


def write_csv(export: OrderExport, path: Path) -> None:
    """The orders as CSV (UTF-8, no BOM), written atomically; times as the API wrote them."""
    kinds = [column.kind for column in order_columns(export.extra_fields)]
    with atomic_file(path, newline="") as out:
        writer = csv.writer(out)
        # Extra field names come from the API: a header cell is neutralised like any other.
        writer.writerow([neutralise(name) for name in order_headers(export.extra_fields)])
        for item in export.orders:
            writer.writerow(_csv_values(item, export.extra_fields, kinds))


TOTALS_CSV_HEADER: Final = (
    "totals_by",
    "currency",
    "pay_status",
    "bundle_id",
    "bundle_name",
    "orders",
    "amount",
)


def write_totals_csv(export: OrderExport, path: Path) -> None:
    """The Totals sheet as CSV (exact amounts as plain digits), written atomically."""
    with atomic_file(path, newline="") as out:
        writer = csv.writer(out)
        writer.writerow(TOTALS_CSV_HEADER)
        rows = [(BY_STATUS, t.currency, t.pay_status, "", "", t) for t in export.by_status]
        rows += [
            (BY_BUNDLE, t.currency, "", t.bundle_id, t.bundle_name, t) for t in export.by_bundle
        ]
        for *text, total in rows:
            cells = [neutralise(str(v)) for v in text]
            writer.writerow([*cells, total.orders, money_text(total.amount)])


def write_not_found_csv(export: OrderExport, path: Path) -> None:
    with atomic_file(path, newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["row", "key_kind", "key", "reason", "detail"])
        for m in export.not_found:
            row = "" if m.row is None else str(m.row)
            writer.writerow([row, *(neutralise(v) for v in (m.kind, m.key, m.reason, m.detail))])


def _csv_values(
    item: ExportedOrder, extra_fields: Sequence[str], kinds: Sequence[Kind]
) -> list[str]:
    order = item.order
    flat = flatten(order.extra)
    raw: list[object] = [getattr(order, name) for name in wire.ORDER_FIELDS]
    raw += [item.lookup.kind, item.lookup.key, *(flat.get(name, "") for name in extra_fields)]
    cells: list[str] = []
    for value, kind in zip(raw, kinds, strict=True):
        if value is None:
            cells.append("")
        elif kind == "money" and isinstance(value, Decimal):
            cells.append(format(value, "f"))
        elif kind in ("int", "datetime"):
            cells.append(str(value))
        else:
            cells.append(neutralise(str(value)))
    return cells
