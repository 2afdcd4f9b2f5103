"""Every error lf-bulk raises on purpose, as one tree.

    LfBulkError                  anything the tool expects and can explain
    ├── ConfigError              a setting is missing, untrusted or not allowed (exit 1)
    │   └── InvalidSetting       a setting's value is malformed; nothing was sent (exit 2)
    ├── InputError               a bad input file or argument; nothing was sent (exit 2)
    │   ├── InvalidRowsError     some rows failed validation; carries the rows and their reasons
    │   └── RunRefused           a run cannot be continued, retried or cancelled in its state
    ├── PlanRefused              a plan is larger than the user allowed (exit 2)
    ├── QuotaExhausted           the day's request quota is spent, by our ledger or the server's
    │                            word (429 with quota DAILY): a clean stop until `resets_at` (exit 5)
    ├── RunStopped               a run cannot go on now; the journal says what next (exit 1)
    ├── ReportError              a run's reports could not be written; the run is journaled (exit 1)
    ├── JournalError             the run journal cannot be used
    │   ├── RunNotFound          no run with that id
    │   ├── RunChanged           a run changed under us between the checks and its lock (exit 1)
    │   ├── RunLocked            another process drives that run or those groups (exit 1)
    │   └── RunTampered          a run's batches/items disagree with what it planned (exit 1)
    ├── StoreUnavailable         the PostgreSQL store (--store) cannot be reached, or its
    │                            connection was lost (exit 1)
    ├── HomeError                a folder or file under --home cannot be used safely (exit 1)
    │   ├── UnsafeFile           a symlink, another user's file, or one others may write to
    │   └── ForeignDatabase      not a database of this tool (or not a database at all)
    │       └── DatabaseTooNew   made by a newer lf-bulk (schema version above ours)
    └── ApiError                 talking to the Linksfield API failed
        ├── TransportError       no usable HTTP answer: timeout, refused, reset (retryable)
        │   ├── ConnectFailed    no connection was made, so nothing was sent (a mutation may retry)
        │   │   └── ConnectionRefused    nothing listens there (retried briefly, see retrying.py)
        │   └── TlsError         certificate verification failed (never retried)
        ├── HttpStatusError      an HTTP error status with no recognisable envelope (5xx retryable)
        ├── EnvelopeError        a 2xx body that none of the known envelopes fit
        └── BusinessError        the envelope carried an error code (see `wire.py` for codes)
            ├── InvalidParameter     1001
            ├── UnknownPartner       1002
            ├── SignatureRejected    1003
            ├── GroupNotFound        1004
            ├── TooManyIccids        1005, with `max_iccids`
            ├── RequestIdUnknown     1006
            ├── OrderNotFound        1007
            ├── RateLimited          1429, with `retry_after` (retryable)
            ├── ServerError          1500 (retryable)
            └── VshopError           a Vshop/Payment error code (contract v2)
                ├── CardNotFound         CARD_NOT_FOUND
                ├── CardNotOwned         CARD_NOT_OWNED (another partner's card)
                ├── CardInactive         CARD_INACTIVE
                ├── PlanNotFound         PLAN_NOT_FOUND
                ├── VshopOrderNotFound   ORDER_NOT_FOUND
                ├── RenewalNotFound      RENEWAL_NOT_FOUND
                ├── DuplicateOrderNo     DUPLICATE_ORDER_NO
                ├── PayNotFound          PAY_NOT_FOUND
                └── SystemBusy           SYSTEM_BUSY (retryable; the call was not acted on)

An error whose failure left a report behind carries its folder in `report_dir` (the CLI prints it
on stdout before the message).
Every message is redacted (`lf_bulk.redaction`) when shown: no error can carry the credential.
`is_retryable` is the one place that decides what a retry may follow; `proves_not_acted` the one
place that decides which failures of a mutating call (add, remove) prove the server did nothing,
so that the same call may be sent again (design notes §5).
The CLI turns each of these into a message and an exit code in `jobs/errors.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from lf_bulk.redaction import redact


class LfBulkError(Exception):
    """Base of every error lf-bulk raises on purpose."""

    report_dir: Path | None = None

    def __str__(self) -> str:
        return redact(super().__str__())


class ConfigError(LfBulkError):
    pass


class InvalidSetting(ConfigError):
    pass


class InputError(LfBulkError):
    """A bad input file: `path`, `sheet` and `row` say where, when known."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        sheet: str | None = None,
        row: int | None = None,
    ) -> None:
        self.path = path
        self.sheet = sheet
        self.row = row
        where = [part for part in (path, f"sheet {sheet!r}" if sheet else None) if part]
        if row is not None:
            where.append(f"row {row}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


@dataclass(frozen=True)
class RejectedRow:
    row: int
    value: str
    reason: str


class InvalidRowsError(InputError):
    """Validation rejected rows and the user did not ask to skip them."""

    def __init__(
        self,
        path: str,
        rows: list[RejectedRow],
        report_path: str | None = None,
        *,
        advice: str = "",
    ) -> None:
        self.rows = rows
        self.report_path = report_path
        self.advice = advice
        shown = "; ".join(f"row {r.row}: {r.reason} ({r.value!r})" for r in rows[:10])
        more = f"; and {len(rows) - 10} more" if len(rows) > 10 else ""
        duplicates = sum(1 for r in rows if r.reason == "duplicate")
        counted = [
            f"{count} {kind} row{'' if count == 1 else 's'}"
            for count, kind in ((len(rows) - duplicates, "invalid"), (duplicates, "duplicate"))
            if count
        ]
        text = f"{' and '.join(counted)}: {shown}{more}"
        super().__init__(f"{text}\n{advice}" if advice else text, path=path)


class RunRefused(InputError):
    """The run's state forbids what was asked (e.g. resuming a failed run); nothing was sent."""


class PlanRefused(LfBulkError):
    pass


class QuotaExhausted(LfBulkError):
    """The day's request quota is spent: nothing more is sent until `resets_at` (UTC).

    `source` is "ledger" (our own count in `<home>` reached the limit) or "server" (the server
    answered 429 with `data.quota` DAILY). Never retried by the transport: waiting hours inside a
    request is not a retry, it is a stop that `runs resume` continues.
    """

    def __init__(
        self,
        message: str,
        *,
        resets_at: datetime,
        source: str,
        used: int | None = None,
        limit: int | None = None,
    ) -> None:
        super().__init__(message)
        self.resets_at = resets_at
        self.source = source
        self.used = used
        self.limit = limit


class RunStopped(LfBulkError):
    """The run cannot go on now (API unreachable, group gone); the journal says what next.

    `permanent`: resuming cannot help (the group is gone, the server refuses the batch); the run
    is marked `failed` and `runs resume` skips it.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class ReportError(LfBulkError):
    """A run's reports could not be written; the run itself is recorded in the journal."""


class JournalError(LfBulkError):
    pass


class RunNotFound(JournalError):
    pass


class RunLocked(JournalError):
    pass


class RunChanged(JournalError):
    """Another process changed the run between our checks and our taking its lock."""


class RunTampered(JournalError):
    """`Journal.verify_run` found batches or items that the run did not plan."""


class StoreUnavailable(LfBulkError):
    """The store named by --store cannot be reached or used (a PostgreSQL server)."""


class HomeError(LfBulkError):
    """A folder or file the tool keeps under --home cannot be used safely."""


class UnsafeFile(HomeError):
    pass


class ForeignDatabase(HomeError):
    pass


class DatabaseTooNew(ForeignDatabase):
    pass


class ApiError(LfBulkError):
    pass


class TransportError(ApiError):
    pass


class ConnectFailed(TransportError):
    """The connection was refused or never established: the request never left this machine."""


class ConnectionRefused(ConnectFailed):
    """Nothing listens at the address: retried briefly, not for the whole deadline."""


class TlsError(TransportError):
    pass


class HttpStatusError(ApiError):
    def __init__(self, status_code: int, message: str) -> None:
        self.status_code = status_code
        super().__init__(message)


class EnvelopeError(ApiError):
    pass


class BusinessError(ApiError):
    """The API answered with an error code in its envelope."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        data: Any = None,
        http_status: int = 200,
    ) -> None:
        self.code = code
        self.api_message = redact(message)
        self.data = data
        self.http_status = http_status
        super().__init__(f"API error {code}: {message}")


class InvalidParameter(BusinessError):
    pass


class UnknownPartner(BusinessError):
    pass


class SignatureRejected(BusinessError):
    pass


class GroupNotFound(BusinessError):
    pass


class TooManyIccids(BusinessError):
    @property
    def max_iccids(self) -> int | None:
        if isinstance(self.data, dict):
            value = self.data.get("max_iccids")
            # ASCII digits, bounded: '²' passes str.isdigit() and int() refuses it.
            if isinstance(value, int | str) and re.fullmatch(r"[0-9]{1,9}", str(value)):
                return int(value)
        return None


class RequestIdUnknown(BusinessError):
    pass


class OrderNotFound(BusinessError):
    pass


class RateLimited(BusinessError):
    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after


class ServerError(BusinessError):
    pass


class VshopError(BusinessError):
    """An error code of the Vshop or Payment service (contract v2, `wire.VSHOP_ERROR_CLASSES`)."""


class CardNotFound(VshopError):
    pass


class CardNotOwned(VshopError):
    pass


class CardInactive(VshopError):
    pass


class PlanNotFound(VshopError):
    pass


class VshopOrderNotFound(VshopError):
    pass


class RenewalNotFound(VshopError):
    pass


class DuplicateOrderNo(VshopError):
    pass


class PayNotFound(VshopError):
    pass


class SystemBusy(VshopError):
    """The service refused the call for load: nothing was done, so it may be sent again."""


def is_retryable(error: BaseException) -> bool:
    """Whether a request that raised `error` may be sent again unchanged."""
    if isinstance(error, TlsError):
        return False
    if isinstance(error, TransportError | RateLimited | ServerError | SystemBusy):
        return True
    if isinstance(error, HttpStatusError):
        return error.status_code == 429 or error.status_code >= 500
    return False


def proves_not_acted(error: BaseException) -> bool:
    """Whether a mutating request that raised `error` provably did nothing, so may be sent again.

    Only 429 (throttled), 503 (unavailable), `SYSTEM_BUSY` and a connection that was never made
    qualify. A
    timeout, a reset, a 500/502/504 or a dropped answer may come after the server acted: the caller
    must settle such a call (read the membership), never send it blindly again.
    """
    if isinstance(error, TlsError):
        return False
    if isinstance(error, ConnectFailed | RateLimited | SystemBusy):
        return True
    if isinstance(error, HttpStatusError):
        return error.status_code in (429, 503)
    if isinstance(error, BusinessError):
        return error.http_status in (429, 503)
    return False
