"""Runs: the list, one run (live progress while it is driven, its result once it ended), its
report files, and the Resume / Wait / Retry / Cancel actions (the `lf-bulk runs` library calls).
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from lf_bulk import runs
from lf_bulk.console.runner import Launch
from lf_bulk.console.state import ConsoleState, console_state
from lf_bulk.console.templating import error_response, render
from lf_bulk.errors import LfBulkError, RunLocked, RunNotFound
from lf_bulk.journal import (
    CANCELLED,
    FAILED,
    FINISHED,
    INTERRUPTED,
    LOOKUP_KIND,
    NOT_FINISHED,
    RUNNING,
    TERMINAL_STATUSES,
    ItemRecord,
    Journal,
    RunRecord,
)
from lf_bulk.models import OutcomeCode

# The report files a run's folder may hold, served by these names only.
REPORT_FILES = ("items.csv", "report.xlsx", "summary.json", "invalid.csv")
# Look-up runs' workbooks written into the report folder by default (fleet, payments).
WORKBOOK_FILES = ("fleet.xlsx", "payments.xlsx")
OUTPUT_OPTION = "output"
"""A look-up run's `options` key naming its workbook (`fleet.OPTION_OUTPUT`)."""
SHOWN_ITEMS = 500
EVENT_INTERVAL = 0.5
REFRESH_SECONDS = 3
STATUSES = (RUNNING, NOT_FINISHED, INTERRUPTED, FINISHED, FAILED, CANCELLED)
PROBLEM_OUTCOMES = (OutcomeCode.FAILED, OutcomeCode.REJECTED, OutcomeCode.PENDING)


# ---------------------------------------------------------------- the list


def _listing(state: ConsoleState, kind: str, status: str) -> tuple[list[dict[str, Any]], list[str]]:
    with state.journal() as journal:
        rows = runs.listing(journal, state.settings.home)
    kinds = sorted({str(r["operation"]) for r in rows})
    shown = [
        r
        for r in rows
        if (not kind or r["operation"] == kind) and (not status or r["status"] == status)
    ]
    return shown, kinds


async def runs_list(request: Request) -> Response:
    state = console_state(request)
    kind = request.query_params.get("kind", "")
    status = request.query_params.get("status", "")
    rows, kinds = await run_in_threadpool(_listing, state, kind, status)
    context = {
        "runs": rows,
        "kinds": kinds,
        "statuses": STATUSES,
        "kind": kind,
        "status": status,
    }
    return render(request, "runs.html", context, nav="runs")


# ---------------------------------------------------------------- one run


@dataclass(frozen=True)
class Bar:
    label: str
    count: int
    y: int
    width: int


CHART_WIDTH = 360
BAR_HEIGHT = 22
LABEL_WIDTH = 130


def chart_bars(counts: dict[str, int]) -> list[Bar]:
    """The Summary chart's bars: one per outcome with a count, widths relative to the largest."""
    shown = [(name, count) for name, count in sorted(counts.items()) if count]
    largest = max((count for _, count in shown), default=0)
    return [
        Bar(name, count, i * (BAR_HEIGHT + 6), max(1, round(CHART_WIDTH * count / largest)))
        for i, (name, count) in enumerate(shown)
    ]


def report_files(record: RunRecord) -> list[str]:
    """The names of the run's report files that really are in its report folder."""
    folder = Path(record.report_dir)
    names = [*REPORT_FILES, *WORKBOOK_FILES]
    options = record.details.get("options")
    output = options.get(OUTPUT_OPTION) if isinstance(options, dict) else None
    if isinstance(output, str) and output:
        recorded = Path(output)
        if recorded.parent == folder and recorded.name not in names:
            names.append(recorded.name)
    return [name for name in names if _regular_file(folder / name)]


def _regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)  # a link is never served
    except OSError:
        return False


