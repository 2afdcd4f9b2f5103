"""What a job carries: the command, the partner it runs for, its run id and its checked input.

`lf-bulk enqueue` reads and checks the input file on the machine where it is typed, exactly as
the command would, and stores the rows with the job: a worker on another machine needs no access
to the file. The run id is chosen at the same moment, so that a job tried again (its worker was
killed, or the day's quota stopped it) finds its run in the journal and resumes it: a job never
creates a second run.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from lf_bulk.errors import InvalidSetting
from lf_bulk.iccid import Reason
from lf_bulk.sources import InputRow, InputTable

# A partner's name: what jobs, locks and the environment variable of its code are keyed by.
PARTNER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
# A job of the same command, partner and input as one still waiting is a duplicate trigger.
LOCK_PREFIX = "lf-bulk partner "
SPEC_VERSION = 1


class JobCommand(StrEnum):
    """The run-creating commands a worker runs (the value is the command line's words)."""

    ADD = "sims add"
    REMOVE = "sims remove"
    RECONCILE = "reconcile"
    STATUS = "sims status"
    VERIFY = "sims verify"
    PLANS = "sims plans"
    LIST_RENEWALS = "renewals list"
    CANCEL_RENEWALS = "renewals cancel"
    CREATE_ORDERS = "orders create"
    EXPORT_ORDERS = "orders export"
    CHECK_PAYMENTS = "payments check"


# The look-ups of a FILE or of groups' members (read when the job runs), by command: their
# look-up kind (`lf_bulk.lookups.LookupKind`).
ROWS_LOOKUPS = {
    JobCommand.STATUS: "status",
    JobCommand.PLANS: "plans",
    JobCommand.LIST_RENEWALS: "renewals",
}
# Options chosen anew by each `enqueue` (the order numbers generated for rows without one, the
# id of a --verify's verification run): left out of the digest, like the run id, so that a
# second trigger is still the same job.
PER_ENQUEUE_OPTIONS = ("order_nos", "verify_run_id")


def check_partner_name(name: str) -> str:
    if not PARTNER_NAME.fullmatch(name):
        raise InvalidSetting(
            f"partner name {name!r}: use 1 to 63 letters, digits, '_' and '-', starting with a "
            "letter or digit"
        )
    return name


def partner_lock(partner: str) -> str:
    """Procrastinate's `lock`: one partner's jobs run one at a time, whichever worker takes them."""
    return LOCK_PREFIX + partner


@dataclass(frozen=True)
class JobSpec:
    """One enqueued command, as JSON-able values (Procrastinate stores a job's arguments as JSON)."""

    command: JobCommand
    partner: str
    run_id: str
    # The command's options, by their Python names (group, batch_size, skip_invalid, ...).
    options: Mapping[str, Any]
    source: str
    sheet: str | None
    column: str
    headers: tuple[str, ...]
    # One [row, raw, iccid, reason or None, extra columns] per input row.
    rows: tuple[tuple[int, str, str, str | None, dict[str, str]], ...] = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["version"] = SPEC_VERSION
        data["rows"] = [list(row) for row in self.rows]
        data["headers"] = list(self.headers)
        data["options"] = dict(self.options)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobSpec:
        if data.get("version") != SPEC_VERSION:
            raise InvalidSetting(
                f"a job of spec version {data.get('version')!r} (this lf-bulk reads "
                f"{SPEC_VERSION}): run it with the lf-bulk that enqueued it"
            )
        return cls(
            command=JobCommand(data["command"]),
            partner=check_partner_name(str(data["partner"])),
            run_id=str(data["run_id"]),
            options=dict(data["options"]),
            source=str(data["source"]),
            sheet=data["sheet"],
            column=str(data["column"]),
            headers=tuple(data["headers"]),
            rows=tuple(
                (int(row), str(raw), str(iccid), reason, dict(extra))
                for row, raw, iccid, reason, extra in data["rows"]
            ),
        )

    @classmethod
    def of(
        cls,
        command: JobCommand,
        partner: str,
        run_id: str,
        table: InputTable,
        options: Mapping[str, Any],
    ) -> JobSpec:
        rows = tuple(
            (row.row, row.raw, row.iccid, None if row.reason is None else str(row.reason),
             dict(row.extra))
            for row in table.rows
        )  # fmt: skip
        return cls(
            command, check_partner_name(partner), run_id, dict(options), table.source,
            table.sheet, table.column, tuple(table.headers), rows,
        )  # fmt: skip

    def table(self) -> InputTable:
        """The input as the enqueuing machine read it (row numbers and cells as typed)."""
        rows = [
            InputRow(row, raw, iccid, None if reason is None else Reason(reason), extra)
            for row, raw, iccid, reason, extra in self.rows
        ]
        return InputTable(self.source, self.sheet, self.column, rows, self.headers)

    def queueing_lock(self) -> str:
        """Procrastinate's `queueing_lock`: the same command, partner, options and rows as a job
        still waiting are refused (a duplicate trigger); the run id is left out on purpose."""
        payload = self.to_json()
        del payload["run_id"]
        for name in PER_ENQUEUE_OPTIONS:
            payload["options"].pop(name, None)
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        return f"{self.partner} {self.command} {digest[:32]}"
