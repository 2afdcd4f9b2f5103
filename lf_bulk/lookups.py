"""Per-SIM look-ups (Vshop) as journaled runs: verify, status, plans, renewals, cancel renewals.

A look-up run is a run of kind `lookup` in the journal (`runs list/show/resume/wait/cancel` apply),
its `operation` the `LookupKind`, one item per input row. Each SIM needs the calls of its kind
(`CALLS`), one at a time, each answer journaled (JSON, with the time it was fetched) before it
counts, so that a resumed run never asks again what was answered: nothing is looked up twice
beyond the calls that were in flight. A SIM's error answer (`CARD_NOT_FOUND`, ...) is an answer,
not a failure of the run.

Answers are also kept in a cache under `<home>` (`lf_bulk.answers`): a new run reuses an answer
younger than its `max_age`, so a second report on the same SIMs costs no quota.

CANCEL_RENEWAL is the one mutating kind: the renewal is queried, the cancel is journaled as
`sending` before it goes out, a lost answer is settled by querying the renewal again (gone:
cancelled; still there: sent again), never by a blind re-send, and at the end every cancelled
renewal is read once more (still active: `failed`). Without the option `yes` only the queries
are made (the plan).

The command that starts a run stores what it needs later (the output path, ...) in `options`;
the reporter registered for the run's kind (`register_reporter`) is called at the end of every
drive, a stop included, and decides the exit code.
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import json
import logging
import re
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, Protocol

from lf_bulk import bulk, errors, iccid, quota, runs, store, wire
from lf_bulk.answers import Answer, AnswerCache, decode, encode, of_error
from lf_bulk.api_values import (
    CardInfo,
    CreatedOrder,
    HeldPlan,
    Order,
    PaymentResult,
    PlanOffer,
    Renewal,
    TopUp,
)
from lf_bulk.engine import Progress
from lf_bulk.errors import (
    InputError,
    InvalidRowsError,
    QuotaExhausted,
    RenewalNotFound,
    ReportError,
    RunRefused,
    RunStopped,
    SystemBusy,
    VshopError,
)
from lf_bulk.exitcodes import ExitCode
from lf_bulk.files import atomic_file, neutralise
from lf_bulk.iccid import EXPLANATIONS, Reason
from lf_bulk.journal import (
    FINISHED,
    LOOKUP_KIND,
    NOT_FINISHED,
    RUNNING,
    CallRecord,
    CallState,
    ItemRecord,
    Journal,
    PlannedItem,
    RunRecord,
    new_run_id,
    utc_now,
)
from lf_bulk.locking import exclusive
from lf_bulk.models import InputCounts, OutcomeCode
from lf_bulk.pacing import Pacer
from lf_bulk.reports import (
    ITEMS_CSV,
    SUMMARY_JSON,
    ItemOutcome,
    prepare_report_dir,
    write_run_report,
)
from lf_bulk.reports import RunSummary as BulkSummary
from lf_bulk.settings import Settings
from lf_bulk.sources import InputTable

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE: Final = 12 * 3600.0
"""Seconds a cached answer may be reused by a new run (`--max-age`, default 12h; 0: fresh)."""


_DURATION = re.compile(r"\s*(\d{1,6})\s*([smhd]?)\s*", re.IGNORECASE)
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_max_age(text: str) -> float:
    """`--max-age` in seconds: `0` (every answer fresh), or a whole number with a unit `s`, `m`,
    `h` or `d` (`90m`, `12h`, `2d`). ValueError names what is accepted."""
    found = _DURATION.fullmatch(text)
    if found is None or (not found[2] and int(found[1]) != 0):
        raise ValueError(
            f"{text!r} is not a duration: give 0 (fresh answers) or a number with a unit, "
            "e.g. 90m, 12h or 2d"
        )
    return float(int(found[1]) * _UNIT_SECONDS[(found[2] or "s").lower()])


class LookupKind(StrEnum):
    """What a look-up run asks per SIM: the run's `operation`."""

    VERIFY = "verify"
    STATUS = "status"
    PLANS = "plans"
    RENEWALS = "renewals"
    CANCEL_RENEWAL = "cancel_renewal"
    CREATE_ORDER = "create_order"  # `orders create`: one top-up per row (mutating)
    CHECK_PAYMENT = "check_payment"  # `payments check`: an item's `iccid` holds its pay_id


class Call(StrEnum):
    """One Vshop call for one SIM."""

    VERIFY = "verify"  # /singleVerify
    HELD_ORDERS = "held_orders"  # /singleQueryOrder
    RENEWAL = "renewal"  # /queryAutoRenewalRecord
    PLANS = "plans"  # /singleServicePlanPage (every page)
    CANCEL_RENEWAL = "cancel_renewal"  # /cancelAutoRenewalRecord (mutating)
    FIND_ORDER = "find_order"  # GET /mall/order?purchase_order_id= (the row's order_no)
    CREATE_ORDER = "create_order"  # /synPartner/SynOrderInfo (mutating, not idempotent)
    PAYMENT = "payment"  # Payment service /resultQuery


MUTATING: Final = frozenset({Call.CANCEL_RENEWAL, Call.CREATE_ORDER})
"""Calls that change something: journaled `sending` first; a lost answer is settled by a look."""
UNCACHED: Final = frozenset({Call.FIND_ORDER, Call.CREATE_ORDER, Call.PAYMENT})
"""Calls whose answers are never taken from (or put in) the answer cache: settling a lost order
needs today's truth, and a payment's status is what the user asks for."""


CALLS: Final[Mapping[LookupKind, tuple[Call, ...]]] = {
    LookupKind.VERIFY: (Call.VERIFY,),
    LookupKind.STATUS: (Call.VERIFY, Call.HELD_ORDERS, Call.RENEWAL),
    LookupKind.PLANS: (Call.PLANS,),
    LookupKind.RENEWALS: (Call.RENEWAL,),
    # the query, the cancel, and the re-read at the end
    LookupKind.CANCEL_RENEWAL: (Call.RENEWAL, Call.CANCEL_RENEWAL, Call.RENEWAL),
    # a given order_no is looked up first; the send; the look that settles a lost answer
    LookupKind.CREATE_ORDER: (Call.FIND_ORDER, Call.CREATE_ORDER, Call.FIND_ORDER),
    LookupKind.CHECK_PAYMENT: (Call.PAYMENT,),
}
"""The calls one SIM costs at most, per kind (a SIM whose card is not found costs fewer; a plan
catalogue of more than one page costs more): for quota plans."""

OPTION_AREA: Final = "area"
"""`options` key (PLANS): the area to ask plans for (`--area`), absent for all."""
OPTION_YES: Final = "yes"
"""`options` key (CANCEL_RENEWAL): True to send the cancels; otherwise only the plan."""
OPTION_ORDERS: Final = "orders"
"""`options` key (CREATE_ORDER): the order of every valid row, by its row number as text
(`topup_to_options`): the order numbers generated for rows without one are fixed here, in the
journal, before anything is sent."""