def _problem_items(journal: Journal, run_id: str, outcome: str) -> tuple[list[ItemRecord], int]:
    wanted = {outcome} if outcome else {str(o) for o in PROBLEM_OUTCOMES}
    matching = [item for item in journal.items(run_id) if (item.outcome or "pending") in wanted]
    return matching[:SHOWN_ITEMS], len(matching)


def _run_page(state: ConsoleState, run_id: str, outcome: str) -> dict[str, Any]:
    with state.journal() as journal:
        shown = runs.details(journal, run_id, state.settings.home)
        record = journal.run(run_id)
        live = state.runner.live(run_id)
        driving = shown["status"] == RUNNING or state.runner.driving(run_id)
        # While it is driven the page reloads every few seconds: the rows wait for its end.
        items, matching = ([], 0) if driving else _problem_items(journal, run_id, outcome)
    counts: dict[str, int] = dict(shown["outcomes"])  # type: ignore[call-overload]
    total = record.valid
    finished = total - counts.get(str(OutcomeCode.PENDING), 0)
    if live is not None and live.total:
        total, finished = live.total, live.finished
    status = "running" if driving else str(shown["status"])
    return {
        "run": shown,
        "record": record,
        "status": status,
        "driving": driving,
        "live": live,
        "total": total,
        "finished": max(0, min(finished, total)),
        "bars": chart_bars(counts),
        "chart_width": CHART_WIDTH + LABEL_WIDTH + 80,
        "label_width": LABEL_WIDTH,
        "bar_height": BAR_HEIGHT,
        "files": report_files(record) if not driving else [],
        "items": items,
        "matching": matching,
        "outcome": outcome,
        "outcomes": sorted(counts),
        "can_resume": not driving and status in (NOT_FINISHED, INTERRUPTED),
        "can_retry": not driving
        and status == FINISHED
        and record.kind != LOOKUP_KIND
        and bool(shown.get("next")),
        "can_cancel": not driving and status not in TERMINAL_STATUSES,
        "refresh": REFRESH_SECONDS if driving else 0,
    }


async def run_page(request: Request) -> Response:
    state = console_state(request)
    run_id = request.path_params["run_id"]
    outcome = request.query_params.get("outcome", "")
    try:
        context = await run_in_threadpool(_run_page, state, run_id, outcome)
    except LfBulkError as error:
        return error_response(request, error, back="/runs")
    return render(request, "run.html", context, nav="runs")


async def run_events(request: Request) -> Response:
    """Server-sent events: the live progress every half second until the run is not driven."""
    state = console_state(request)
    run_id = request.path_params["run_id"]

    async def events() -> AsyncIterator[str]:
        while True:
            live = state.runner.live(run_id)
            data = live.snapshot() if live is not None else {"run_id": run_id, "done": True}
            yield f"data: {json.dumps(data)}\n\n"
            if live is None or live.done or await request.is_disconnected():
                return
            await asyncio.sleep(EVENT_INTERVAL)

    return StreamingResponse(events(), media_type="text/event-stream")


def _file_path(state: ConsoleState, run_id: str, name: str) -> Path:
    with state.journal() as journal:
        journal.verify_run(run_id)  # the folder served from is the journal's word: check it
        record = journal.run(run_id)
    if name not in report_files(record):
        raise RunNotFound(f"run {run_id} has no report file {name!r}")
    return Path(record.report_dir) / name


async def run_file(request: Request) -> Response:
    state = console_state(request)
    run_id, name = request.path_params["run_id"], request.path_params["name"]
    try:
        path = await run_in_threadpool(_file_path, state, run_id, name)
    except LfBulkError as error:
        return error_response(request, error, back=f"/runs/{run_id}")
    return FileResponse(
        path,
        filename=name,
        content_disposition_type="attachment",
        media_type="application/octet-stream",
    )


# ---------------------------------------------------------------- actions


