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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, Protocol

from lf_bulk import runs
from lf_bulk._core_v2 import CardInfo, HeldPlan, PlanOffer, Renewal
from lf_bulk.exitcodes import ExitCode
from lf_bulk.journal import Journal, RunRecord
from lf_bulk.pacing import RequestPacer
from lf_bulk.settings import Settings
from lf_bulk.sources import InputTable

LOOKUP_KIND: Final = "lookup"
"""The `kind` of a look-up run in the journal's runs table."""

DEFAULT_MAX_AGE: Final = 12 * 3600.0
"""Seconds a cached answer may be reused by a new run (`--max-age`, default 12h; 0: fresh)."""


class LookupKind(StrEnum):
    """What a look-up run asks per SIM: the run's `operation`."""

    VERIFY = "verify"
    STATUS = "status"
    PLANS = "plans"
    RENEWALS = "renewals"
    CANCEL_RENEWAL = "cancel_renewal"


class Call(StrEnum):
    """One Vshop call for one SIM."""

    VERIFY = "verify"  # /singleVerify
    HELD_ORDERS = "held_orders"  # /singleQueryOrder
    RENEWAL = "renewal"  # /queryAutoRenewalRecord
    PLANS = "plans"  # /singleServicePlanPage (every page)
    CANCEL_RENEWAL = "cancel_renewal"  # /cancelAutoRenewalRecord (mutating)


CALLS: Final[Mapping[LookupKind, tuple[Call, ...]]] = {
    LookupKind.VERIFY: (Call.VERIFY,),
    LookupKind.STATUS: (Call.VERIFY, Call.HELD_ORDERS, Call.RENEWAL),
    LookupKind.PLANS: (Call.PLANS,),
    LookupKind.RENEWALS: (Call.RENEWAL,),
    # the query, the cancel, and the re-read at the end
    LookupKind.CANCEL_RENEWAL: (Call.RENEWAL, Call.CANCEL_RENEWAL, Call.RENEWAL),
}
"""The calls one SIM costs at most, per kind (a SIM whose card is not found costs fewer; a plan
catalogue of more than one page costs more): for quota plans."""

OPTION_AREA: Final = "area"
"""`options` key (PLANS): the area to ask plans for (`--area`), absent for all."""
OPTION_YES: Final = "yes"
"""`options` key (CANCEL_RENEWAL): True to send the cancels; otherwise only the plan."""


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

    pacer: RequestPacer
    base_url: str
    partner_code: str

    def verify_card(self, iccid: str) -> CardInfo: ...
    def held_plans(self, iccid: str) -> list[HeldPlan]: ...
    def find_renewal(self, iccid: str) -> Renewal | None: ...
    def list_plans(self, iccid: str, area: str | None = None) -> list[PlanOffer]: ...
    def cancel_renewal(self, iccid: str, order_no: str, pay_id: str) -> None: ...


Reporter = Callable[[LookupRun], ExitCode]
"""Writes a kind's reports (into `run.report_dir` or where `run.options` says) and returns the
exit code of the run (NOT_FINISHED while any row is pending)."""

_REPORTERS: dict[LookupKind, Reporter] = {}


def register_reporter(kind: LookupKind, reporter: Reporter) -> None:
    """Use `reporter` for the runs of `kind` from now on (instead of the default items.csv and
    summary.json)."""
    _REPORTERS[kind] = reporter


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
) -> runs.RunResult:
    """Look up every SIM of `rows` as a new journaled run of `kind`, and drive it.

    `rows` is an input table (invalid or duplicate rows refuse the whole input unless
    `skip_invalid`, as for add/remove) or `(iccid, group_id)` pairs from group members.
    `options` must be JSON-serialisable (stored in the journal). `max_age` seconds: how old a
    cached answer may be to be reused (0: every answer fresh).
    """
    raise NotImplementedError


def drive_lookup(
    journal: Journal,
    client: runs.Lazy[LookupClient],
    run_id: str,
    settings: Settings,
    *,
    timeout: float | None = None,
    progress: runs.ProgressFactory = runs.no_progress,
    say: runs.Say = runs._silent,
) -> runs.RunResult:
    """Drive (or resume) the look-up run `run_id` to its end or a stop, then call its reporter.

    Stops cleanly (status `not_finished`, exit 5, the resume command in `stopped`) when the day's
    quota is spent, on Ctrl-C and on `timeout`.
    """
    raise NotImplementedError


def load_run(journal: Journal, run_id: str) -> LookupRun:
    """The look-up run `run_id` with every row's answers as the journal has them now."""
    raise NotImplementedError
