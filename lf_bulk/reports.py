"""The bulk job's run report (design notes §3).

A run writes three files into its report directory, each atomically, `summary.json` last (so its
presence says the other two are complete):

    items.csv     row, iccid, outcome, reason_code, reason, request_id: one line per input row
    report.xlsx   a Summary sheet (run facts, counts per outcome, a bar chart) and an Items sheet
    summary.json  run_id, operation, group_id, input_rows, valid, invalid, duplicates, batches,
                  outcomes {outcome: count}, started_at, finished_at, exit_code

Text that a spreadsheet would read as a formula is neutralised in both items.csv and report.xlsx.
Reports are for people: they get the default file mode (umask), not 0600.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import pickle
import queue
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import count, islice
from pathlib import Path
from typing import Any, Final

from lf_bulk import xlsx
from lf_bulk.errors import InputError
from lf_bulk.files import prove_writable
from lf_bulk.models import OutcomeCode
from lf_bulk.sqlite import foreign_link
from lf_bulk.xlsx import MAX_ROWS, Column, Sheet, Summary, atomic_file, neutralise, write_workbook

__all__ = [
    "DRY_RUN_OUTCOMES",
    "ITEMS_CSV",
    "ITEMS_SHEET_COLUMNS",
    "ITEM_FIELDS",
    "OUTCOMES",
    "REPORT_XLSX",
    "SUMMARY_JSON",
    "WORKBOOK_PROCESS_ITEMS",
    "ItemOutcome",
    "RunSummary",
    "StreamedRunReport",
    "count_outcomes",
    "prepare_report_dir",
    "write_items_csv",
    "write_run_report",
    "write_summary_json",
]

OUTCOMES: Final = (
    OutcomeCode.ADDED,
    OutcomeCode.REMOVED,
    OutcomeCode.ALREADY_MEMBER,
    OutcomeCode.NOT_MEMBER,
    OutcomeCode.FAILED,
    OutcomeCode.INVALID,
    OutcomeCode.DUPLICATE,
    OutcomeCode.PENDING,
)
"""The per-ICCID outcome vocabulary, in report order."""

DRY_RUN_OUTCOMES: Final = (
    OutcomeCode.WOULD_ADD,
    OutcomeCode.WOULD_REMOVE,
    OutcomeCode.ALREADY_MEMBER,
    OutcomeCode.NOT_MEMBER,
    OutcomeCode.INVALID,
    OutcomeCode.DUPLICATE,
)
"""A dry run's plan per row (nothing was sent), in report order."""

ITEM_FIELDS: Final = ("row", "iccid", "outcome", "reason_code", "reason", "request_id")

ITEMS_CSV: Final = "items.csv"
REPORT_XLSX: Final = "report.xlsx"
SUMMARY_JSON: Final = "summary.json"

ITEMS_SHEET_COLUMNS: Final = (
    Column("row", "int", width=9),
    Column("iccid", "text", width=24),
    Column("outcome", "text", width=17),
    Column("reason_code", "text", width=18),
    Column("reason", "text", width=50),
    Column("request_id", "text", width=36),
)


WORKBOOK_PROCESS_ITEMS: Final = 20_000
"""From this many items on, a streamed report's items.csv and workbook are written by a process
of its own (`lf_bulk.reports_process`): rendering them here holds the GIL that the run needs.
Below it, starting an interpreter costs more than it saves."""


def prepare_report_dir(path: Path) -> Path:
    """Create the report folder and prove it writable, before anything is sent.

    Raises `InputError` naming the folder: a job whose reports could not be written must stop
    before its first API call, not after it.
    """
    path = Path(path).absolute()
    _check_report_dir_is_ours(path)
    try:
        xlsx.make_folders(path)
        prove_writable(path)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(
            f"the report folder {path} cannot be written ({reason}); choose another with "
            "--report-dir. Nothing was sent"
        ) from None
    _check_report_dir_is_ours(path)
    return path