@dataclass(frozen=True)
class SimAnswers:
    """One input row of a look-up run and what the API answered about its SIM."""

    row: int
    iccid: str
    group_id: str
    outcome: str
    """An OutcomeCode value: looked_up / verified / rejected / cancelled / no_renewal /
    not_found / failed / invalid / duplicate / pending."""
    reason_code: str
    reason: str
    card: CardInfo | None
    held: tuple[HeldPlan, ...] | None
    renewal: Renewal | None
    plans: tuple[PlanOffer, ...] | None
    fetched_at: float | None
    """When the oldest answer used here was fetched (epoch seconds), None when none was."""
    order: Mapping[str, str] | None = None
    """CREATE_ORDER: the order Linksfield holds for the row (`order_id`, and from a look-up
    `amount`, `currency`, `pay_status`), None when none is known."""
    payment: Mapping[str, str] | None = None
    """CHECK_PAYMENT: the payment's result (`payment_value`), None when not found or not asked."""


@dataclass
class LookupRun:
    """A look-up run as its reporter sees it: the journal's record and every row's answers."""

    record: RunRecord
    answers: list[SimAnswers]
    """In input order."""
    report_dir: Path
    options: dict[str, Any]
    """What the command stored when it started the run (output path, area, ...)."""

    @property
    def kind(self) -> LookupKind:
        return LookupKind(self.record.operation)


class LookupClient(Protocol):
    """What a look-up run needs of `lf_bulk.client.LinksfieldClient`."""

    pacer: Pacer
    base_url: str
    partner_code: str

    def verify_card(self, iccid: str) -> CardInfo: ...
    def held_plans(self, iccid: str) -> list[HeldPlan]: ...
    def find_renewal(self, iccid: str) -> Renewal | None: ...
    def list_plans(self, iccid: str, area: str | None = None) -> list[PlanOffer]: ...
    def cancel_renewal(self, iccid: str, order_no: str, pay_id: str) -> None: ...
    def find_orders(self, key_kind: str, key: str) -> list[Order]: ...
    def create_order(self, top_up: TopUp) -> CreatedOrder: ...
    def payment_result(self, pay_id: str) -> PaymentResult: ...


Reporter = Callable[[LookupRun], ExitCode]
"""Writes a kind's reports (into `run.report_dir` or where `run.options` says) and returns the
exit code of the run (NOT_FINISHED while any row is pending)."""

_REPORTERS: dict[LookupKind, Reporter] = {}


def register_reporter(kind: LookupKind, reporter: Reporter) -> None:
    """Use `reporter` for the runs of `kind` from now on (instead of the default items.csv and
    summary.json)."""
    _REPORTERS[kind] = reporter


# The module that registers each kind's reporter: they build on this module, so it imports them
# only when a run of theirs ends (a `runs resume` in a fresh process has imported none of them).
_REPORTER_MODULES: Final[Mapping[LookupKind, str]] = {
    LookupKind.STATUS: "lf_bulk.fleet",
    LookupKind.PLANS: "lf_bulk.catalogue",
    LookupKind.RENEWALS: "lf_bulk.renewals",
    LookupKind.CANCEL_RENEWAL: "lf_bulk.renewals",
    LookupKind.CREATE_ORDER: "lf_bulk.topups",
    LookupKind.CHECK_PAYMENT: "lf_bulk.topups",
}


def _reporter_for(kind: LookupKind) -> Reporter:
    if kind not in _REPORTERS and kind in _REPORTER_MODULES:
        importlib.import_module(_REPORTER_MODULES[kind])
    return _REPORTERS.get(kind, default_reporter)


VERIFIED: Final = OutcomeCode.VERIFIED
REJECTED: Final = OutcomeCode.REJECTED
LOOKED_UP: Final = OutcomeCode.LOOKED_UP
CANCELLED: Final = OutcomeCode.CANCELLED
NO_RENEWAL: Final = OutcomeCode.NO_RENEWAL
NOT_FOUND: Final = OutcomeCode.NOT_FOUND
CREATED: Final = OutcomeCode.CREATED
EXISTS: Final = OutcomeCode.EXISTS

LOOKUP_OUTCOMES: Final = (
    str(VERIFIED),
    str(REJECTED),
    str(LOOKED_UP),
    str(CANCELLED),
    str(NO_RENEWAL),
    str(NOT_FOUND),
    str(CREATED),
    str(EXISTS),
    str(OutcomeCode.FAILED),
    str(OutcomeCode.INVALID),
    str(OutcomeCode.DUPLICATE),
    str(OutcomeCode.PENDING),
)
"""Every outcome a look-up row can have, in report order."""

# Vshop codes that say the card is not this partner's to look at.
CARD_NOT_FOUND: Final = "CARD_NOT_FOUND"
CARD_NOT_OWNED: Final = "CARD_NOT_OWNED"
CARD_INACTIVE: Final = "CARD_INACTIVE"
PAY_NOT_FOUND: Final = "PAY_NOT_FOUND"
NOT_FOUND_CODES: Final = frozenset({CARD_NOT_FOUND, CARD_NOT_OWNED, PAY_NOT_FOUND})
DUPLICATE_ORDER_NO: Final = "DUPLICATE_ORDER_NO"
ACTIVE: Final = "ACTIVE"

REASON_WOULD_CANCEL: Final = "WOULD_CANCEL"
REASON_LOST: Final = "LOST"
REASON_STILL_ACTIVE: Final = "STILL_ACTIVE"
REASON_RENEWAL_GONE: Final = "RENEWAL_NOT_FOUND"
REASON_QUOTA: Final = "QUOTA"

MAX_ORDER_SENDS: Final = 5
"""Sends of one order (each after a look found nothing) before the row fails."""
MAX_CANCEL_SENDS: Final = 3
"""Cancels sent for one renewal (each after a lookup showed it still there) before it fails."""
MAX_FAILURES_IN_A_ROW: Final = 5
"""Calls failing one after another (after the transport's retries) that stop the drive."""
SOURCE_API: Final = "api"
SOURCE_CACHE: Final = "cache"
OPTIONS_DIGEST: Final = "options_sha256"


# ---------------------------------------------------------------- what to do next, per SIM


@dataclass(frozen=True)
class Asked:
    """A recorded call with its decoded answer (None while a mutating call is unanswered)."""

    call: Call
    answer: Answer | None
    request: Mapping[str, Any]
    fetched_at: float | None = None


@dataclass(frozen=True)
class Step:
    """The next thing to do for one SIM: a call to make, or (`call` None) its outcome."""

    call: Call | None = None
    final: bool = False
    """The re-read of a cancelled renewal: made after every other SIM's calls."""
    renewal: Renewal | None = None
    """For CANCEL_RENEWAL: the renewal to cancel (its order_no and pay_id)."""
    outcome: str = ""
    reason_code: str = ""
    reason: str = ""


