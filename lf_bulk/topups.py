"""Money in and money confirmed: `orders create` (one top-up per row) and `payments check`.

Both are look-up runs (`lf_bulk.lookups`, kinds CREATE_ORDER and CHECK_PAYMENT): journaled,
locked, resumable, with the quota plan, Ctrl-C, `--timeout` and `runs cancel` of every run.

`orders create`: every row is validated before anything exists (`read_orders`); a row without
`order_no` gets one generated here, and the run's options (journaled with a digest when the run
is created, before the first send) fix it. At most one order per row, whatever happens: a row
whose `order_no` the user gave is looked up first and, when Linksfield has it, reported `exists`
and never sent; a send is journaled `sending` first; a lost answer (timeout, dropped, a 5xx that
may come after the server acted, a crash) or `DUPLICATE_ORDER_NO` is settled by looking the
`order_no` up before the row is ever sent again.

Amounts are exact: a text cell is read as written; a numeric spreadsheet cell as the spreadsheet
shows it in its formula bar (15 significant digits, never through a float sum), and then it must
have at most two decimals like any other amount.
"""

from __future__ import annotations

import csv
import json
import re
import secrets
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Final

from lf_bulk import bulk, errors, iccid, runs, store, wire
from lf_bulk.answers import AnswerCache, decode
from lf_bulk.api_values import PlanOffer, TopUp
from lf_bulk.currencies import is_currency
from lf_bulk.exitcodes import ExitCode
from lf_bulk.files import atomic_file, neutralise
from lf_bulk.iccid import EXPLANATIONS, Reason
from lf_bulk.journal import Journal, PlannedItem, new_run_id, utc_now
from lf_bulk.lookups import (
    DEFAULT_MAX_AGE,
    OPTION_ORDERS,
    Call,
    LookupClient,
    LookupKind,
    LookupRun,
    PlannedRows,
    SimAnswers,
    exit_code_of,
    order_from_option,
    order_to_option,
    register_reporter,
    start_planned_lookup,
)
from lf_bulk.models import InputCounts, OutcomeCode
from lf_bulk.reports import ITEMS_CSV, REPORT_XLSX, SUMMARY_JSON, prepare_report_dir
from lf_bulk.settings import Settings
from lf_bulk.sources import InputRow, InputTable, read_iccids
from lf_bulk.xlsx import MAX_ROWS, Column, Sheet, Summary, write_workbook

ORDER_COLUMNS: Final[Mapping[str, tuple[str, ...]]] = {
    "package_code": ("package_code", "packageCode", "plan_code", "bundle_id"),
    "periods": ("periods", "orderPeriod", "order_period"),
    "amount": ("amount", "payAmount", "pay_amount"),
    "currency": ("currency", "payCurrency", "pay_currency"),
    "pay_id": ("pay_id", "payId"),
    "order_no": ("order_no", "orderNo", "purchase_order_id"),
    "pay_type": ("pay_type", "payType"),
    "pay_time": ("pay_time", "payResultDate", "pay_result_date"),
    "auto_renewal": ("auto_renewal", "autoRenewal"),
}
"""The columns of an `orders create` file (and the other names each may go by)."""
REQUIRED_COLUMNS: Final = ("package_code", "periods", "amount", "currency", "pay_id")

PAY_ID_COLUMNS: Final[Mapping[str, tuple[str, ...]]] = {"pay_id": ("pay_id", "payId")}

MAX_DECIMALS: Final = 2
GENERATED_PREFIX: Final = "LFB"
_PAY_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
_PERIODS = re.compile(r"\d{1,4}")
_AMOUNT = re.compile(r"\d{1,12}(\.\d+)?")


class RowReason(StrEnum):
    """Why an `orders create` or `payments check` row is not sent: its `reason_code`."""

    NO_PACKAGE_CODE = "no_package_code"
    BAD_PERIODS = "bad_periods"
    BAD_AMOUNT = "bad_amount"
    BAD_CURRENCY = "bad_currency"
    NO_PAY_ID = "no_pay_id"
    BAD_PAY_ID = "bad_pay_id"
    BAD_ORDER_NO = "bad_order_no"
    BAD_PAY_TIME = "bad_pay_time"
    BAD_AUTO_RENEWAL = "bad_auto_renewal"
    DUPLICATE_ORDER_NO = "duplicate_order_no"
    DUPLICATE_PAY_ID = "duplicate_pay_id"