def _launched(
    request: Request,
    label: str,
    job: Callable[[Journal, Launch, ConsoleState], object],
    run_id: str | None = None,
) -> Callable[[], str]:
    state = console_state(request)

    def work(launch: Launch) -> object:
        with state.journal() as journal:
            return job(journal, launch, state)

    def start() -> str:
        return state.runner.launch(label, work, run_id=run_id).run_id()

    return start


def _resume(journal: Journal, launch: Launch, state: ConsoleState, run_id: str) -> object:
    return runs.resume(
        journal, launch.client, state.settings, run_id, state.config.engine,
        progress=launch.progress, say=launch.say,
    )  # fmt: skip


def _wait(journal: Journal, launch: Launch, state: ConsoleState, run_id: str) -> object:
    return runs.drive(
        journal, launch.client, run_id, state.settings, state.config.engine,
        progress=launch.progress, say=launch.say,
    )  # fmt: skip


def _retry(journal: Journal, launch: Launch, state: ConsoleState, run_id: str) -> object:
    return runs.retry(
        journal, launch.client, state.settings, run_id, state.config.engine,
        progress=launch.progress, say=launch.say,
    )  # fmt: skip


ACTIONS = {"resume": _resume, "wait": _wait, "retry": _retry}


def _not_driven_here(state: ConsoleState, run_id: str) -> None:
    # The run's lock would refuse it too; this says who holds it.
    if state.runner.driving(run_id):
        raise RunLocked(
            f"run {run_id} is being driven by this console right now; its page shows how it goes"
        )


def _exists(state: ConsoleState, run_id: str) -> None:
    with state.journal() as journal:
        journal.run(run_id)


def run_action(action: str) -> Callable[[Request], Awaitable[Response]]:
    """POST /runs/{run_id}/<action>: the run driven in the background, the browser sent to its
    page; refused plainly (e.g. 409 while another process drives it)."""
    chosen = ACTIONS[action]

    async def endpoint(request: Request) -> Response:
        state = console_state(request)
        run_id = request.path_params["run_id"]
        try:
            await run_in_threadpool(_exists, state, run_id)
            _not_driven_here(state, run_id)
            start = _launched(
                request,
                f"{action} {run_id}",
                lambda journal, launch, st: chosen(journal, launch, st, run_id),
                # A retry drives a new run; a resume or a wait drives this one.
                run_id=None if action == "retry" else run_id,
            )
            driven = await run_in_threadpool(start)
        except LfBulkError as error:
            return error_response(request, error, back=f"/runs/{run_id}")
        except TimeoutError:  # still starting: its page tells how it goes
            return RedirectResponse(f"/runs/{run_id}", status_code=303)
        return RedirectResponse(f"/runs/{driven}", status_code=303)

    return endpoint


def _cancel(state: ConsoleState, run_id: str) -> None:
    _not_driven_here(state, run_id)
    with state.journal() as journal:
        runs.cancel(journal, state.settings, run_id)


async def cancel(request: Request) -> Response:
    state = console_state(request)
    run_id = request.path_params["run_id"]
    try:
        await run_in_threadpool(_cancel, state, run_id)
    except LfBulkError as error:
        return error_response(request, error, back=f"/runs/{run_id}")
    return RedirectResponse(f"/runs/{run_id}", status_code=303)


routes: list[BaseRoute] = [
    Route("/runs", runs_list, methods=["GET"], name="runs"),
    Route("/runs/{run_id}", run_page, methods=["GET"], name="run"),
    Route("/runs/{run_id}/events", run_events, methods=["GET"], name="run_events"),
    Route("/runs/{run_id}/files/{name}", run_file, methods=["GET"], name="run_file"),
    Route("/runs/{run_id}/cancel", cancel, methods=["POST"], name="run_cancel"),
    *(
        Route(
            f"/runs/{{run_id}}/{action}", run_action(action), methods=["POST"], name=f"run_{action}"
        )
        for action in ACTIONS
    ),
]