def _done(outcome: str, reason_code: str = "", reason: str = "") -> Step:
    return Step(outcome=outcome, reason_code=reason_code, reason=reason)


def next_step(
    kind: LookupKind, asked: Sequence[Asked], *, yes: bool = False, look_first: bool = True
) -> Step:
    """What a SIM of a `kind` run needs next, from the calls made for it so far (in order).

    Pure: the driver journals each answer and asks again, so a resumed run continues exactly
    where the journal says it stopped. `look_first` (CREATE_ORDER): the row's order_no was the
    user's, so Linksfield may have it already.
    """
    if kind is LookupKind.CANCEL_RENEWAL:
        return _next_cancel_step(asked, yes=yes)
    if kind is LookupKind.CREATE_ORDER:
        return _next_order_step(asked, look_first=look_first)
    for call in CALLS[kind]:
        answer = next((a.answer for a in asked if a.call is call and a.answer), None)
        if answer is None:
            return Step(call=call)
        if not answer.ok:
            return _error_outcome(kind, answer)
    if kind is LookupKind.VERIFY:
        card = next(a.answer for a in asked if a.call is Call.VERIFY and a.answer).value
        if card.card_status != ACTIVE:
            return _done(REJECTED, CARD_INACTIVE, f"the card's status is {card.card_status}")
        return _done(VERIFIED)
    return _done(LOOKED_UP)


def _error_outcome(kind: LookupKind, answer: Answer) -> Step:
    if kind is LookupKind.VERIFY:
        return _done(REJECTED, answer.code, answer.message)
    if answer.code in NOT_FOUND_CODES:
        return _done(NOT_FOUND, answer.code, answer.message)
    if answer.code == CARD_INACTIVE:
        return _done(LOOKED_UP, answer.code, answer.message)
    return _done(OutcomeCode.FAILED, answer.code, answer.message)


def _next_order_step(asked: Sequence[Asked], *, look_first: bool) -> Step:
    """At most one order per row: a send whose answer was lost (or DUPLICATE_ORDER_NO) is
    followed by a look-up of the order_no, and the row is sent again only when that finds
    nothing."""
    sends = [a for a in asked if a.call is Call.CREATE_ORDER]
    if not asked:
        return Step(call=Call.FIND_ORDER if look_first else Call.CREATE_ORDER)
    last = asked[-1]
    if last.call is Call.CREATE_ORDER:
        if last.answer is None or last.answer.code == DUPLICATE_ORDER_NO:
            return Step(call=Call.FIND_ORDER)  # look before anything is sent again
        if last.answer.ok:
            return _done(CREATED)
        return _done(OutcomeCode.FAILED, last.answer.code, last.answer.message)
    assert last.answer is not None and last.call is Call.FIND_ORDER
    if not last.answer.ok:
        return _done(OutcomeCode.FAILED, last.answer.code, last.answer.message)
    if last.answer.value:
        if any(a.answer is None for a in sends):
            return _done(
                CREATED, REASON_LOST, "the answer to the order was lost; the look-up found it"
            )
        return _done(EXISTS, "", "Linksfield has this order_no already; it was not sent")
    if sends and sends[-1].answer is not None:  # DUPLICATE_ORDER_NO, yet nothing to find
        return _done(
            OutcomeCode.FAILED, DUPLICATE_ORDER_NO,
            "Linksfield refused the order_no as a duplicate, but no order with it can be found",
        )  # fmt: skip
    if len(sends) >= MAX_ORDER_SENDS:
        return _done(
            OutcomeCode.FAILED, REASON_LOST,
            f"{len(sends)} sends whose answers were lost, and no order was found",
        )  # fmt: skip
    return Step(call=Call.CREATE_ORDER)


def _next_cancel_step(asked: Sequence[Asked], *, yes: bool) -> Step:
    if not asked:
        return Step(call=Call.RENEWAL)
    query = asked[0].answer
    assert query is not None and asked[0].call is Call.RENEWAL, "a cancel run starts by a query"
    if not query.ok:
        return _error_outcome(LookupKind.CANCEL_RENEWAL, query)
    target: Renewal | None = query.value
    if target is None:
        return _done(NO_RENEWAL)
    if not yes:
        return _done(
            LOOKED_UP, REASON_WOULD_CANCEL, f"auto-renewal of {target.plan_name}: --yes cancels it"
        )
    sends = sum(1 for a in asked if a.call is Call.CANCEL_RENEWAL)
    last = asked[-1]
    if len(asked) == 1:
        return Step(call=Call.CANCEL_RENEWAL, renewal=target)
    if last.call is Call.CANCEL_RENEWAL:
        if last.answer is None:  # sent, answer lost: look before anything is sent again
            return Step(call=Call.RENEWAL)
        if last.answer.ok:
            return Step(call=Call.RENEWAL, final=True)
        if last.answer.code == REASON_RENEWAL_GONE and sends > 1:
            return _done(
                CANCELLED, REASON_LOST, "an earlier cancel of this run, whose answer was lost, "
                "took effect after the renewal was looked at",
            )  # fmt: skip
        if last.answer.code == REASON_RENEWAL_GONE:
            return _done(
                NO_RENEWAL, last.answer.code, "the renewal was gone before the cancel reached it"
            )
        return _error_outcome(LookupKind.CANCEL_RENEWAL, last.answer)
    # A look after a cancel: the re-read at the end, or the settling of a lost answer.
    assert last.answer is not None
    if not last.answer.ok:
        return _error_outcome(LookupKind.CANCEL_RENEWAL, last.answer)
    now: Renewal | None = last.answer.value
    still_there = now is not None and now.order_no == target.order_no
    before = asked[-2]
    if before.call is Call.CANCEL_RENEWAL and before.answer is not None:
        if still_there:
            return _done(
                OutcomeCode.FAILED,
                REASON_STILL_ACTIVE,
                "the cancel was answered, but the renewal is still active when read again",
            )
        return _done(CANCELLED)
    if not still_there:
        return _done(
            CANCELLED, REASON_LOST, "the answer to the cancel was lost; the renewal is gone"
        )
    if sends >= MAX_CANCEL_SENDS:
        return _done(
            OutcomeCode.FAILED,
            REASON_STILL_ACTIVE,
            f"the renewal is still active after {sends} cancels whose answers were lost",
        )
    return Step(call=Call.CANCEL_RENEWAL, renewal=target)


# ---------------------------------------------------------------- starting a run


