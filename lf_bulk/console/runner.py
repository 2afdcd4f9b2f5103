"""`RunManager`: the console's jobs, each driven in a background thread, and their live progress.

A job is a function of a `Launch` that calls the library (`runs.start`, `runs.resume`,
`lookups.start_lookup`...) with the launch's `progress`, `say` and `client`. The manager learns
the id of each run the job drives from the library itself (`runs.watching_runs`: told once the
run's lock is held), so a page can send the browser to the run as soon as it exists, and a job
refused before its run existed (invalid rows, a plan refused, the run locked by another
process) raises that refusal from `Launched.run_id`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lf_bulk import runs
from lf_bulk.engine import Progress
from lf_bulk.errors import LfBulkError, QuotaExhausted, RunRefused
from lf_bulk.redaction import redact

if TYPE_CHECKING:
    from lf_bulk.client import LinksfieldClient
    from lf_bulk.settings import ApiSession

log = logging.getLogger(__name__)

MAX_MESSAGES = 50
MAX_TRACKED = 200
# Why a drive ended before its run's end (`RunResult.stopped`), and what continues it.
STOP_WORDS = {
    "no-wait": "Submitted without waiting for the results: Wait follows the run to its end.",
    "timeout": "Timed out waiting for the results: Wait continues.",
    "interrupted": "Interrupted: Resume continues the run; nothing is sent twice.",
    "pending": "Some answers are still pending: Resume asks again.",
    "quota": "The day's request quota is spent: the run stopped cleanly. Resume continues it "
    "after the reset (the footer says when); nothing is looked up twice.",
}
STARTING_TIMEOUT = 15.0


@dataclass
class LiveProgress:
    """A run driven by this console right now (or lately): what the progress page shows."""

    run_id: str
    label: str
    total: int = 0
    submitted: int = 0
    finished: int = 0
    started: float = field(default_factory=time.monotonic)
    done: bool = False
    stop: str = ""
    """Why the run stopped before its end, in words (e.g. the day's quota is spent)."""
    error: str = ""
    """The library's message when the job ended with an error."""
    messages: list[str] = field(default_factory=list)
    exit_code: int | None = None

    def eta_seconds(self) -> float | None:
        """Seconds left at the pace so far; None before the first SIM finished, or when done."""
        if self.done or not self.finished or not self.total:
            return None
        elapsed = time.monotonic() - self.started
        return max(0.0, elapsed / self.finished * (self.total - self.finished))

    def snapshot(self) -> dict[str, Any]:
        """The state as JSON-ready values (the server-sent events)."""
        eta = self.eta_seconds()
        return {
            "run_id": self.run_id,
            "total": self.total,
            "submitted": self.submitted,
            "finished": self.finished,
            "done": self.done,
            "eta_seconds": None if eta is None else round(eta),
            "stop": self.stop,
            "error": self.error,
        }


class Launch:
    """What a job gets: callbacks for the library, and its own API session (opened on use)."""

    def __init__(self, manager: RunManager, record: _Job, stack: ExitStack) -> None:
        self._manager = manager
        self._job = record
        self._stack = stack
        self._session: ApiSession | None = None

    def session(self) -> ApiSession:
        if self._session is None:
            self._session = self._stack.enter_context(self._manager.open_session())
        return self._session

    def client(self) -> LinksfieldClient:
        """This job's client (pass the method itself as the library's lazy `client`)."""
        return self.session().client

    def say(self, message: str) -> None:
        self._job.say(message)

    def progress(self, total: int) -> AbstractContextManager[Progress]:
        return self._job.progress(total)


class _Job:
    def __init__(self, manager: RunManager, label: str) -> None:
        self.manager = manager
        self.label = label
        self.known = threading.Event()
        self.run_ids: list[str] = []
        self.error: BaseException | None = None
        self.result: object = None
        self.messages: list[str] = []
        self.ended = False
        # The run a resume or a wait names, shown as driven from the click on; its id counts
        # (for `run_id`) only once the job holds the run's lock.
        self.expected: str | None = None

    @property
    def current(self) -> LiveProgress | None:
        return self.manager.live(self.run_ids[-1]) if self.run_ids else None

    def on_run(self, run_id: str) -> None:
        self.manager._track(LiveProgress(run_id, self.label, messages=list(self.messages)))
        self.run_ids.append(run_id)
        self.known.set()

    def say(self, message: str) -> None:
        text = redact(message)
        self.messages = [*self.messages, text][-MAX_MESSAGES:]
        live = self.current
        if live is not None:
            live.messages = [*live.messages, text][-MAX_MESSAGES:]

    @contextmanager
    def progress(self, total: int) -> Iterator[Progress]:
        live = self.current
        if live is None:
            yield Progress()
            return
        live.total, live.submitted, live.finished = total, 0, 0
        live.started = time.monotonic()

        def submitted(count: int) -> None:
            live.submitted += count

        def finished(count: int) -> None:
            live.finished += count

        yield Progress(submitted=submitted, finished=finished)


class Launched:
    """A launched job, seen from the page that launched it."""

    def __init__(self, job: _Job, thread: threading.Thread) -> None:
        self._job = job
        self.thread = thread

    def run_id(self, timeout: float = STARTING_TIMEOUT) -> str:
        """The id of the (first) run the job drives; or the error that ended it before a run
        existed; `TimeoutError` when it is still starting after `timeout` seconds."""
        if not self._job.known.wait(timeout):
            raise TimeoutError("the job is still starting")
        if self._job.run_ids:
            return self._job.run_ids[0]
        if self._job.error is not None:
            raise self._job.error
        found = getattr(self._job.result, "run_id", None)
        if isinstance(found, str) and found:
            return found
        said = "; ".join(self._job.messages) or "there was nothing to do"
        raise RunRefused(f"no run was started: {said}")

    @property
    def done(self) -> bool:
        return self._job.ended

    @property
    def result(self) -> object:
        return self._job.result

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)