DUPLICATE_REASONS: Final = frozenset({RowReason.DUPLICATE_ORDER_NO, RowReason.DUPLICATE_PAY_ID})


@dataclass(frozen=True)
class OrderRow:
    """One row of an `orders create` file: its order, or why it is not sent."""

    row: int
    shown_iccid: str
    """The ICCID (normalised when valid, else as typed)."""
    top_up: TopUp | None
    given: bool
    """The order_no came from the file (looked up first); else it was generated."""
    reason_code: str = ""
    reason: str = ""
    value: str = ""
    """The offending cell, as typed, for the error message."""

    @property
    def outcome(self) -> OutcomeCode | None:
        if self.top_up is not None:
            return None
        if self.reason_code in DUPLICATE_REASONS:
            return OutcomeCode.DUPLICATE
        return OutcomeCode.INVALID


@dataclass(frozen=True)
class OrderInput:
    source: str
    rows: list[OrderRow]

    @property
    def counts(self) -> InputCounts:
        outcomes = Counter(r.outcome for r in self.rows)
        return InputCounts(
            len(self.rows), outcomes[None], outcomes[OutcomeCode.INVALID],
            outcomes[OutcomeCode.DUPLICATE],
        )  # fmt: skip


def generate_order_no(row: int) -> str:
    """A new order number for a row without one: `LFB-<16 random hex>-<row>` (an id; unique)."""
    return f"{GENERATED_PREFIX}-{secrets.token_hex(8)}-{row}"


def parse_amount(text: str) -> Decimal:
    """An exact amount above 0 with at most two decimals; ValueError saying what is wrong."""
    cleaned = text.strip()
    if not _AMOUNT.fullmatch(cleaned):
        raise ValueError(f"{text!r} is not an amount such as 12.50 (digits, one '.', no sign)")
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not an amount") from None
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_DECIMALS:
        raise ValueError(f"{text!r} has more than {MAX_DECIMALS} decimals")
    if amount <= 0:
        raise ValueError(f"{text!r} is not above 0")
    return amount


def _check_row(row: InputRow, make_order_no: Any) -> OrderRow:
    extra = row.extra
    if row.reason is not None and row.reason is not Reason.DUPLICATE:
        # A SIM may be topped up twice in one file; a repeated pay_id or order_no may not.
        return OrderRow(row.row, row.raw, None, False, str(row.reason), EXPLANATIONS[row.reason],
                        row.raw)  # fmt: skip
    sim = row.iccid or iccid.check(row.raw)[0]

    def bad(code: RowReason, why: str, value: str) -> OrderRow:
        return OrderRow(row.row, sim, None, False, str(code), why, value)

    package = extra.get("package_code", "")
    if not package:
        return bad(RowReason.NO_PACKAGE_CODE, "the plan code (package_code) is empty", package)
    periods_text = extra.get("periods", "")
    if not _PERIODS.fullmatch(periods_text) or int(periods_text) < 1:
        return bad(RowReason.BAD_PERIODS, "periods must be a whole number of at least 1",
                   periods_text)  # fmt: skip
    try:
        amount = parse_amount(extra.get("amount", ""))
    except ValueError as exc:
        return bad(RowReason.BAD_AMOUNT, f"amount: {exc}", extra.get("amount", ""))
    currency = extra.get("currency", "").upper()
    if not is_currency(currency):
        return bad(RowReason.BAD_CURRENCY, "currency must be an ISO 4217 code such as EUR",
                   extra.get("currency", ""))  # fmt: skip
    pay_id = extra.get("pay_id", "")
    if not pay_id:
        return bad(RowReason.NO_PAY_ID, "pay_id (the payment of this order) is empty", pay_id)
    if not wire.is_valid_id(pay_id):
        return bad(RowReason.BAD_PAY_ID, f"pay_id: {_id_problem(pay_id)}", pay_id)
    order_no = extra.get("order_no", "")
    if order_no and not wire.is_valid_id(order_no):
        return bad(RowReason.BAD_ORDER_NO, f"order_no: {_id_problem(order_no)}", order_no)
    pay_time = extra.get("pay_time", "")
    if pay_time and not _PAY_TIME.fullmatch(pay_time):
        return bad(RowReason.BAD_PAY_TIME, "pay_time must look like 2026-11-29 08:00:00",
                   pay_time)  # fmt: skip
    renewal = extra.get("auto_renewal", "").lower()
    if renewal not in ("", "0", "1", "yes", "no", "true", "false"):
        return bad(RowReason.BAD_AUTO_RENEWAL, "auto_renewal must be 0 or 1", renewal)
    top_up = TopUp(
        order_no=order_no or make_order_no(row.row), iccid=sim, package_code=package,
        periods=int(periods_text), amount=amount, currency=currency, pay_id=pay_id,
        pay_type=extra.get("pay_type", ""), pay_time=pay_time,
        auto_renewal=renewal in ("1", "yes", "true"),
    )  # fmt: skip
    return OrderRow(row.row, sim, top_up, bool(order_no))