def _planned(
    rows: InputTable | Sequence[tuple[str, str]], kind: LookupKind
) -> tuple[list[PlannedItem], InputCounts, str, str]:
    """The run's items (invalid and duplicate rows with their outcome), counts, source, groups."""
    if isinstance(rows, InputTable):
        items = []
        for row in rows.rows:
            if row.reason is None:
                items.append(PlannedItem(row.row, row.iccid, kind, ""))
            else:
                outcome = (
                    OutcomeCode.DUPLICATE if row.reason is Reason.DUPLICATE else OutcomeCode.INVALID
                )
                items.append(
                    PlannedItem(row.row, row.raw, kind, "", outcome=outcome,
                                reason_code=str(row.reason), reason=EXPLANATIONS[row.reason])
                )  # fmt: skip
        return items, rows.counts, rows.source, ""
    items, groups = [], dict[str, None]()
    for (number, (raw, group_id)), (value, reason) in zip(
        enumerate(rows, start=1), iccid.validate_texts(r[0] for r in rows), strict=True
    ):
        groups[group_id] = None
        if reason is None:
            items.append(PlannedItem(number, value, kind, group_id))
        else:
            outcome = OutcomeCode.DUPLICATE if reason is Reason.DUPLICATE else OutcomeCode.INVALID
            items.append(
                PlannedItem(number, raw, kind, group_id, outcome=outcome,
                            reason_code=str(reason), reason=EXPLANATIONS[reason])
            )  # fmt: skip
    outcomes = Counter(item.outcome for item in items)
    counts = InputCounts(
        len(items),
        outcomes[None],
        outcomes[OutcomeCode.INVALID],
        outcomes[OutcomeCode.DUPLICATE],
    )
    return items, counts, "groups " + ", ".join(groups), ",".join(groups)


def _refuse(
    items: Sequence[PlannedItem],
    counts: InputCounts,
    source: str,
    kind: LookupKind,
    run_id: str,
    target: Path,
    *,
    no_valid_row: bool,
) -> InputError:
    refused = [
        ItemOutcome(p.row, p.iccid, p.outcome, p.reason_code, p.reason) for p in items if p.outcome
    ]
    now = utc_now()
    summary = BulkSummary(
        run_id, str(kind), "", counts.input_rows, counts.valid, counts.invalid, counts.duplicates,
        0, dict(Counter(str(i.outcome) for i in refused)), now, now, ExitCode.BAD_INPUT,
    )  # fmt: skip
    write_run_report(target, refused, summary)
    error: InputError
    if no_valid_row:
        error = InputError(
            f"no valid ICCID to look up ({counts.invalid} invalid, {counts.duplicates} "
            f"duplicates); nothing was sent. The rows and their reasons are in "
            f"{target / ITEMS_CSV}",
            path=source,
        )
    else:
        rejected = [errors.RejectedRow(p.row, p.iccid, p.reason_code) for p in items if p.outcome]
        error = InvalidRowsError(
            source,
            rejected,
            str(target),
            advice="Nothing was sent. Fix the file, or pass --skip-invalid to look up only the "
            f"valid rows. The rejected rows are listed in {target / ITEMS_CSV}",
        )
    error.report_dir = target
    return error


_QUOTA_WORDS: Final = {
    LookupKind.VERIFY: "the look-up (at most; answers younger than --max-age are reused)",
    LookupKind.CREATE_ORDER: "the top-ups (at most: a look-up of a given order_no, the send, "
    "and a look-up after a lost answer)",
    LookupKind.CHECK_PAYMENT: "the payment look-ups",
}