def excel_time(stamp: str | None) -> datetime | str | None:
    """A journal time (`2026-11-29T08:00:00Z`) as a naive UTC datetime, so Excel shows a date.

    Anything that is not such a time is kept as the text it is.
    """
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _check_report_dir_is_ours(path: Path) -> None:
    """Refuse a report folder another user chose (their link on the way) or owns: they could
    read the ICCIDs and change the reports. Checked before creating anything, and again after."""
    link = foreign_link(path)
    if link is not None:
        raise InputError(
            f"the report folder {path} is reached through {link[0]}, a symbolic link made by "
            f"another user (uid {link[1]}); choose another with --report-dir. Nothing was sent"
        )
    with suppress(FileNotFoundError, NotADirectoryError):
        owner = path.stat().st_uid
        if owner != os.geteuid():
            raise InputError(
                f"the report folder {path} belongs to another user (uid {owner}), who could read "
                "and change the reports; choose a folder of your own with --report-dir. Nothing "
                "was sent"
            )


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """What happened to one input row."""

    row: int
    """The row number in the input file, as the user sees it."""
    iccid: str
    outcome: str
    """One of OUTCOMES."""
    reason_code: str = ""
    reason: str = ""
    request_id: str = ""


@dataclass
class RunSummary:
    run_id: str
    operation: str
    group_id: str
    input_rows: int
    valid: int
    invalid: int
    duplicates: int
    batches: int
    outcomes: dict[str, int]
    started_at: str
    finished_at: str | None
    exit_code: int
    vocabulary: tuple[OutcomeCode, ...] = OUTCOMES
    """The outcomes `outcomes` counts: OUTCOMES, or DRY_RUN_OUTCOMES for a dry run's plan."""

    def to_json(self) -> dict[str, object]:
        """The `summary.json` object: the design notes' keys, in their order.

        `outcomes` lists every outcome of OUTCOMES, in that order (0 when absent); an outcome
        outside the vocabulary raises ValueError.
        """
        return {
            "run_id": self.run_id,
            "operation": self.operation,
            "group_id": self.group_id,
            "input_rows": self.input_rows,
            "valid": self.valid,
            "invalid": self.invalid,
            "duplicates": self.duplicates,
            "batches": self.batches,
            "outcomes": _complete(self.outcomes, self.vocabulary),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "exit_code": self.exit_code,
        }


def _complete(
    counts: Mapping[str, int], vocabulary: tuple[OutcomeCode, ...] = OUTCOMES
) -> dict[str, int]:
    unknown = sorted(set(counts) - set(vocabulary))
    if unknown:
        expected = tuple(str(outcome) for outcome in vocabulary)
        raise ValueError(f"unknown outcome(s) {', '.join(unknown)}; expected one of {expected}")
    return {str(outcome): counts.get(outcome, 0) for outcome in vocabulary}


def count_outcomes(
    items: Iterable[ItemOutcome], vocabulary: tuple[OutcomeCode, ...] = OUTCOMES
) -> dict[str, int]:
    """Items per outcome: every key of `vocabulary`, in that order, 0 when none.

    Raises ValueError for an outcome outside the vocabulary.
    """
    return _complete(Counter(item.outcome for item in items), vocabulary)


def write_items_csv(path: Path, items: Iterable[ItemOutcome]) -> int:
    """Write `items.csv` atomically (UTF-8, no BOM); return the number of items written."""
    n = neutralise
    seen = count()
    with atomic_file(path, newline="") as out:
        writer = csv.writer(out)
        writer.writerow(ITEM_FIELDS)
        # zip stops on `items` before drawing from `seen`, so `seen` ends at the item count.
        writer.writerows(
            (i.row, n(i.iccid), n(i.outcome), n(i.reason_code), n(i.reason), n(i.request_id))
            for i, _ in zip(items, seen, strict=False)
        )
    return next(seen)


def write_summary_json(path: Path, summary: RunSummary) -> None:
    """Write `summary.json` atomically."""
    text = json.dumps(summary.to_json(), indent=2, ensure_ascii=False) + "\n"
    with atomic_file(path) as out:
        out.write(text)


def write_run_report(
    report_dir: Path,
    items: Sequence[ItemOutcome],
    summary: RunSummary,
    *,
    extra_facts: Iterable[tuple[str, object]] = (),
) -> Path:
    """Write items.csv, report.xlsx and summary.json into `report_dir` (created); return it.

    `extra_facts` are appended to the Summary sheet's facts (e.g. ("Environment", "sandbox")).
    The chart shows `summary.outcomes`. When there are more items than an Excel sheet holds,
    the Items sheet keeps the first ones and the Summary says so; items.csv has them all.
    """
    report_dir = Path(report_dir)
    xlsx.make_folders(report_dir)
    write_items_csv(report_dir / ITEMS_CSV, items)

    fit = MAX_ROWS - 1
    rows = (
        (i.row, i.iccid, i.outcome, i.reason_code, i.reason, i.request_id)
        for i in islice(items, fit)
    )
    write_workbook(
        report_dir / REPORT_XLSX,
        [Sheet("Items", ITEMS_SHEET_COLUMNS, rows)],
        summary=_summary_sheet(summary, len(items), extra_facts),
    )
    write_summary_json(report_dir / SUMMARY_JSON, summary)
    return report_dir