def _id_problem(value: str) -> str:
    try:
        wire.validate_id(value, wire.IdKind.ORDER_NO)
    except errors.InputError as exc:
        return str(exc).split(" ", 1)[-1]
    return "not an id"


def read_orders(
    path: str | Path,
    *,
    sheet: str | None = None,
    stdin: IO[bytes] | None = None,
    make_order_no: Any = generate_order_no,
) -> OrderInput:
    """Read and check every row of an `orders create` file; InputError for the file as a whole
    (e.g. a missing column), per-row problems in each `OrderRow`."""
    table = read_iccids(path, sheet=sheet, extra_columns=ORDER_COLUMNS, stdin=stdin)
    return orders_of(table, make_order_no)


def read_order_table(
    path: str | Path, *, sheet: str | None = None, stdin: IO[bytes] | None = None
) -> InputTable:
    """An `orders create` file as read, before its rows are checked (`orders_of` checks them)."""
    return read_iccids(path, sheet=sheet, extra_columns=ORDER_COLUMNS, stdin=stdin)


def orders_of(table: InputTable, make_order_no: Any = generate_order_no) -> OrderInput:
    """Check every row of an `orders create` table (`read_orders` without the reading): a
    worker checks the rows its job carries, with the order numbers fixed when it was enqueued."""
    headers = {h.strip().casefold() for h in table.headers}
    missing = [
        name for name in REQUIRED_COLUMNS
        if not any(alias.casefold() in headers for alias in ORDER_COLUMNS[name])
    ]  # fmt: skip
    if missing:
        raise errors.InputError(
            f"missing column(s) {', '.join(missing)}; an orders file has the columns iccid, "
            "package_code, periods, amount, currency, pay_id and optionally order_no, pay_type, "
            "pay_time, auto_renewal. Nothing was sent",
            path=table.source,
        )
    rows = [_check_row(row, make_order_no) for row in table.rows]
    rows = _mark_duplicates(rows, "order_no", RowReason.DUPLICATE_ORDER_NO)
    rows = _mark_duplicates(rows, "pay_id", RowReason.DUPLICATE_PAY_ID)
    return OrderInput(table.source, rows)


def _mark_duplicates(rows: list[OrderRow], field: str, code: RowReason) -> list[OrderRow]:
    first: dict[str, int] = {}
    marked = []
    for r in rows:
        if r.top_up is None:
            marked.append(r)
            continue
        value = getattr(r.top_up, field)
        if value in first:
            why = f"{field} {value} is on row {first[value]} already"
            marked.append(OrderRow(r.row, r.shown_iccid, None, False, str(code), why, value))
        else:
            first[value] = r.row
            marked.append(r)
    return marked


def totals_by_currency(pairs: Iterable[tuple[Decimal, str]]) -> dict[str, tuple[int, Decimal]]:
    """Count and exact sum per currency, currencies sorted."""
    counts: Counter[str] = Counter()
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for amount, currency in pairs:
        counts[currency] += 1
        sums[currency] += amount
    return {c: (counts[c], sums[c]) for c in sorted(counts)}


def totals_json(totals: Mapping[str, tuple[int, Decimal]]) -> dict[str, dict[str, object]]:
    return {c: {"orders": n, "amount": f"{amount:f}"} for c, (n, amount) in totals.items()}


def totals_line(totals: Mapping[str, tuple[int, Decimal]]) -> str:
    return "; ".join(f"{n} order(s) {amount:f} {c}" for c, (n, amount) in totals.items()) or "none"