def _options_digest(options: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()


def start_lookup(
    journal: runs.Lazy[Journal],
    client: runs.Lazy[LookupClient],
    settings: Settings,
    rows: InputTable | Sequence[tuple[str, str]],
    kind: LookupKind,
    *,
    options: Mapping[str, Any] | None = None,
    max_age: float = DEFAULT_MAX_AGE,
    report_dir: Path | None = None,
    skip_invalid: bool = False,
    timeout: float | None = None,
    progress: runs.ProgressFactory = runs.no_progress,
    say: runs.Say = runs._silent,
    run_id: str | None = None,
) -> runs.RunResult:
    """Look up every SIM of `rows` as a new journaled run of `kind`, and drive it.

    `rows` is an input table (invalid or duplicate rows refuse the whole input unless
    `skip_invalid`, as for add/remove) or `(iccid, group_id)` pairs from group members (rows
    numbered from 1; a repeated ICCID is a duplicate). `options` must be JSON-serialisable (it
    is stored in the journal). `max_age` seconds: how old a cached answer may be to be reused
    (0: every answer fresh). Everything that can fail is checked before the run exists.
    """
    kind = LookupKind(kind)
    planned = PlannedRows(*_planned(rows, kind), from_file=isinstance(rows, InputTable))
    if isinstance(rows, InputTable):
        say(f"{rows.source}: {planned.counts.describe()}")
    return start_planned_lookup(
        journal, client, settings, planned,
        kind, options=options, max_age=max_age, report_dir=report_dir, skip_invalid=skip_invalid,
        timeout=timeout, progress=progress, say=say, run_id=run_id,
    )  # fmt: skip


def check_lookup_input(
    table: InputTable,
    kind: LookupKind,
    *,
    skip_invalid: bool,
    run_id: str,
    report_dir: Path | None = None,
) -> None:
    """Refuse `table` as `start_lookup` would (its refusal report written), before any call;
    an input that may be looked up leaves nothing behind (`enqueue` checks its input now)."""
    items, counts, source, _ = _planned(table, LookupKind(kind))
    if counts.valid and (skip_invalid or not (counts.invalid or counts.duplicates)):
        return
    target = prepare_report_dir(bulk.report_dir_for(run_id, report_dir))
    rows_refused = bool(counts.invalid or counts.duplicates) and not skip_invalid
    raise _refuse(items, counts, source, kind, run_id, target, no_valid_row=not rows_refused)


def check_planned_input(
    planned: PlannedRows, kind: LookupKind, *, skip_invalid: bool, run_id: str
) -> None:
    """`check_lookup_input` for items its caller planned: refused as `start_planned_lookup`
    would refuse them (the refusal report written), before any call."""
    counts = planned.counts
    refused = planned.from_file and bool(counts.invalid or counts.duplicates) and not skip_invalid
    if counts.valid and not refused:
        return
    target = prepare_report_dir(bulk.report_dir_for(run_id, None))
    items, source = planned.items, planned.source
    raise _refuse(items, counts, source, LookupKind(kind), run_id, target, no_valid_row=not refused)


@dataclass(frozen=True)
class PlannedRows:
    """A look-up run's items as planned by its caller (`start_planned_lookup`)."""

    items: list[PlannedItem]
    counts: InputCounts
    source: str
    groups: str
    from_file: bool = True
    """Invalid or duplicate rows refuse the whole input unless `skip_invalid`."""


def start_planned_lookup(
    journal: runs.Lazy[Journal],
    client: runs.Lazy[LookupClient],
    settings: Settings,
    planned: PlannedRows,
    kind: LookupKind,
    *,
    options: Mapping[str, Any] | None = None,
    max_age: float = DEFAULT_MAX_AGE,
    report_dir: Path | None = None,
    skip_invalid: bool = False,
    timeout: float | None = None,
    progress: runs.ProgressFactory = runs.no_progress,
    say: runs.Say = runs._silent,
    run_id: str | None = None,
) -> runs.RunResult:
    """`start_lookup` for items its caller planned (an item's `iccid` is the run's subject: a
    pay_id for CHECK_PAYMENT), e.g. rows with more columns than an ICCID. `run_id`: the id to
    give the run (a worker's job chooses it when enqueued); default a new one."""
    kind = LookupKind(kind)
    stored = dict(options or {})
    json.dumps(stored)  # refuse what the journal could not hold, before anything exists
    items, counts, source, groups = planned.items, planned.counts, planned.source, planned.groups
    run_id = run_id or new_run_id()
    target = prepare_report_dir(bulk.report_dir_for(run_id, report_dir))
    from_file = planned.from_file
    if from_file and (counts.invalid or counts.duplicates) and not skip_invalid:
        raise _refuse(items, counts, source, kind, run_id, target, no_valid_row=False)
    if not counts.valid:
        raise _refuse(items, counts, source, kind, run_id, target, no_valid_row=True)
    api = runs._get(client)
    # Refused here (nothing sent, no run) when nothing at all is left today; a run that needs
    # more than is left says so, then stops cleanly when the quota runs out (exit 5).
    needs = quota.client_plan(api, counts.valid * len(CALLS[kind]))
    if needs is not None:
        say(needs.line(_QUOTA_WORDS.get(kind, _QUOTA_WORDS[LookupKind.VERIFY])))
    opened = runs._get(journal)
    opened.create_run(
        run_id=run_id,
        kind=LOOKUP_KIND,
        operation=str(kind),
        group_id=groups,
        items=items,
        batch_size=1,
        source=source,
        report_dir=str(target),
        endpoint=runs.endpoint_of(settings),
        counts=counts,
        details={
            "options": stored,
            OPTIONS_DIGEST: _options_digest(stored),
            "max_age": max(0.0, float(max_age)),
        },
        lookup=True,
    )
    return drive_lookup(opened, api, run_id, settings, timeout=timeout, progress=progress, say=say)


# ---------------------------------------------------------------- driving a run


def drive_lookup(
    journal: Journal,
    client: runs.Lazy[LookupClient],
    run_id: str,
    settings: Settings,
    *,
    timeout: float | None = None,
    progress: runs.ProgressFactory = runs.no_progress,
    say: runs.Say = runs._silent,
    clock: Callable[[], float] = time.time,
    retry_server_quota: bool = False,
) -> runs.RunResult:
    """Drive (or resume) the look-up run `run_id` to its end or a stop, then call its reporter.

    Stops cleanly (status `not_finished`, exit 5, why in `stopped`) when the day's quota is
    spent, on Ctrl-C and on `timeout`; a SIM whose calls kept failing stays `pending` (exit 5:
    `runs resume` asks again). Calls that fail one after another `MAX_FAILURES_IN_A_ROW` times
    stop the run with `RunStopped` (exit 1), its reports written. `retry_server_quota`: ask
    even though the server said today's quota is spent (`runs resume`: it may have reset).
    """
    record = journal.run(run_id)
    if record.kind != LOOKUP_KIND:
        raise RunRefused(f"run {run_id} is not a look-up run")
    runs.check_same_endpoint(record, runs.endpoint_of(settings))
    runs.require_resumable(record)
    say(f"run {run_id}")
    with exclusive(
        settings.home, bulk.run_lock_name(run_id), f"run {run_id}", holder=f"run {run_id}"
    ):
        journal.verify_run(run_id)
        options = _checked_options(journal, record)
        prepare_report_dir(Path(record.report_dir))
        runs.announce_run(run_id)
        api = runs._get(client)
        if retry_server_quota:
            quota.retry_server(api)
        with store.open_answer_cache(settings.store_url, settings.home) as cache:
            driver = _Driver(journal, api, cache, record, options, settings, clock=clock)
            journal.set_run_status(run_id, RUNNING, None)
            stop: _Stop | None = None
            try:
                with progress(len(driver.pending)) as watcher:
                    stop = driver.drive(watcher, timeout)
            except KeyboardInterrupt:
                # Outside the wait for answers: what was in flight is asked again on resume (a
                # cancel among them stays `sending`, so it is looked at before anything is sent).
                stop = _Stop("interrupted")
            finally:
                if stop is None:  # an unexpected error: leave the run resumable
                    journal.set_run_status(run_id, NOT_FINISHED, ExitCode.FATAL)
        result = _conclude(journal, run_id, stop)
    if stop.fatal:
        error = RunStopped(
            f"run {run_id} stopped: {stop.why}. Nothing is lost: continue it with "
            f"`lf-bulk runs resume {run_id}`"
        )
        error.report_dir = result.report_dir
        raise error
    return result


@dataclass(frozen=True)
class _Stop:
    why: str = ""  # empty: not stopped
    fatal: bool = False


def _checked_options(journal: Journal, record: RunRecord) -> dict[str, Any]:
    options = record.details.get("options")
    if not isinstance(options, dict) or record.details.get(OPTIONS_DIGEST) != _options_digest(
        options
    ):
        raise errors.RunTampered(
            f"run {record.run_id}: its options differ from the ones it was started with; nothing "
            f"was sent. The journal {journal.path} was changed by something other than lf-bulk"
        )
    return options


def _conclude(journal: Journal, run_id: str, stop: _Stop) -> runs.RunResult:
    counts = journal.outcome_counts(run_id)
    pending = counts.get(OutcomeCode.PENDING, 0)
    if pending and not stop.why:
        stop = _Stop(f"the calls for {pending} SIM(s) failed; they stay pending, see the report")
    status = NOT_FINISHED if pending or stop.fatal else FINISHED
    provisional = ExitCode.FATAL if stop.fatal else ExitCode.NOT_FINISHED
    journal.set_run_status(run_id, status, provisional, reason=stop.why)
    run = load_run(journal, run_id)
    reporter = _reporter_for(run.kind)
    try:
        code = reporter(run)
    except OSError as exc:
        raise ReportError(
            f"run {run_id}: its reports could not be written to {run.report_dir} "
            f"({exc.strerror or exc}); the run itself is recorded in the journal: fix the "
            f"folder, then `lf-bulk runs wait {run_id}` writes them"
        ) from None
    if stop.fatal:
        code = ExitCode.FATAL
    elif pending:
        code = ExitCode.NOT_FINISHED
    journal.set_run_status(run_id, status, code, reason=stop.why)
    stopped = stop.why if pending or stop.fatal else ""
    return runs.RunResult(run_id, ExitCode(code), counts, run.report_dir, stopped)


def _asked(journal: Journal, run_id: str, calls: Sequence[CallRecord]) -> list[Asked]:
    asked = []
    for c in calls:
        try:
            answer = decode(c.call, c.answer) if c.state == CallState.ANSWERED else None
            asked.append(Asked(Call(c.call), answer, json.loads(c.request), c.fetched_at))
        except (ValueError, TypeError, KeyError):
            raise errors.RunTampered(
                f"run {run_id}: an answer in the journal {journal.path} cannot be read; nothing "
                "was sent. The journal was changed by something other than lf-bulk"
            ) from None
    return asked


@dataclass(frozen=True)
class RowOrder:
    """The order of one CREATE_ORDER row; `given`: its order_no came from the user's file."""

    top_up: TopUp
    given: bool


def order_to_option(top_up: TopUp, given: bool) -> dict[str, Any]:
    """One row's order as stored in the run's options (amount as exact decimal text)."""
    return {
        "order_no": top_up.order_no, "package_code": top_up.package_code,
        "periods": top_up.periods, "amount": f"{top_up.amount:f}", "currency": top_up.currency,
        "pay_id": top_up.pay_id, "pay_type": top_up.pay_type, "pay_time": top_up.pay_time,
        "auto_renewal": top_up.auto_renewal, "given": given,
    }  # fmt: skip


def order_from_option(value: Any, iccid_: str) -> RowOrder:
    """`order_to_option` read back; ValueError/TypeError/KeyError when it is not one."""
    if not isinstance(value, dict):
        raise TypeError("not an order")
    amount = Decimal(str(value["amount"]))
    periods = value["periods"]
    if not isinstance(periods, int) or isinstance(periods, bool):
        raise TypeError("periods")
    top_up = TopUp(
        order_no=str(value["order_no"]), iccid=iccid_, package_code=str(value["package_code"]),
        periods=periods, amount=amount, currency=str(value["currency"]),
        pay_id=str(value["pay_id"]), pay_type=str(value["pay_type"]),
        pay_time=str(value["pay_time"]), auto_renewal=bool(value["auto_renewal"]),
    )  # fmt: skip
    # What a row may send was checked when the run started; a journal that says otherwise was
    # changed by something else, and nothing of it is sent.
    if not (amount.is_finite() and amount > 0 and periods >= 1) or not all(
        wire.is_valid_id(v) for v in (top_up.order_no, top_up.pay_id)
    ):
        raise ValueError("not an order this tool would send")
    return RowOrder(top_up, bool(value["given"]))


def _orders_of(
    record: RunRecord, options: Mapping[str, Any], items: Iterable[ItemRecord]
) -> dict[int, RowOrder]:
    stored = options.get(OPTION_ORDERS)
    try:
        if not isinstance(stored, dict):
            raise TypeError("no orders")
        return {item.row: order_from_option(stored[str(item.row)], item.iccid) for item in items}
    except (ValueError, TypeError, KeyError, ArithmeticError):
        raise errors.RunTampered(
            f"run {record.run_id}: the orders it was started with cannot be read; nothing was "
            "sent. The journal was changed by something other than lf-bulk"
        ) from None


def _found_order(found: Sequence[Order], order_no: str) -> dict[str, str] | None:
    """What a look-up of `order_no` found, as journaled: None when Linksfield has no such order."""
    same = [o for o in found if o.purchase_order_id == order_no]
    if not same:
        return None
    order = same[0]
    return {
        "order_id": order.order_id,
        "amount": "" if order.amount is None else f"{order.amount:f}",
        "currency": order.currency,
        "pay_status": order.pay_status,
    }


def payment_value(result: PaymentResult) -> dict[str, str]:
    """A payment's result as journaled (amount as exact decimal text)."""
    return {
        "pay_id": result.pay_id, "pay_status": result.pay_status,
        "amount": "" if result.amount is None else f"{result.amount:f}",
        "currency": result.currency, "pay_time": result.pay_time, "order_no": result.order_no,
        "iccid": result.iccid,
    }  # fmt: skip


@dataclass
class _Work:
    item: ItemRecord
    seq: int
    step: Step
    order: RowOrder | None = None


class _Driver:
    """The caller's thread owns the journal and the cache and decides; a pool makes the calls,
    paced by the client's shared pacer."""

    def __init__(
        self,
        journal: Journal,
        api: LookupClient,
        cache: AnswerCache,
        record: RunRecord,
        options: Mapping[str, Any],
        settings: Settings,
        *,
        clock: Callable[[], float],
    ) -> None:
        self.journal = journal
        self.api = api
        self.cache = cache
        self.run_id = record.run_id
        self.kind = LookupKind(record.operation)
        self.yes = bool(options.get(OPTION_YES)) and self.kind is LookupKind.CANCEL_RENEWAL
        area = options.get(OPTION_AREA)
        self.area = str(area) if area else None
        max_age = record.details.get("max_age", DEFAULT_MAX_AGE)
        self.max_age = float(max_age) if isinstance(max_age, int | float) else 0.0
        self.asker = cache.asker(runs.endpoint_of(settings), api.partner_code)
        self.clock = clock
        self.pending = {item.item_id: item for item in journal.lookup_items(self.run_id)}
        self.orders = (
            _orders_of(record, options, self.pending.values())
            if self.kind is LookupKind.CREATE_ORDER
            else {}
        )
        self.asked: dict[int, list[Asked]] = {
            item_id: _asked(journal, self.run_id, calls)
            for item_id, calls in journal.calls(self.run_id).items()
            if item_id in self.pending
        }
        self.failures_in_a_row = 0

    # ------------------------------------------------------------ the loop

    def drive(self, watcher: Progress, timeout: float | None) -> _Stop:
        deadline = None if timeout is None else self.clock() + timeout
        queue: deque[int] = deque(self.pending)
        held_back: list[int] = []  # re-reads, made once every other call is done
        finals_open = False
        in_flight: dict[Future[Answer], _Work] = {}
        started: set[int] = set()  # SIMs taken up in this drive, for the progress bar
        stop = _Stop()
        pool = ThreadPoolExecutor(max_workers=self.api.pacer.max_in_flight)
        try:
            while True:
                try:
                    if not stop.why and deadline is not None and self.clock() >= deadline:
                        stop = _Stop("timed out")
                    while not stop.why and queue and len(in_flight) < self.api.pacer.max_in_flight:
                        item = self.pending[queue.popleft()]
                        if item.item_id not in started:
                            started.add(item.item_id)
                            watcher.submitted(1)
                        step = self._step(item)
                        if step.call is None:
                            self._finish(item, step)
                            watcher.finished(1)
                        elif step.final and not finals_open:
                            held_back.append(item.item_id)
                        elif self._from_cache(item, step):
                            queue.appendleft(item.item_id)
                        else:
                            work = self._start(item, step)
                            in_flight[pool.submit(self._ask, work)] = work
                    if not in_flight:
                        if stop.why or not (queue or held_back):
                            break
                        if not queue:
                            finals_open = True
                            queue.extend(held_back)
                            held_back.clear()
                        continue
                    done, _ = wait(in_flight, timeout=1.0, return_when=FIRST_COMPLETED)
                    for future in done:
                        work = in_flight.pop(future)
                        again, stopped = self._handle(work, future)
                        if again:
                            queue.appendleft(work.item.item_id)
                        if stopped.why and (not stop.why or stopped.fatal):
                            stop = stopped
                except KeyboardInterrupt:
                    # Send nothing more, but let the calls on the wire finish and journal their
                    # answers (an answer lost here is asked again; a cancel stays `sending`).
                    if not stop.fatal:
                        stop = _Stop("interrupted")
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        # A stop can leave SIMs whose last answer decided them: give them their outcome now.
        for item in list(self.pending.values()):
            step = self._step(item)
            if step.call is None:
                self._finish(item, step)
                watcher.finished(1)
        return stop

    def _step(self, item: ItemRecord) -> Step:
        order = self.orders.get(item.row)
        return next_step(
            self.kind, self.asked.get(item.item_id, []), yes=self.yes,
            look_first=order is None or order.given,
        )  # fmt: skip

    def _finish(self, item: ItemRecord, step: Step) -> None:
        self.journal.set_item_outcome(
            self.run_id, item.item_id, step.outcome, step.reason_code, step.reason
        )
        del self.pending[item.item_id]

    def _subject(self, item: ItemRecord, call: Call) -> str:
        return f"{item.iccid}|{self.area or ''}" if call is Call.PLANS else item.iccid

    def _from_cache(self, item: ItemRecord, step: Step) -> bool:
        """Record a cached answer for `step` when a young enough one exists (never in a run
        that cancels, never for a look after a cancel)."""
        assert step.call is not None
        if self.yes or step.call in MUTATING or step.call in UNCACHED:
            return False
        found = self.cache.get(self.asker, step.call, self._subject(item, step.call), self.max_age)
        if found is None:
            return False
        text, fetched_at = found
        try:
            answer = decode(step.call, text)
        except (ValueError, TypeError, KeyError):
            return False  # not an answer we wrote: ask the API
        seq = len(self.asked.get(item.item_id, []))
        self.journal.record_answer(
            self.run_id, item.item_id, seq, step.call, text, fetched_at=fetched_at,
            source=SOURCE_CACHE,
        )  # fmt: skip
        self.asked.setdefault(item.item_id, []).append(Asked(step.call, answer, {}, fetched_at))
        return True

    def _start(self, item: ItemRecord, step: Step) -> _Work:
        seq = len(self.asked.get(item.item_id, []))
        work = _Work(item, seq, step, self.orders.get(item.row))
        if step.call in MUTATING:
            # Never trust the journal with a change: the ICCID is checked again before it goes.
            if iccid.check(item.iccid)[1] is not None:
                raise errors.RunTampered(f"run {self.run_id}: item {item.item_id} is no ICCID")
            self.journal.mark_call_sending(
                self.run_id, item.item_id, seq, step.call, json.dumps(dict(_request_of(work)))
            )
        return work

    def _ask(self, work: _Work) -> Answer:
        """One call, on a pool thread: its answer, or the per-SIM error answer."""
        iccid_, call = work.item.iccid, work.step.call
        try:
            if call is Call.VERIFY:
                return Answer(self.api.verify_card(iccid_))
            if call is Call.HELD_ORDERS:
                return Answer(list(self.api.held_plans(iccid_)))
            if call is Call.RENEWAL:
                try:
                    return Answer(self.api.find_renewal(iccid_))
                except RenewalNotFound:
                    return Answer(None)
            if call is Call.PLANS:
                return Answer(list(self.api.list_plans(iccid_, self.area)))
            if call is Call.FIND_ORDER:
                assert work.order is not None
                order_no = work.order.top_up.order_no
                found = self.api.find_orders("purchase_order_id", order_no)
                return Answer(_found_order(found, order_no))
            if call is Call.CREATE_ORDER:
                assert work.order is not None
                created = self.api.create_order(replace(work.order.top_up, iccid=iccid_))
                return Answer({"order_no": created.order_no, "order_id": created.order_id})
            if call is Call.PAYMENT:
                return Answer(payment_value(self.api.payment_result(iccid_)))
            assert call is Call.CANCEL_RENEWAL and work.step.renewal is not None
            renewal = work.step.renewal
            self.api.cancel_renewal(iccid_, renewal.order_no, renewal.pay_id)
            return Answer({})
        except SystemBusy:
            raise
        except VshopError as error:
            return of_error(error)

    # ------------------------------------------------------------ answers

    def _handle(self, work: _Work, future: Future[Answer]) -> tuple[bool, _Stop]:
        """Journal what `future` brought; (ask this SIM again now, why the drive must stop)."""
        item, call = work.item, work.step.call
        assert call is not None
        try:
            answer = future.result()
        except QuotaExhausted as error:
            self._unsent(work)
            self._note(item, REASON_QUOTA, str(error))
            return False, _Stop(_quota_text(error))
        except errors.LfBulkError as error:
            return self._failed(work, error)
        self.failures_in_a_row = 0
        text, fetched_at = encode(answer), self.clock()
        self.journal.record_answer(
            self.run_id, item.item_id, work.seq, call, text, fetched_at=fetched_at,
            source=SOURCE_API,
            request=json.dumps(dict(_request_of(work))),
        )  # fmt: skip
        self.asked.setdefault(item.item_id, []).append(
            Asked(call, answer, _request_of(work), fetched_at)
        )
        if call is Call.CANCEL_RENEWAL:
            self.cache.forget(self.asker, Call.RENEWAL, item.iccid)
        elif call not in UNCACHED:
            self.cache.put(self.asker, call, self._subject(item, call), text, fetched_at)
        return True, _Stop()

    def _failed(self, work: _Work, error: errors.LfBulkError) -> tuple[bool, _Stop]:
        item, mutating = work.item, work.step.call in MUTATING
        code = getattr(error, "code", "") or type(error).__name__
        busy = isinstance(error, SystemBusy)  # retryable, and the call was not acted on
        global_failure = isinstance(error, errors.TlsError | errors.ConfigError) or (
            isinstance(error, errors.BusinessError)
            and not busy
            and not errors.is_retryable(error)
            and not isinstance(error, errors.ServerError)
        )
        not_acted = busy or errors.proves_not_acted(error)
        lost = mutating and not global_failure and not not_acted
        if lost:
            # The change may have been done: keep it `sending`; the next step looks first.
            assert work.step.call is not None
            self.asked.setdefault(item.item_id, []).append(Asked(work.step.call, None, {}))
        elif mutating:
            self._unsent(work)
        self._note(item, REASON_LOST if lost else code, str(error))
        if global_failure:
            return False, _Stop(str(error), fatal=True)
        if lost and work.step.call is Call.CREATE_ORDER:
            # A lost answer is no sign the service is down (the look that follows will be).
            return self._sends(item) < MAX_ORDER_SENDS, _Stop()
        self.failures_in_a_row += 1
        if self.failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
            return False, _Stop(
                f"{self.failures_in_a_row} calls failed one after another (the last: {error})",
                fatal=True,
            )
        # A lost cancel is settled by a look right away; any other failure waits for a resume.
        return lost and self._sends(item) < MAX_CANCEL_SENDS, _Stop()

    def _sends(self, item: ItemRecord) -> int:
        return sum(1 for a in self.asked.get(item.item_id, []) if a.call in MUTATING)

    def _unsent(self, work: _Work) -> None:
        if work.step.call in MUTATING:
            self.journal.forget_unsent_call(self.run_id, work.item.item_id, work.seq)

    def _note(self, item: ItemRecord, code: str, reason: str) -> None:
        self.journal.set_item_outcome(self.run_id, item.item_id, None, code, reason)


def _request_of(work: _Work) -> Mapping[str, Any]:
    if work.step.call is Call.CREATE_ORDER and work.order is not None:
        return {"order_no": work.order.top_up.order_no}
    renewal = work.step.renewal
    if work.step.call is Call.CANCEL_RENEWAL and renewal is not None:
        return {"order_no": renewal.order_no, "pay_id": renewal.pay_id}
    return {}


def _quota_text(error: QuotaExhausted) -> str:
    used = f"{error.used}/{error.limit} requests, " if error.used is not None else ""
    by = "by the server" if error.source == "server" else "by the quota ledger"
    resets = error.resets_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"the day's request quota is spent ({used}{by}); it resets at {resets}"


def cancel_lookup(journal: Journal, run_id: str) -> runs.RunResult:
    """Cancel a look-up run for good (`runs cancel`, under the run's lock) and write its reports.

    Rows never asked end `failed` (CANCELLED); a row whose cancel may have reached the server
    stays `pending`. Nothing more is sent.
    """
    journal.cancel_lookup_run(run_id, "cancelled with `lf-bulk runs cancel`", ExitCode.SOME_FAILED)
    run = load_run(journal, run_id)
    _reporter_for(run.kind)(run)
    counts = journal.outcome_counts(run_id)
    return runs.RunResult(run_id, ExitCode.SOME_FAILED, counts, run.report_dir, driven=False)


# ---------------------------------------------------------------- reading a run back


def load_run(journal: Journal, run_id: str) -> LookupRun:
    """The look-up run `run_id` with every row's answers as the journal has them now."""
    record = journal.run(run_id)
    if record.kind != LOOKUP_KIND:
        raise RunRefused(f"run {run_id} is not a look-up run")
    calls = journal.calls(run_id)
    answers = [_sim_answers(item, _asked(journal, run_id, calls.get(item.item_id, [])))
               for item in journal.items(run_id)]  # fmt: skip
    options = record.details.get("options")
    return LookupRun(
        record, answers, Path(record.report_dir), dict(options) if isinstance(options, dict) else {}
    )


def _sim_answers(item: ItemRecord, asked: Sequence[Asked]) -> SimAnswers:
    def first(call: Call) -> Any:
        return next((a.answer.value for a in asked if a.call is call and a.answer and a.answer.ok),
                    None)  # fmt: skip

    def listed(call: Call) -> tuple[Any, ...] | None:
        value = first(call)
        return None if value is None else tuple(value)

    renewals = [a for a in asked if a.call is Call.RENEWAL and a.answer and a.answer.ok]
    fetched = [a.fetched_at for a in asked if a.answer is not None and a.fetched_at is not None]
    return SimAnswers(
        row=item.row,
        iccid=item.iccid,
        group_id=item.group_id,
        outcome=item.outcome or OutcomeCode.PENDING,
        reason_code=item.reason_code,
        reason=item.reason,
        card=first(Call.VERIFY),
        held=listed(Call.HELD_ORDERS),
        renewal=renewals[0].answer.value if renewals and renewals[0].answer else None,
        plans=listed(Call.PLANS),
        fetched_at=min(fetched) if fetched else None,
        order=next(
            (
                a.answer.value
                for a in reversed(asked)
                if a.call in (Call.CREATE_ORDER, Call.FIND_ORDER)
                and a.answer
                and a.answer.ok
                and a.answer.value
            ),
            None,
        ),
        payment=first(Call.PAYMENT),
    )


# ---------------------------------------------------------------- the default report

ITEM_FIELDS: Final = (
    "row", "iccid", "group_id", "outcome", "reason_code", "reason", "card_status", "fetched_at",
)  # fmt: skip


def exit_code_of(run: LookupRun) -> ExitCode:
    """5 while a row is pending; 3 when a row failed, was rejected or was not found; else 0."""
    outcomes = {a.outcome for a in run.answers}
    if OutcomeCode.PENDING in outcomes:
        return ExitCode.NOT_FINISHED
    if outcomes & {OutcomeCode.FAILED, REJECTED, NOT_FOUND}:
        return ExitCode.SOME_FAILED
    return ExitCode.OK


def fetched_text(moment: float | None) -> str:
    if moment is None:
        return ""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_reporter(run: LookupRun) -> ExitCode:
    """`items.csv` (one line per input row, with the card's status when it was read) and
    `summary.json` (outcome counts), in the run's report folder; `summary.json` last."""
    code = exit_code_of(run)
    n = neutralise
    with atomic_file(run.report_dir / ITEMS_CSV, newline="") as out:
        writer = csv.writer(out)
        writer.writerow(ITEM_FIELDS)
        writer.writerows(
            (a.row, n(a.iccid), n(a.group_id), n(a.outcome), n(a.reason_code), n(a.reason),
             n(a.card.card_status if a.card else ""), fetched_text(a.fetched_at))
            for a in run.answers
        )  # fmt: skip
    counts = Counter(a.outcome for a in run.answers)
    record = run.record
    summary = {
        "run_id": record.run_id,
        "kind": record.operation,
        "group_id": record.group_id,
        "input_rows": record.input_rows,
        "valid": record.valid,
        "invalid": record.invalid,
        "duplicates": record.duplicates,
        "outcomes": {outcome: counts.get(outcome, 0) for outcome in LOOKUP_OUTCOMES},
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "stop_reason": record.details.get("stop_reason", "") if code else "",
        "exit_code": int(code),
    }
    with atomic_file(run.report_dir / SUMMARY_JSON) as out:
        out.write(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return code
