"""Drive a journaled run to its end: send planned batches, poll request ids, retry what may.

One thread (the caller's) owns the journal and makes every decision; a small pool does the network
calls, all paced by the client's shared `RequestPacer`. Each state change is committed before the
next call, so a crash at any point leaves a journal that `drive` can pick up again.

A send whose answer was lost (timeout, reset, 5xx other than 503, a dropped answer, a crash while
sending) may have taken effect, and the API has no idempotency key: the batch becomes `answer_lost`
and is settled by reading the group's membership once the asynchronous window since the send has
passed (learned durations, else `DEFAULT_ASYNC_WINDOW`). What meets the goal then was changed by
this run (reported `added`/`removed` with reason `LOST`); only the rest is sent again, and a
`SIM_LOCKED` for such an ICCID means the lost operation is still running: settle it again later.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from lf_bulk import errors, quota, wire
from lf_bulk.api_values import AsyncResult, SimResult, Submission
from lf_bulk.client import LinksfieldClient
from lf_bulk.exitcodes import ExitCode
from lf_bulk.journal import (
    FAILED,
    FINAL,
    FINISHED,
    LOST,
    NOT_FINISHED,
    PENDING_LOST_MARK,
    RUNNING,
    SENDING,
    BatchRecord,
    Journal,
    Outcome,
)
from lf_bulk.models import Operation, OutcomeCode

log = logging.getLogger(__name__)

# How long to wait after a lost send before reading membership when no duration has been learned
# yet. Operations usually take seconds; a longer one shows as SIM_LOCKED on the re-send and is
# settled again, so a wrong guess costs a request, never a double change.
DEFAULT_ASYNC_WINDOW = 10.0
REASON_REQUEST_EXPIRED = "REQUEST_EXPIRED"
MAX_RETRY_DELAY = 60.0
RETRYABLE_FAILURES = frozenset({*wire.RETRYABLE_REASONS, PENDING_LOST_MARK, REASON_REQUEST_EXPIRED})


@dataclass(frozen=True)
class EngineOptions:
    wait: bool = True
    timeout: float | None = None
    max_attempts: int = 6
    retry_delay: float = 2.0
    first_poll: float = 1.0
    max_poll_interval: float = 30.0
    async_window: float | None = None  # wait after a lost send; None: learned, else the default


@dataclass
class Progress:
    """Callbacks for people watching; the engine works the same without them."""

    submitted: Callable[[int], None] = lambda n: None
    finished: Callable[[int], None] = lambda n: None


class StopReason(StrEnum):
    """Why a drive ended before its run finished; NONE (empty, falsy) when it did not stop."""

    NONE = ""
    TIMEOUT = "timeout"
    NO_WAIT = "no-wait"
    INTERRUPTED = "interrupted"
    PENDING = "pending"
    QUOTA = "quota"  # the day's request quota is spent (our ledger or the server's 429 DAILY)


@dataclass(frozen=True)
class DriveResult:
    exit_code: ExitCode
    counts: dict[str, int]
    stopped: StopReason = StopReason.NONE


RunStopped = errors.RunStopped  # its home is lf_bulk.errors; the old name stays importable


def outcome_of(operation: str, succeeded: bool, reason_code: str, reason: str) -> Outcome:
    if succeeded:
        return Outcome(_changed(operation))
    if operation == Operation.ADD and reason_code == wire.REASON_ALREADY_IN_GROUP:
        return Outcome(OutcomeCode.ALREADY_MEMBER, reason_code, reason)
    if operation == Operation.REMOVE and reason_code == wire.REASON_NOT_IN_GROUP:
        return Outcome(OutcomeCode.NOT_MEMBER, reason_code, reason)
    return Outcome(OutcomeCode.FAILED, reason_code, reason)


class WorkKind(StrEnum):
    SEND = "send"
    POLL = "poll"


@dataclass
class _Work:
    kind: WorkKind
    batch: BatchRecord
    attempts: dict[str, int] = field(default_factory=dict)

    @property
    def iccids(self) -> list[str]:
        return list(self.attempts)


class RunDriver:
    def __init__(
        self,
        journal: Journal,
        client: LinksfieldClient,
        run_id: str,
        *,
        options: EngineOptions | None = None,
        progress: Progress | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        after_batches: Callable[[], None] = lambda: None,
    ) -> None:
        """`after_batches` is called (in this thread) each time batches have closed, e.g. to
        write the items that became final into the reports while the run goes on."""
        self.journal = journal
        self.after_batches = after_batches
        self.client = client
        self.run_id = run_id
        self.options = options or EngineOptions()
        self.progress = progress or Progress()
        self.clock = clock
        self.sleep = sleep
        self.max_batch = journal.run(run_id).batch_size
        self._durations: list[float] = journal.async_durations(run_id)
        self._members_cache: dict[str, set[str]] = {}
        # The longest an operation of this drive was seen unfinished: until a duration is
        # learned, no first poll comes sooner than twice that after its send.
        self._unfinished_for = 0.0
        self._driving_since = clock()
        # The first QuotaExhausted of this drive: nothing more is sent, what is in flight lands.
        self._quota_spent: errors.QuotaExhausted | None = None

    # ------------------------------------------------------------ public

    def drive(self) -> DriveResult:
        self.journal.set_run_status(self.run_id, RUNNING, None)
        deadline = None if self.options.timeout is None else self.clock() + self.options.timeout
        stopped = StopReason.NONE
        try:
            self._recover_lost_sends()
            stopped = self._loop(deadline)
        except KeyboardInterrupt:
            stopped = StopReason.INTERRUPTED
        except errors.QuotaExhausted as error:
            self._quota_spent = self._quota_spent or error
            stopped = StopReason.QUOTA
        except RunStopped as error:
            if error.permanent:
                self.journal.set_run_status(self.run_id, FAILED, ExitCode.FATAL, reason=str(error))
                raise RunStopped(
                    f"run {self.run_id} failed: {error}. Resuming cannot fix this, so the run is "
                    f"closed; what was sent is in its report",
                    permanent=True,
                ) from None
            self.journal.set_run_status(
                self.run_id, NOT_FINISHED, ExitCode.FATAL, reason=str(error)
            )
            raise RunStopped(
                f"run {self.run_id} stopped: {error}. Nothing is lost: continue it with "
                f"`lf-bulk runs resume {self.run_id}`"
            ) from None
        result = self._conclude(stopped)
        if self._quota_spent is not None and result.exit_code == ExitCode.NOT_FINISHED:
            raise self._quota_stop(self._quota_spent)
        return result

    def _quota_stop(self, spent: errors.QuotaExhausted) -> errors.QuotaExhausted:
        """Record a quota stop (resumable, exit 5) and the error that tells the user about it."""
        used, gate = spent.used, quota.ledger_gate(self.client)
        counted = ""
        if used is None and gate is not None:  # the server's word: say what we counted
            used = gate.ledger.used_today()
            counted = f" ({used:,} requests counted here today)"
        message = (
            f"run {self.run_id} stopped: {spent}{counted}. Nothing is lost: continue it with "
            f"`lf-bulk runs resume {self.run_id}` after the reset"
        )
        self.journal.set_run_status(
            self.run_id, NOT_FINISHED, ExitCode.NOT_FINISHED, reason=str(spent)
        )
        stop = errors.QuotaExhausted(
            message,
            resets_at=spent.resets_at,
            used=used,
            limit=spent.limit,
            source=spent.source,
        )
        stop.report_dir = spent.report_dir
        return stop

    # ------------------------------------------------------------ main loop

    def _loop(self, deadline: float | None) -> StopReason:
        in_flight: dict[Future[Any], _Work] = {}
        pool = ThreadPoolExecutor(max_workers=self.client.pacer.max_in_flight)
        stopping = StopReason.NONE
        try:
            while True:
                now = self.clock()
                if not stopping and deadline is not None and now >= deadline:
                    stopping = StopReason.TIMEOUT
                if not stopping and self._quota_spent is not None:
                    stopping = StopReason.QUOTA
                phase: int | None = None
                if not stopping:
                    phase = self.journal.first_pending_phase(self.run_id)
                    if phase is None:
                        break
                    if not self.options.wait and self._all_sent(phase, in_flight):
                        stopping = StopReason.NO_WAIT
                    elif self._settle_due_within_quota(in_flight, now):
                        self.after_batches()
                        continue  # settling changed the batches: look again
                    else:
                        self._schedule(pool, in_flight, phase, now)
                if stopping and not in_flight:
                    break
                if not in_flight:
                    timeout = self._seconds_until_next_event(phase, deadline, now)
                    self.sleep(max(0.0, min(timeout, 1.0)))
                    continue
                try:
                    done, _ = wait(in_flight, timeout=1.0, return_when=FIRST_COMPLETED)
                except KeyboardInterrupt:
                    # Let calls already on the wire finish so that their answers are recorded.
                    stopping = StopReason.INTERRUPTED
                    done, _ = wait(in_flight)
                for future in done:
                    try:
                        self._handle(in_flight.pop(future), future)
                    except errors.QuotaExhausted as error:  # e.g. settling an expired request
                        self._quota_spent = self._quota_spent or error
                if done:
                    self.after_batches()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return stopping

    def _all_sent(self, phase: int, in_flight: dict[Future[Any], _Work]) -> bool:
        return not self.journal.has_planned(self.run_id, phase) and not any(
            w.kind is WorkKind.SEND for w in in_flight.values()
        )

    def _settle_due_within_quota(self, in_flight: dict[Future[Any], _Work], now: float) -> bool:
        try:
            return self._settle_due(in_flight, now)
        except errors.QuotaExhausted as error:
            self._quota_spent = self._quota_spent or error
            return True  # look again: the loop now stops

    def _settle_due(self, in_flight: dict[Future[Any], _Work], now: float) -> bool:
        """Settle the answer-lost batches whose asynchronous window has passed."""
        busy = {w.batch.batch_id for w in in_flight.values()}
        due = [
            b
            for b in self.journal.lost_due(self.run_id, now - self._async_window())
            if b.batch_id not in busy and self._settle_at(b) <= now
        ]
        self._members_cache.clear()  # one fresh read per group per tick
        for batch in due:
            self._settle_by_membership(batch, PENDING_LOST_MARK)
        return bool(due)

    def _settle_at(self, batch: BatchRecord) -> float:
        return (batch.submitted_at or 0.0) + self._async_window()

    def _schedule(
        self,
        pool: ThreadPoolExecutor,
        in_flight: dict[Future[Any], _Work],
        phase: int,
        now: float,
    ) -> None:
        busy = {w.batch.batch_id for w in in_flight.values()}
        free = self.client.pacer.max_in_flight - len(in_flight)
        if free <= 0:
            return
        # Only the batches that are ready, and no more of them than can go out now (those in
        # flight may be among them): a tick costs what it sends, not what the run holds.
        wanted = free + len(busy)
        planned = [
            b
            for b in self.journal.ready_to_send(self.run_id, phase, now, wanted)
            if b.batch_id not in busy
        ]
        polls: list[BatchRecord] = []
        if self.options.wait:
            polls = [
                b
                for b in self.journal.polls_due(self.run_id, now, wanted)
                if b.batch_id not in busy
            ]
        for batch in planned[:free]:
            attempts = self.journal.batch_attempts(self.run_id, batch.batch_id)
            iccids = list(attempts)
            if len(iccids) > self.max_batch:
                self.journal.split_batch(self.run_id, batch.batch_id, self.max_batch)
                return
            if not iccids:
                self.journal.close_batch(
                    self.run_id, batch.batch_id, state=FINAL, api_status="EMPTY", outcomes={}
                )
                continue
            self.journal.mark_sending(self.run_id, batch.batch_id, sent_at=now)
            future = pool.submit(
                self.client.submit, Operation(batch.operation), batch.group_id, iccids
            )
            in_flight[future] = _Work(WorkKind.SEND, batch, {i: n + 1 for i, n in attempts.items()})
            free -= 1
        for batch in polls[:free]:
            poll: Future[Any] = pool.submit(self.client.async_result, batch.request_id or "")
            in_flight[poll] = _Work(WorkKind.POLL, batch)

    def _seconds_until_next_event(
        self, phase: int | None, deadline: float | None, now: float
    ) -> float:
        times = []
        if phase is not None:
            send, poll, lost = self.journal.next_due(self.run_id, phase)
            if send is not None:
                times.append(send)
            if lost is not None:
                times.append(lost + self._async_window())
            if poll is not None and self.options.wait:
                times.append(poll or now)
        if deadline is not None:
            times.append(deadline)
        return max(0.0, min(times, default=now + 0.5) - now)

    # ------------------------------------------------------------ answers

    def _handle(self, work: _Work, future: Future[Any]) -> None:
        error = future.exception()
        if work.kind is WorkKind.SEND:
            if error is None:
                self._on_submitted(work, future.result())
            else:
                self._on_send_error(work, error)
        elif error is None:
            self._on_polled(work.batch, future.result())
        else:
            self._on_poll_error(work.batch, error)

    def _on_submitted(self, work: _Work, submission: Submission) -> None:
        now = self.clock()
        first_sends = sum(1 for n in work.attempts.values() if n <= 1)
        self.journal.mark_submitted(
            self.run_id,
            work.batch.batch_id,
            submission.request_id,
            submitted_at=now,
            first_poll=now + self._expected_duration(),
        )
        self.progress.submitted(first_sends)

    def _on_send_error(self, work: _Work, error: BaseException) -> None:
        batch = work.batch
        if isinstance(error, errors.QuotaExhausted):
            # Refused before it left (our ledger) or by a 429 (the server's): nothing was taken.
            self.journal.mark_unsent(self.run_id, batch.batch_id, str(error))
            self._quota_spent = self._quota_spent or error
            return
        if isinstance(error, errors.TooManyIccids):
            limit = error.max_iccids or len(work.iccids) // 2
            if not 1 <= limit < len(work.iccids):
                self.journal.mark_unsent(self.run_id, batch.batch_id, str(error))
                raise RunStopped(
                    f"batch {batch.batch_id}: the server refused {len(work.iccids)} ICCIDs as too "
                    f"many, with a limit of {error.max_iccids}; start a new run with a lower "
                    f"--batch-size",
                    permanent=True,
                )
            self.max_batch = min(self.max_batch, limit)
            log.info(
                "batch %d: the server takes at most %d ICCIDs; splitting", batch.batch_id, limit
            )
            self.journal.split_batch(self.run_id, batch.batch_id, self.max_batch)
            return
        if isinstance(error, errors.InvalidParameter):
            outcomes = {
                i: Outcome(OutcomeCode.FAILED, error.code, error.api_message) for i in work.iccids
            }
            self.journal.close_batch(
                self.run_id, batch.batch_id, state=FINAL, api_status="REJECTED", outcomes=outcomes
            )
            self.progress.finished(len(work.iccids))
            return
        if isinstance(error, errors.GroupNotFound):
            self.journal.mark_unsent(self.run_id, batch.batch_id, str(error))
            raise RunStopped(
                f"group {batch.group_id} does not exist (see `lf-bulk groups list`): {error}",
                permanent=True,
            )
        if errors.proves_not_acted(error) or _refused(error):
            # The server refused the batch, or never saw it: nothing was taken.
            self.journal.mark_unsent(self.run_id, batch.batch_id, str(error))
            raise RunStopped(f"batch {batch.batch_id} to {batch.group_id} was not sent: {error}")
        if isinstance(error, errors.LfBulkError):
            # The server may have taken the batch: settle it by membership, never re-send blindly.
            log.warning(
                "batch %d (%d ICCIDs to %s): the answer was lost (%s); it is settled by the "
                "group's membership once the operation has had time to finish",
                batch.batch_id,
                len(work.iccids),
                batch.group_id,
                error,
            )
            self.journal.mark_answer_lost(
                self.run_id, batch.batch_id, str(error), lost_at=self.clock()
            )
            return
        raise error

    def _on_polled(self, batch: BatchRecord, result: AsyncResult) -> None:
        now = self.clock()
        if not result.status.is_final:
            polls = batch.polls + 1
            interval = min(
                self.options.max_poll_interval, self.options.first_poll * 2 ** (polls - 1)
            )
            self.journal.schedule_poll(self.run_id, batch.batch_id, now + interval, result.status)
            self._learn_unfinished(batch, now)
            return
        by_iccid = {r.iccid: r for r in result.results}
        # One read of the batch's pending items: how often each was sent, which were lost sends,
        # and their ids for closing it.
        pending = self.journal.pending_in_batch(self.run_id, batch.batch_id)
        attempts: dict[str, int] = {}
        pending_ids: dict[str, list[int]] = {}
        lost_before: set[str] = set()
        for iccid, item_id, sent, reason_code in pending:
            attempts[iccid] = sent
            pending_ids.setdefault(iccid, []).append(item_id)
            if reason_code == PENDING_LOST_MARK:
                lost_before.add(iccid)
        outcomes: dict[str, Outcome] = {}
        retry: list[str] = []
        resettle: list[str] = []
        common = None if lost_before else _one_outcome_for_all(batch.operation, result, attempts)
        if common is not None and not _retryable(common):
            outcomes = dict.fromkeys(attempts, common)  # the usual batch: one answer for all
        else:
            self._sort_answers(batch, by_iccid, attempts, lost_before, outcomes, retry, resettle)
        with self.journal.transaction():  # one commit: what was learned and the batch closed
            self._learn_duration(result, batch, now)
            self.journal.close_batch(
                self.run_id,
                batch.batch_id,
                state=FINAL,
                api_status=result.status,
                outcomes=outcomes,
                retry=retry,
                retry_after=now + self._retry_delay(max(attempts.values(), default=1)),
                max_batch=self.max_batch,
                resettle=resettle,
                resettle_from=now,
                pending_ids=pending_ids,
            )
        self.progress.finished(len(outcomes))

    def _sort_answers(
        self,
        batch: BatchRecord,
        by_iccid: dict[str, SimResult],
        attempts: dict[str, int],
        lost_before: set[str],
        outcomes: dict[str, Outcome],
        retry: list[str],
        resettle: list[str],
    ) -> None:
        """Each pending ICCID's answer: a final outcome, sent again, or settled again."""
        # A batch's answers share a handful of (status, reason) pairs: one Outcome for each.
        alike: dict[tuple[bool, str, str], Outcome] = {}
        not_mentioned = Outcome(
            OutcomeCode.FAILED, PENDING_LOST_MARK, "the result did not mention this SIM"
        )
        for iccid, sent in attempts.items():
            sim = by_iccid.get(iccid)
            if sim is None:
                outcome = not_mentioned
            else:
                key = (sim.succeeded, sim.reason_code, sim.reason)
                found = alike.get(key)
                if found is None:
                    found = alike[key] = outcome_of(batch.operation, *key)
                outcome = found
            if iccid in lost_before:
                if (
                    outcome.reason_code == wire.REASON_SIM_LOCKED
                    and sent < self.options.max_attempts
                ):
                    resettle.append(iccid)  # the lost operation is still running on the server
                    continue
                if outcome.outcome in (OutcomeCode.ALREADY_MEMBER, OutcomeCode.NOT_MEMBER):
                    outcome = _changed_by_lost_send(batch.operation, "found when sent again")
            if _retryable(outcome) and sent < self.options.max_attempts:
                retry.append(iccid)
            else:
                outcomes[iccid] = outcome

    def _on_poll_error(self, batch: BatchRecord, error: BaseException) -> None:
        if isinstance(error, errors.QuotaExhausted):
            self._quota_spent = self._quota_spent or error  # polled again on resume
            return
        if isinstance(error, errors.RequestIdUnknown):
            log.warning(
                "batch %d: request id %s expired; checking membership",
                batch.batch_id,
                batch.request_id,
            )
            self._members_cache.pop(batch.group_id, None)
            self._settle_by_membership(batch, REASON_REQUEST_EXPIRED)
            return
        if isinstance(error, errors.LfBulkError):
            raise RunStopped(f"batch {batch.batch_id} (request {batch.request_id}): {error}")
        raise error

    # ------------------------------------------------------------ lost sends

    def _recover_lost_sends(self) -> None:
        for batch in self.journal.batches(self.run_id, [SENDING]):
            log.warning(
                "batch %d: its send was interrupted; it is settled by membership", batch.batch_id
            )
            # The process died while sending: the server may have taken the batch at any moment
            # up to now, so the window starts now.
            self.journal.mark_answer_lost(
                self.run_id, batch.batch_id, "interrupted while sending", lost_at=self.clock()
            )

    def _settle_by_membership(self, batch: BatchRecord, reason_code: str) -> None:
        """Settle a batch whose answer was lost: a goal met now was met by this run's send (it was
        sent because the goal was not met); the rest is sent again."""
        members = self._members(batch.group_id)
        adding = batch.operation == Operation.ADD
        attempts = self.journal.batch_attempts(self.run_id, batch.batch_id)
        outcomes: dict[str, Outcome] = {}
        retry: list[str] = []
        for iccid, sent in attempts.items():
            if (iccid in members) == adding:
                outcomes[iccid] = _changed_by_lost_send(
                    batch.operation, "shown by the group's membership", reason_code
                )
            elif sent < self.options.max_attempts:
                retry.append(iccid)
            else:
                outcomes[iccid] = Outcome(
                    OutcomeCode.FAILED, reason_code, "the batch's answer was lost"
                )
        self.journal.close_batch(
            self.run_id,
            batch.batch_id,
            state=LOST,
            api_status=reason_code,
            outcomes=outcomes,
            retry=retry,
            retry_after=self.clock(),
            max_batch=self.max_batch,
            retry_mark=PENDING_LOST_MARK,
        )
        self.progress.finished(len(outcomes))

    def _members(self, group_id: str) -> set[str]:
        if group_id not in self._members_cache:
            try:
                self._members_cache[group_id] = set(self.client.list_members(group_id))
            except errors.QuotaExhausted:
                raise
            except errors.LfBulkError as error:
                raise RunStopped(f"could not read the members of {group_id}: {error}") from None
        return self._members_cache[group_id]

    # ------------------------------------------------------------ timing

    def _retry_delay(self, attempts: int) -> float:
        backoff: float = self.options.retry_delay * 2.0 ** max(0, attempts - 1)
        return max(min(backoff, MAX_RETRY_DELAY), self._expected_duration())

    def _async_window(self) -> float:
        """How long after a send its asynchronous operation has surely finished."""
        if self.options.async_window is not None:
            return self.options.async_window
        if not self._durations:
            return DEFAULT_ASYNC_WINDOW
        # Learned durations come from second-resolution timestamps: a margin covers rounding.
        return max(self._durations[-20:]) * 1.5 + 2.0

    def _learn_unfinished(self, batch: BatchRecord, now: float) -> None:
        """A poll answered PROCESSING: the operations take longer than the time since the send,
        so the batches sent meanwhile and not yet polled are first polled when they can have
        finished (`_expected_duration`), not after `first_poll`: a request each saved."""
        if batch.submitted_at is None or now - batch.submitted_at <= self._unfinished_for:
            return
        if batch.submitted_at < self._driving_since:
            # Sent by an earlier drive (hours ago, perhaps): its age says nothing of how long
            # operations take now.
            return
        self._unfinished_for = now - batch.submitted_at
        if not self._durations:
            self.journal.defer_first_polls(self.run_id, self._expected_duration())

    def _expected_duration(self) -> float:
        if not self._durations:
            # Never past the longest wait between polls: a clock step or a backlog must not put
            # every first poll hours away.
            unfinished = min(2 * self._unfinished_for, self.options.max_poll_interval)
            return max(self.options.first_poll, unfinished)
        typical = float(statistics.median(self._durations[-20:]))
        return max(self.options.first_poll, typical + 0.25)

    def _learn_duration(self, result: AsyncResult, batch: BatchRecord, now: float) -> None:
        seconds = _server_duration(result)
        if seconds is None and batch.submitted_at is not None:
            seconds = now - batch.submitted_at
        if seconds is not None and seconds >= 0:
            self._durations.append(seconds)
            self.journal.record_async_duration(self.run_id, seconds)

    # ------------------------------------------------------------ end

    def _conclude(self, stopped: StopReason) -> DriveResult:
        counts = self.journal.outcome_counts(self.run_id)
        if counts.get(OutcomeCode.PENDING):
            self.journal.set_run_status(self.run_id, NOT_FINISHED, ExitCode.NOT_FINISHED)
            return DriveResult(ExitCode.NOT_FINISHED, counts, stopped or StopReason.PENDING)
        # A card rejected by `--verify` was never sent: the run did not reach its goal for it.
        missed = counts.get(OutcomeCode.FAILED) or counts.get(OutcomeCode.REJECTED)
        code = ExitCode.SOME_FAILED if missed else ExitCode.OK
        self.journal.set_run_status(self.run_id, FINISHED, code)
        return DriveResult(code, counts)