def _summary_sheet(
    summary: RunSummary, items: int, extra_facts: Iterable[tuple[str, object]]
) -> Summary:
    """The Summary sheet of a run report of `items` items."""
    fit = MAX_ROWS - 1
    facts: list[tuple[str, object]] = [
        ("Run", summary.run_id),
        ("Operation", summary.operation),
        ("Group", summary.group_id),
        ("Input rows", summary.input_rows),
        ("Valid", summary.valid),
        ("Invalid", summary.invalid),
        ("Duplicates", summary.duplicates),
        ("Batches", summary.batches),
        ("Started at (UTC)", excel_time(summary.started_at)),
        ("Finished at (UTC)", excel_time(summary.finished_at) or "not finished"),
        ("Exit code", summary.exit_code),
        *extra_facts,
    ]
    if items > fit:
        facts.append(("Items sheet", f"first {fit:,} of {items:,} rows; all are in {ITEMS_CSV}"))
    return Summary(
        title=f"lf-bulk run {summary.run_id}",
        facts=facts,
        counts=list(_complete(summary.outcomes, summary.vocabulary).items()),
    )


def write_csv_rows(writer: Any, rows: Iterable[Sequence[Any]]) -> None:
    """Item rows (the fields of `ItemOutcome` in its order) into items.csv, text neutralised."""
    n = neutralise
    writer.writerows(
        (row, n(iccid), n(outcome), n(code), n(reason), n(request_id))
        for row, iccid, outcome, code, reason, request_id in rows
    )