def _refuse(order_input: OrderInput, report_dir: Path | None) -> errors.InputError:
    """The refusal of a file with invalid rows (nothing sent, no run): exit 2, rows listed."""
    run_id = new_run_id()
    target = prepare_report_dir(bulk.report_dir_for(run_id, report_dir))
    bad = [r for r in order_input.rows if r.top_up is None]
    _write_items(target, [_plan_line(r, "") for r in order_input.rows if r.top_up is None])
    counts = order_input.counts
    _write_summary(target, {
        "run_id": run_id, "kind": str(LookupKind.CREATE_ORDER), "input_rows": counts.input_rows,
        "valid": counts.valid, "invalid": counts.invalid, "duplicates": counts.duplicates,
        "outcomes": dict(Counter(str(r.outcome) for r in bad)), "exit_code": int(ExitCode.BAD_INPUT),
    })  # fmt: skip
    if not counts.valid:
        error: errors.InputError = errors.InvalidRowsError(
            order_input.source,
            [errors.RejectedRow(r.row, r.value, f"{r.reason_code}: {r.reason}") for r in bad],
            str(target),
            advice=f"No row can be sent; nothing was sent. The rows are in {target / ITEMS_CSV}",
        )
    else:
        error = errors.InvalidRowsError(
            order_input.source,
            [errors.RejectedRow(r.row, r.value, f"{r.reason_code}: {r.reason}") for r in bad],
            str(target),
            advice="Nothing was sent. Fix the file, or pass --skip-invalid to send only the "
            f"valid rows. The rejected rows are listed in {target / ITEMS_CSV}",
        )
    error.report_dir = target
    return error


# ---------------------------------------------------------------- orders create


def start_orders(
    journal: runs.Lazy[Journal],
    client: runs.Lazy[LookupClient],
    settings: Settings,
    order_input: OrderInput,
    *,
    skip_invalid: bool = False,
    report_dir: Path | None = None,
    timeout: float | None = None,
    progress: runs.ProgressFactory = runs.no_progress,
    say: runs.Say = runs._silent,
    run_id: str | None = None,
) -> runs.RunResult:
    """Record every valid row's order as a new CREATE_ORDER run, and drive it.

    Invalid or duplicate rows refuse the whole file (exit 2, nothing sent, no run) unless
    `skip_invalid`; a file with no valid row is refused in any case. `run_id`: the id to give
    the run (a worker's job chooses it when enqueued); default a new one.
    """
    say(f"{order_input.source}: {order_input.counts.describe()}")
    check_orders(order_input, skip_invalid=skip_invalid, report_dir=report_dir)
    items, orders = [], {}
    for r in order_input.rows:
        if r.top_up is None:
            items.append(PlannedItem(r.row, r.shown_iccid, str(LookupKind.CREATE_ORDER), "",
                                     outcome=r.outcome, reason_code=r.reason_code,
                                     reason=r.reason))  # fmt: skip
        else:
            items.append(PlannedItem(r.row, r.top_up.iccid, str(LookupKind.CREATE_ORDER), ""))
            orders[str(r.row)] = order_to_option(r.top_up, r.given)
    planned = PlannedRows(items, order_input.counts, order_input.source, "", from_file=True)
    return start_planned_lookup(
        journal, client, settings, planned, LookupKind.CREATE_ORDER,
        options={OPTION_ORDERS: orders}, max_age=0, report_dir=report_dir, skip_invalid=True,
        timeout=timeout, progress=progress, say=say, run_id=run_id,
    )  # fmt: skip


def check_orders(
    order_input: OrderInput, *, skip_invalid: bool, report_dir: Path | None = None
) -> None:
    """Refuse `order_input` as `start_orders` would (exit 2, the refusal report written):
    invalid or duplicate rows without `skip_invalid`, or no valid row at all."""
    counts = order_input.counts
    if ((counts.invalid or counts.duplicates) and not skip_invalid) or not counts.valid:
        raise _refuse(order_input, report_dir)


ORDER_ITEM_FIELDS: Final = (
    "row", "iccid", "outcome", "reason_code", "reason", "order_no", "order_id", "amount",
    "currency", "package_code", "periods", "pay_id",
)  # fmt: skip