def _refused(error: BaseException) -> bool:
    """A failure that shows the server (or a proxy before it) did not take the request."""
    if isinstance(error, errors.TlsError):
        return True  # the connection was never made
    if isinstance(error, errors.HttpStatusError):
        return error.status_code < 500
    return (
        isinstance(error, errors.BusinessError)
        and not isinstance(error, errors.ServerError)
        and error.http_status < 500
    )


def _retryable(outcome: Outcome) -> bool:
    return outcome.outcome is OutcomeCode.FAILED and outcome.reason_code in RETRYABLE_FAILURES


def _one_outcome_for_all(
    operation: str, result: AsyncResult, attempts: dict[str, int]
) -> Outcome | None:
    """The outcome of every pending ICCID when the result gives each the same answer (status
    and reason) and mentions every one of them; None otherwise."""
    results = result.results
    if not results or len({(r.succeeded, r.reason_code, r.reason) for r in results}) != 1:
        return None
    if not attempts.keys() <= {r.iccid for r in results}:
        return None
    first = results[0]
    return outcome_of(operation, first.succeeded, first.reason_code, first.reason)


def _changed(operation: str) -> OutcomeCode:
    return OutcomeCode.ADDED if operation == Operation.ADD else OutcomeCode.REMOVED


def _changed_by_lost_send(
    operation: str, how: str, reason_code: str = PENDING_LOST_MARK
) -> Outcome:
    return Outcome(
        _changed(operation),
        reason_code,
        f"the answer to this run's send was lost; the change was {how}",
    )


def _server_duration(result: AsyncResult) -> float | None:
    try:
        start = datetime.fromisoformat(result.created_at.replace("Z", "+00:00"))
        end = datetime.fromisoformat(result.finished_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (end - start).total_seconds()