class StreamedRunReport:
    """A run report written while the run goes on: items are added in report order as they
    become final, so that little is left to write when the last answer arrives.

    items.csv and the workbook's Items sheet are written to their temporary files as items are
    added (the workbook by a thread of its own, XlsxWriter streaming rows to disk); `finish`
    writes the Summary sheet and summary.json and renames everything into place, as
    `write_run_report` does. Until then nothing in the folder changes; `abandon` (or a crash)
    leaves the previous reports as they were.
    """

    def __init__(self, report_dir: Path, *, separate_process: bool = False) -> None:
        """`separate_process`: items.csv and the workbook are written by
        `lf_bulk.reports_process`, fed by the thread, for a run large enough that rendering them
        here would slow the run down."""
        self.report_dir = xlsx.make_folders(Path(report_dir))
        self.count = 0
        self._files = ExitStack()
        self._rows: queue.SimpleQueue[list[tuple[object, ...]] | None] = queue.SimpleQueue()
        self._summary: Summary | None = None
        self._failure: BaseException | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._csv: Any = None  # a csv writer, when items.csv is written here
        target = self._write_workbook
        if separate_process:
            try:
                self._process = _start_report_process(self.report_dir)
                target = self._feed_report_process
            except OSError:
                self._process = None  # no interpreter to start: written here, as for a small run
        if self._process is None:
            self._csv = csv.writer(
                self._files.enter_context(atomic_file(self.report_dir / ITEMS_CSV, newline=""))
            )
            self._csv.writerow(ITEM_FIELDS)
        self._writer = threading.Thread(target=target, daemon=True)
        self._writer.start()

    def add(self, items: Sequence[ItemOutcome]) -> None:
        self.add_rows(
            [(i.row, i.iccid, i.outcome, i.reason_code, i.reason, i.request_id) for i in items]
        )

    def add_rows(self, rows: Sequence[tuple[int, str, str, str, str, str]]) -> None:
        """Add items given as (row, ICCID, outcome, reason code, reason, request id) tuples,
        the fields of `ItemOutcome` in its order: a million-item run makes no object per item."""
        if self._csv is None:  # the report process writes both files
            self._rows.put(list(rows))
            self.count += len(rows)
            return
        write_csv_rows(self._csv, rows)
        room = MAX_ROWS - 1 - self.count
        if room > 0:
            self._rows.put(list(rows[:room]))
        self.count += len(rows)

    def finish(
        self, summary: RunSummary, *, extra_facts: Iterable[tuple[str, object]] = ()
    ) -> Path:
        """Write the Summary and summary.json and put the three files in place; return the
        folder. Raises what writing raised (OSError, ValueError), leaving nothing half done."""
        try:
            self._summary = _summary_sheet(summary, self.count, extra_facts)
        except BaseException:
            self.abandon()
            raise
        self._rows.put(None)
        self._writer.join()
        if self._failure is not None:
            self._discard_files()
            raise self._failure
        self._files.close()
        write_summary_json(self.report_dir / SUMMARY_JSON, summary)
        return self.report_dir

    def abandon(self) -> None:
        """Stop without touching the reports in the folder; the temporary files are removed."""
        self._failure = self._failure or _Abandoned()
        self._rows.put(None)
        self._writer.join()
        self._discard_files()

    def _discard_files(self) -> None:
        with suppress(_Abandoned):
            self._files.__exit__(_Abandoned, _Abandoned(), None)

    def _write_workbook(self) -> None:
        ended = False

        def rows() -> Iterator[tuple[object, ...]]:
            nonlocal ended
            while (chunk := self._rows.get()) is not None:
                yield from chunk
            ended = True
            if self._summary is None or self._failure is not None:
                raise _Abandoned

        def summary() -> Summary:
            assert self._summary is not None
            return self._summary

        try:
            write_workbook(
                self.report_dir / REPORT_XLSX,
                [Sheet("Items", ITEMS_SHEET_COLUMNS, rows())],
                summary,
            )
        except BaseException as error:  # handed to `finish`, in the caller's thread
            self._failure = self._failure or error
            while not ended and self._rows.get() is not None:  # take what `add` still puts
                pass

    def _feed_report_process(self) -> None:
        """Hand the rows to the report process as they come (this thread waits on the pipe,
        not the caller), then the summary; a failure there is handed to `finish`."""
        from lf_bulk.reports_process import ROWS, SUMMARY

        process = self._process
        assert process is not None and process.stdin is not None
        closing = b""
        try:
            try:
                while (chunk := self._rows.get()) is not None:
                    pickle.dump((ROWS, chunk), process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                if self._summary is not None and self._failure is None:
                    closing = pickle.dumps((SUMMARY, self._summary))
            except BrokenPipeError:
                closing = b""  # it stopped: what it said follows
                while self._rows.get() is not None:  # take what `add` still puts
                    pass
            try:
                said, _ = process.communicate(closing)
            except BrokenPipeError:
                said, _ = process.communicate()
            if process.returncode != 0 and self._failure is None:
                self._failure = _report_process_failure(said, process.returncode)
            elif not closing and self._failure is None:
                self._failure = OSError(
                    errno.EPIPE, "the report process stopped before the end of the report"
                )
        except BaseException as error:
            self._failure = self._failure or error
            process.kill()
            process.wait()


def _start_report_process(folder: Path) -> subprocess.Popen[bytes]:
    """`lf_bulk.reports_process` writing into `folder`, importing this very copy of lf_bulk.

    Isolated (`-I`): no module of the current folder or of PYTHONPATH can stand in for ours.
    Without the `LF_BULK_*` variables: the partner codes stay in the process that sends. In a
    session of its own: a Ctrl-C meant for the run does not cut its report short (the end of
    its input decides when it stops).
    """
    import lf_bulk

    code_root = str(Path(lf_bulk.__file__).resolve().parent.parent)
    env = {name: value for name, value in os.environ.items() if not name.startswith("LF_BULK_")}
    return subprocess.Popen(
        [sys.executable, "-I", "-c", _REPORT_PROCESS_MAIN, code_root, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )


_REPORT_PROCESS_MAIN = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from lf_bulk.reports_process import main; sys.exit(main(sys.argv[2:]))"
)


def _report_process_failure(said: bytes, status: int) -> BaseException:
    """The error the report process reported, as the type it was (OSError, ValueError)."""
    try:
        failure = json.loads(said.decode("utf-8", "replace").strip() or "{}")
    except ValueError:
        failure = {}
    message = str(failure.get("message") or f"the report process failed (exit {status})")
    kind = failure.get("error")
    if kind == "ValueError":
        return ValueError(message)
    if kind == "TypeError":
        return TypeError(message)
    number = failure.get("errno")
    return OSError(number if isinstance(number, int) else errno.EIO, message)


class _Abandoned(Exception):
    """A streamed report given up: its temporary files go, the folder stays as it was."""