class RunManager:
    """Drives the console's jobs in threads (one each) and keeps their live progress."""

    def __init__(self, open_session: Callable[[], AbstractContextManager[ApiSession]]) -> None:
        self.open_session = open_session
        self._lock = threading.Lock()
        self._live: dict[str, LiveProgress] = {}
        self._threads: list[threading.Thread] = []

    def launch(
        self, label: str, job: Callable[[Launch], object], *, run_id: str | None = None
    ) -> Launched:
        """Run `job` in a thread of its own; its runs are tracked as they start.

        `run_id`: the run the job drives, known before it starts (a resume, a wait): tracked at
        once, so its page says `running` and offers no second Resume while the job starts.
        """
        record = _Job(self, label)
        if run_id is not None:
            record.expected = run_id
            self._track(LiveProgress(run_id, label))

        def work() -> None:
            try:
                with ExitStack() as stack, runs.watching_runs(record.on_run):
                    record.result = job(Launch(self, record, stack))
            except LfBulkError as error:
                record.error = error
            except BaseException as error:  # a bug: the page says so, the log has the detail
                log.exception("console job %r failed", label)
                record.error = error
            finally:
                self._conclude(record)

        thread = threading.Thread(target=work, name=f"lf-bulk-console {label}", daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return Launched(record, thread)

    def _track(self, live: LiveProgress) -> None:
        with self._lock:
            self._live.pop(live.run_id, None)
            self._live[live.run_id] = live
            # The journal keeps every run; only the latest few need their last words here.
            ended = [run_id for run_id, seen in self._live.items() if seen.done]
            for run_id in ended[: max(0, len(self._live) - MAX_TRACKED)]:
                del self._live[run_id]

    def _conclude(self, record: _Job) -> None:
        found = getattr(record.result, "run_id", None)
        if not record.run_ids and isinstance(found, str) and found:
            # Nothing was driven (e.g. nothing to retry): its page still tells what was said.
            self._track(LiveProgress(found, record.label, messages=list(record.messages)))
            record.run_ids.append(found)
        record.ended = True
        error = record.error
        exit_code = getattr(record.result, "exit_code", None)
        stopped = getattr(record.result, "stopped", "")
        for run_id in record.run_ids:
            live = self.live(run_id)
            if live is None:
                continue
            if run_id == record.run_ids[-1]:
                if error is not None:
                    live.error = (
                        redact(str(error))
                        if isinstance(error, LfBulkError)
                        else (
                            "an unexpected error stopped the job (a bug: the console's log has the "
                            "detail); nothing is lost: Resume continues the run"
                        )
                    )
                    if isinstance(error, QuotaExhausted):
                        live.stop = live.error
                elif stopped:
                    live.stop = STOP_WORDS.get(str(stopped), str(stopped))
                live.exit_code = None if exit_code is None else int(exit_code)
            live.done = True
        expected = None if record.expected is None else self.live(record.expected)
        if expected is not None and record.expected not in record.run_ids:
            # The job ended before it held the run (e.g. another process drives it).
            if isinstance(error, LfBulkError):
                expected.error = redact(str(error))
            expected.done = True
        record.known.set()

    def live(self, run_id: str) -> LiveProgress | None:
        with self._lock:
            return self._live.get(run_id)

    def driving(self, run_id: str) -> bool:
        """Whether a job of this console is driving `run_id` now."""
        live = self.live(run_id)
        return live is not None and not live.done

    def close(self, timeout: float = 2.0) -> None:
        """Wait a little for running jobs (they stop at a kill anyway: the journal resumes)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