def _plan_line(r: OrderRow, outcome: str, price_check: str = "") -> dict[str, object]:
    t = r.top_up
    return {
        "row": r.row, "iccid": r.shown_iccid, "outcome": outcome or str(r.outcome or ""),
        "reason_code": r.reason_code, "reason": r.reason,
        "order_no": t.order_no if t and r.given else "",
        "order_id": "", "amount": f"{t.amount:f}" if t else "", "currency": t.currency if t else "",
        "package_code": t.package_code if t else "", "periods": t.periods if t else "",
        "pay_id": t.pay_id if t else "", "price_check": price_check,
    }  # fmt: skip


def _write_items(
    folder: Path, lines: Sequence[Mapping[str, object]], fields: Sequence[str] = ORDER_ITEM_FIELDS
) -> None:
    _write_items_to(folder / ITEMS_CSV, lines, fields)


def _write_summary(folder: Path, summary: Mapping[str, object]) -> None:
    with atomic_file(folder / SUMMARY_JSON) as out:
        out.write(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")


def _order_lines(run: LookupRun) -> list[dict[str, object]]:
    stored = run.options.get(OPTION_ORDERS)
    stored = stored if isinstance(stored, dict) else {}
    lines = []
    for a in run.answers:
        line: dict[str, object] = {
            "row": a.row, "iccid": a.iccid, "outcome": a.outcome, "reason_code": a.reason_code,
            "reason": a.reason,
        }  # fmt: skip
        if str(a.row) in stored:
            t = order_from_option(stored[str(a.row)], a.iccid).top_up
            amount, currency = f"{t.amount:f}", t.currency
            found = a.order or {}
            if a.outcome == OutcomeCode.EXISTS and found.get("amount") and found.get("currency"):
                amount, currency = str(found["amount"]), str(found["currency"])  # Linksfield's
            line |= {
                "order_no": t.order_no, "order_id": found.get("order_id", ""), "amount": amount,
                "currency": currency, "package_code": t.package_code, "periods": t.periods,
                "pay_id": t.pay_id,
            }  # fmt: skip
        lines.append(line)
    return lines


def _money_totals(lines: Iterable[Mapping[str, object]], outcomes: Iterable[str]) -> Any:
    wanted = set(outcomes)
    return totals_by_currency(
        (Decimal(str(line["amount"])), str(line["currency"]))
        for line in lines
        if line["outcome"] in wanted and line.get("amount")
    )


ORDER_OUTCOMES: Final = (
    OutcomeCode.CREATED, OutcomeCode.EXISTS, OutcomeCode.FAILED, OutcomeCode.INVALID,
    OutcomeCode.DUPLICATE, OutcomeCode.PENDING,
)  # fmt: skip


def orders_reporter(run: LookupRun) -> ExitCode:
    """items.csv (+ order_no, order_id, amount, currency), report.xlsx (Summary with exact totals
    per currency of the created and existing orders, Items, Totals) and summary.json (last)."""
    code = exit_code_of(run)
    lines = _order_lines(run)
    totals = _money_totals(lines, (OutcomeCode.CREATED, OutcomeCode.EXISTS))
    counts = Counter(str(line["outcome"]) for line in lines)
    record = run.record
    _write_items(run.report_dir, lines)
    facts: list[tuple[str, object]] = [
        ("Run", record.run_id), ("Input", record.source), ("Input rows", record.input_rows),
        ("Valid", record.valid), ("Started at (UTC)", record.started_at),
        ("Finished at (UTC)", record.finished_at or "not finished"), ("Exit code", int(code)),
    ]  # fmt: skip
    facts += [(f"Total {c} ({n} created or existing)", amount) for c, (n, amount) in totals.items()]
    fit = MAX_ROWS - 1
    columns = [Column(f, "int" if f in ("row", "periods") else "money" if f == "amount" else "text")
               for f in ORDER_ITEM_FIELDS]  # fmt: skip
    rows = ([_cell(line.get(f, ""), c.kind) for f, c in zip(ORDER_ITEM_FIELDS, columns, strict=True)]
            for line in lines[:fit])  # fmt: skip
    write_workbook(
        run.report_dir / REPORT_XLSX,
        [
            Sheet("Items", columns, rows),
            Sheet(
                "Totals",
                [Column("currency"), Column("orders", "int"), Column("amount", "money")],
                [[c, n, amount] for c, (n, amount) in totals.items()],
            ),
        ],
        summary=Summary(
            title=f"lf-bulk top-ups {record.run_id}",
            facts=facts,
            counts=[(str(o), counts.get(str(o), 0)) for o in ORDER_OUTCOMES],
        ),
    )
    _write_summary(run.report_dir, {
        "run_id": record.run_id, "kind": record.operation, "input_rows": record.input_rows,
        "valid": record.valid, "invalid": record.invalid, "duplicates": record.duplicates,
        "outcomes": {str(o): counts.get(str(o), 0) for o in ORDER_OUTCOMES},
        "totals": totals_json(totals), "started_at": record.started_at,
        "finished_at": record.finished_at,
        "stop_reason": record.details.get("stop_reason", "") if code else "",
        "exit_code": int(code),
    })  # fmt: skip
    return code


def _cell(value: object, kind: str) -> object:
    if value == "" or value is None:
        return None
    if kind == "money":
        return Decimal(str(value))
    if kind == "int":
        return int(str(value))
    return str(value)


# ---------------------------------------------------------------- the dry run


@dataclass(frozen=True)
class OrderPlan:
    report_dir: Path
    counts: InputCounts
    totals: dict[str, tuple[int, Decimal]]
    price_differs: int
    price_unknown: int


def plan_orders(
    client: runs.Lazy[LookupClient],
    settings: Settings,
    order_input: OrderInput,
    *,
    report_dir: Path | None = None,
    max_age: float = DEFAULT_MAX_AGE,
) -> OrderPlan:
    """The plan of `orders create` (nothing is sent): every row `would_create` (or invalid /
    duplicate), exact totals per currency, and where the answer cache holds the SIM's plans
    (`sims plans`, younger than `max_age`), whether the amount is the plan's price x periods
    (`price_check`: `ok`, `differs: ...`, or empty when unknown)."""
    target = prepare_report_dir(bulk.report_dir_for("dry-run-" + new_run_id(), report_dir))
    api = runs._get(client)
    lines, differs, unknown = [], 0, 0
    with store.open_answer_cache(settings.store_url, settings.home) as cache:
        asker = cache.asker(runs.endpoint_of(settings), api.partner_code)
        for r in order_input.rows:
            if r.top_up is None:
                lines.append(_plan_line(r, ""))
                continue
            check = _price_check(cache, asker, r.top_up, max_age)
            differs += check.startswith("differs")
            unknown += not check
            lines.append(_plan_line(r, str(OutcomeCode.WOULD_CREATE), check))
    totals = _money_totals(lines, (str(OutcomeCode.WOULD_CREATE),))
    _write_items(target, lines, (*ORDER_ITEM_FIELDS, "price_check"))
    counts = order_input.counts
    _write_summary(target, {
        "kind": str(LookupKind.CREATE_ORDER), "dry_run": True, "input_rows": counts.input_rows,
        "valid": counts.valid, "invalid": counts.invalid, "duplicates": counts.duplicates,
        "outcomes": dict(Counter(str(line["outcome"]) for line in lines)),
        "totals": totals_json(totals), "price_differs": differs, "price_unknown": unknown,
        "planned_at": utc_now(), "exit_code": 0,
    })  # fmt: skip
    return OrderPlan(target, counts, totals, differs, unknown)


def _price_check(cache: AnswerCache, asker: str, top_up: TopUp, max_age: float) -> str:
    found = cache.get(asker, Call.PLANS, f"{top_up.iccid}|", max_age)
    if found is None:
        return ""
    try:
        plans: list[PlanOffer] = decode(Call.PLANS, found[0]).value or []
    except (ValueError, TypeError, KeyError):
        return ""
    plan = next((p for p in plans if p.package_code == top_up.package_code), None)
    if plan is None:
        return f"differs: the SIM's plans have no {top_up.package_code}"
    if plan.price is None:
        return ""
    expected = plan.price * top_up.periods
    if expected != top_up.amount or plan.currency != top_up.currency:
        return (
            f"differs: plan price {plan.price:f} x {top_up.periods} = {expected:f} {plan.currency}"
        )
    return "ok"


# ---------------------------------------------------------------- payments check

OPTION_OUTPUT: Final = "output"
"""`options` key (CHECK_PAYMENT): the workbook or .csv file to write (absolute path)."""

PAYMENT_FIELDS: Final = (
    "row", "pay_id", "outcome", "pay_status", "amount", "currency", "pay_time", "order_no",
    "iccid", "reason_code", "reason",
)  # fmt: skip


def read_pay_ids(
    path: str | Path, *, sheet: str | None = None, stdin: IO[bytes] | None = None
) -> PlannedRows:
    """The pay_ids of a file (a `pay_id` column): each a run item (its `iccid` field holds the
    pay_id); empty, malformed and repeated ones are invalid / duplicate rows."""
    return pay_ids_of(read_pay_id_table(path, sheet=sheet, stdin=stdin))


def read_pay_id_table(
    path: str | Path, *, sheet: str | None = None, stdin: IO[bytes] | None = None
) -> InputTable:
    """A `payments check` file as read, before its pay_ids are checked (`pay_ids_of`)."""
    return read_iccids(
        path, sheet=sheet, extra_columns=PAY_ID_COLUMNS, require_column=False, stdin=stdin
    )


def pay_ids_of(table: InputTable) -> PlannedRows:
    """The pay_ids of a table read by `read_pay_id_table` (a worker checks the rows its job
    carries); InputError when it has no pay_id column."""
    headers = {h.strip().casefold() for h in table.headers}
    if not any(alias.casefold() in headers for alias in PAY_ID_COLUMNS["pay_id"]):
        raise errors.InputError(
            "no pay_id column: the first row must name it (pay_id). Nothing was sent",
            path=table.source,
        )
    kind, items, seen = str(LookupKind.CHECK_PAYMENT), [], dict[str, int]()
    for row in table.rows:
        pay_id = row.extra.get("pay_id", "")
        if not pay_id:
            if not row.raw:
                continue  # a blank line
            items.append(
                PlannedItem(
                    row.row,
                    "",
                    kind,
                    "",
                    outcome=OutcomeCode.INVALID,
                    reason_code=RowReason.NO_PAY_ID,
                    reason="pay_id is empty",
                )
            )
        elif not wire.is_valid_id(pay_id):
            items.append(
                PlannedItem(
                    row.row,
                    pay_id,
                    kind,
                    "",
                    outcome=OutcomeCode.INVALID,
                    reason_code=RowReason.BAD_PAY_ID,
                    reason=f"pay_id: {_id_problem(pay_id)}",
                )
            )
        elif pay_id in seen:
            items.append(
                PlannedItem(
                    row.row,
                    pay_id,
                    kind,
                    "",
                    outcome=OutcomeCode.DUPLICATE,
                    reason_code=RowReason.DUPLICATE_PAY_ID,
                    reason=f"pay_id {pay_id} is on row {seen[pay_id]} already",
                )
            )
        else:
            seen[pay_id] = row.row
            items.append(PlannedItem(row.row, pay_id, kind, ""))  # fmt: skip
    outcomes = Counter(i.outcome for i in items)
    counts = InputCounts(len(items), outcomes[None], outcomes[OutcomeCode.INVALID],
                         outcomes[OutcomeCode.DUPLICATE])  # fmt: skip
    return PlannedRows(items, counts, table.source, "", from_file=True)


def check_output_path(output: Path) -> Path:
    """`output` made absolute, its folder existing and its suffix .xlsx or .csv; InputError."""
    output = output.expanduser().absolute()
    if output.suffix.lower() not in (".xlsx", ".csv"):
        raise errors.InputError(f"{output}: the output must end in .xlsx or .csv")
    if not output.parent.is_dir():
        raise errors.InputError(f"{output.parent}: no such folder for the output")
    return output


def start_payments(
    journal: runs.Lazy[Journal],
    client: runs.Lazy[LookupClient],
    settings: Settings,
    planned: PlannedRows,
    *,
    output: Path | None = None,
    skip_invalid: bool = False,
    report_dir: Path | None = None,
    timeout: float | None = None,
    progress: runs.ProgressFactory = runs.no_progress,
    say: runs.Say = runs._silent,
    run_id: str | None = None,
) -> runs.RunResult:
    """Ask the Payment service for every pay_id as a new CHECK_PAYMENT run; the reporter writes
    `output` (default: payments.xlsx in the report folder) besides items.csv and summary.json.
    `run_id`: the id to give the run (a worker's job chooses it when enqueued)."""
    say(f"{planned.source}: {planned.counts.describe()}")
    options = {OPTION_OUTPUT: str(check_output_path(output))} if output is not None else {}
    return start_planned_lookup(
        journal, client, settings, planned, LookupKind.CHECK_PAYMENT, options=options,
        max_age=0, report_dir=report_dir, skip_invalid=skip_invalid, timeout=timeout,
        progress=progress, say=say, run_id=run_id,
    )  # fmt: skip


def payment_output(run: LookupRun) -> Path:
    given = run.options.get(OPTION_OUTPUT)
    return Path(given) if isinstance(given, str) and given else run.report_dir / "payments.xlsx"


def _payment_line(a: SimAnswers) -> dict[str, object]:
    p = a.payment or {}
    return {
        "row": a.row, "pay_id": a.iccid, "outcome": a.outcome,
        "pay_status": p.get("pay_status", ""), "amount": p.get("amount", ""),
        "currency": p.get("currency", ""), "pay_time": p.get("pay_time", ""),
        "order_no": p.get("order_no", ""), "iccid": p.get("iccid", ""),
        "reason_code": a.reason_code, "reason": a.reason,
    }  # fmt: skip


def payment_totals(
    lines: Iterable[Mapping[str, object]],
) -> dict[tuple[str, str], tuple[int, Decimal]]:
    """Count and exact sum per (pay_status, currency) of the payments found."""
    counts: Counter[tuple[str, str]] = Counter()
    sums: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for line in lines:
        if line["outcome"] != OutcomeCode.LOOKED_UP:
            continue
        key = (str(line["pay_status"]), str(line["currency"]))
        counts[key] += 1
        if line["amount"]:
            sums[key] += Decimal(str(line["amount"]))
    return {key: (counts[key], sums[key]) for key in sorted(counts)}


def payments_reporter(run: LookupRun) -> ExitCode:
    """The Payments sheet (and Totals per status and currency, exact) in the output file
    (`.csv`: the Payments rows only), items.csv and summary.json in the report folder."""
    code = exit_code_of(run)
    lines = [_payment_line(a) for a in run.answers]
    totals = payment_totals(lines)
    output = payment_output(run)
    if output.suffix.lower() == ".csv":
        _write_items_to(output, lines, PAYMENT_FIELDS)
    else:
        kinds = {"row": "int", "amount": "money"}
        columns = [Column(f, kinds.get(f, "text")) for f in PAYMENT_FIELDS]  # type: ignore[arg-type]
        write_workbook(output, [
            Sheet("Payments", columns,
                  ([_cell(line[f], c.kind) for f, c in zip(PAYMENT_FIELDS, columns, strict=True)]
                   for line in lines[: MAX_ROWS - 1])),
            Sheet("Totals", [Column("pay_status"), Column("currency"), Column("payments", "int"),
                             Column("amount", "money")],
                  [[s, c, n, amount] for (s, c), (n, amount) in totals.items()]),
        ])  # fmt: skip
    _write_items(run.report_dir, lines, PAYMENT_FIELDS)
    counts = Counter(str(line["outcome"]) for line in lines)
    record = run.record
    _write_summary(run.report_dir, {
        "run_id": record.run_id, "kind": record.operation, "input_rows": record.input_rows,
        "valid": record.valid, "invalid": record.invalid, "duplicates": record.duplicates,
        "outcomes": dict(sorted(counts.items())), "output": str(output),
        "totals": [{"pay_status": s, "currency": c, "payments": n, "amount": f"{amount:f}"}
                   for (s, c), (n, amount) in totals.items()],
        "started_at": record.started_at, "finished_at": record.finished_at,
        "stop_reason": record.details.get("stop_reason", "") if code else "",
        "exit_code": int(code),
    })  # fmt: skip
    return code


def _write_items_to(
    path: Path, lines: Sequence[Mapping[str, object]], fields: Sequence[str]
) -> None:
    with atomic_file(path, newline="") as out:
        writer = csv.writer(out)
        writer.writerow(fields)
        for line in lines:
            writer.writerow(neutralise(str(line.get(f, ""))) for f in fields)


register_reporter(LookupKind.CREATE_ORDER, orders_reporter)
register_reporter(LookupKind.CHECK_PAYMENT, payments_reporter)
