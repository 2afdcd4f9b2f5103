"""New job: upload a list, choose its sheet and column, see it validated, see the plan, confirm.

    GET  /jobs/new                  the form: action, group, file
    POST /jobs/new                  store the upload (`uploads.save_upload`), then columns or check
    GET  /jobs/{id}/columns         sheet and column, when the file has several
    POST /jobs/{id}/columns
    GET  /jobs/{id}/check           the validation page (reads the file only: nothing is sent)
    GET  /jobs/{id}/plan            the plan page (read-only calls, as the CLI's --dry-run)
    POST /jobs/{id}/confirm         launch the CLI command's library call; 303 to /runs/{run_id}
    POST /jobs/status-group         the fleet status of a group's members (no file)

Every job is the same library call as its CLI command (`jobplans.job_for`), so its checks
(invalid rows, the group exists, quota, the lock) are the CLI's; the console adds the typed
consent for destructive and money actions, and checks it again when the job starts.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from lf_bulk import runs, topups, wire
from lf_bulk.api_values import Group
from lf_bulk.console import jobplans, uploads
from lf_bulk.console.jobplans import Action
from lf_bulk.console.runner import Launch
from lf_bulk.console.state import ConsoleState, console_state
from lf_bulk.console.templating import error_response, render
from lf_bulk.errors import InputError, LfBulkError, RunChanged, UploadTooLarge
from lf_bulk.redaction import redact
from lf_bulk.sources import InputTable

SEE_OTHER = 303
TOO_LARGE = 413


def groups_of(state: ConsoleState) -> tuple[list[Group], str]:
    """The account's groups for a select, or why they could not be read."""
    try:
        return state.client().list_groups(), ""
    except LfBulkError as error:
        return [], redact(str(error))


def form_text(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def checked_group(value: str) -> str:
    """A group id from a form, checked as the CLI checks GROUP (InputError otherwise)."""
    return wire.validate_id(value, wire.IdKind.GROUP)


def store_upload(state: ConsoleState, file: object, **choices: str) -> uploads.Upload:
    """The form's file stored under a new id, with `choices`; old uploads cleared first."""
    if not isinstance(file, UploadFile) or not file.filename:
        raise InputError("choose a .csv or .xlsx file to upload; nothing was sent")
    folder = state.uploads_dir
    uploads.remove_old_uploads(folder)
    upload = uploads.save_upload(
        folder, file.filename, file.file, max_bytes=state.config.max_upload_bytes
    )
    return uploads.remember(upload, **choices)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=SEE_OTHER)


def _action_of(upload: uploads.Upload) -> Action:
    try:
        return Action(upload.choice("action") or "")
    except ValueError:
        raise InputError("this upload has no job; start again from New job") from None


# ---------------------------------------------------------------- the form


async def new_job(request: Request) -> Response:
    state = console_state(request)
    groups, groups_error = await run_in_threadpool(groups_of, state)
    context = {"actions": list(Action), "groups": groups, "groups_error": groups_error}
    return render(request, "newjob_form.html", context, nav="new-job")


async def upload(request: Request) -> Response:
    state = console_state(request)
    form = await request.form()
    try:
        action = Action(form_text(form, "action"))
    except ValueError:
        return error_response(request, InputError("choose an action"), back="/jobs/new")
    group_id = form_text(form, "group_id")
    try:
        if group_id or action.needs_group:
            group_id = checked_group(group_id)
        stored = await run_in_threadpool(
            store_upload, state, form.get("file"), action=action.value, group_id=group_id
        )
        seen = await run_in_threadpool(uploads.inspect_upload, stored)
    except LfBulkError as error:
        return refused(request, error, back="/jobs/new")
    finally:
        await form.close()
    if seen.needs_choice:
        return redirect(f"/jobs/{stored.upload_id}/columns")
    return redirect(f"/jobs/{stored.upload_id}/check")


# ---------------------------------------------------------------- sheet and column


def _load(state: ConsoleState, upload_id: str) -> uploads.Upload:
    return uploads.load_upload(state.uploads_dir, upload_id)


async def columns(request: Request) -> Response:
    state = console_state(request)
    upload_id = request.path_params["upload_id"]
    try:
        stored = await run_in_threadpool(_load, state, upload_id)
        action = _action_of(stored)
        sheet = request.query_params.get("sheet") or stored.choice("sheet")
        seen = await run_in_threadpool(uploads.inspect_upload, stored, sheet=sheet)
    except LfBulkError as error:
        return error_response(request, error, back="/jobs/new")
    context = {
        "upload": stored,
        "action": action,
        "seen": seen,
        "column": stored.choice("column") or seen.column,
        "ask_column": not action.reads_orders and bool(seen.headers),
    }
    return render(request, "newjob_columns.html", context, nav="new-job")


async def choose_columns(request: Request) -> Response:
    state = console_state(request)
    upload_id = request.path_params["upload_id"]
    form = await request.form()
    try:
        stored = await run_in_threadpool(_load, state, upload_id)
        sheet, column = form_text(form, "sheet"), form_text(form, "column")
        seen = await run_in_threadpool(uploads.inspect_upload, stored, sheet=sheet or None)
        if sheet and seen.sheets and sheet not in seen.sheets:
            raise InputError(f"the workbook has no sheet {sheet!r}")
        if column and column not in seen.headers:
            column = ""  # the sheet changed: its columns are offered again
        stored = await run_in_threadpool(
            lambda: uploads.remember(stored, sheet=sheet or None, column=column or None)
        )
    except LfBulkError as error:
        return error_response(request, error, back=f"/jobs/{upload_id}/columns")
    action = _action_of(stored)
    if not action.reads_orders and seen.headers and not (column or seen.column):
        return redirect(f"/jobs/{upload_id}/columns?{urlencode({'sheet': sheet})}")
    return redirect(f"/jobs/{upload_id}/check")


# ---------------------------------------------------------------- validation


def _validated(
    stored: uploads.Upload, action: Action
) -> tuple[InputTable | topups.OrderInput, uploads.Validation]:
    if action.reads_orders:
        return uploads.validate_orders(stored, sheet=stored.choice("sheet"))
    return uploads.validate_iccids(
        stored, sheet=stored.choice("sheet"), column=stored.choice("column")
    )


async def check(request: Request) -> Response:
    state = console_state(request)
    upload_id = request.path_params["upload_id"]
    try:
        stored = await run_in_threadpool(_load, state, upload_id)
        action = _action_of(stored)
        _, validation = await run_in_threadpool(_validated, stored, action)
    except LfBulkError as error:
        return error_response(request, error, back="/jobs/new")
    context = {"upload": stored, "action": action, "validation": validation}
    return render(request, "newjob_check.html", context, nav="new-job")


# ---------------------------------------------------------------- the plan


def _skip_invalid(params: Any) -> bool:
    return params.get("skip_invalid") in ("1", "on", "yes")


async def plan(request: Request) -> Response:
    state = console_state(request)
    upload_id = request.path_params["upload_id"]
    skip_invalid = _skip_invalid(request.query_params)
    try:
        stored = await run_in_threadpool(_load, state, upload_id)
        action = _action_of(stored)
        rows, validation = await run_in_threadpool(_validated, stored, action)
        if not validation.ok and not skip_invalid:
            return redirect(f"/jobs/{upload_id}/check")
        planned = await run_in_threadpool(
            lambda: jobplans.plan_job(
                action,
                state.client,
                state.settings,
                rows,
                group_id=stored.choice("group_id") or "",
                skip_invalid=skip_invalid,
                report_dir=stored.folder / "plan",
            )
        )
    except LfBulkError as error:
        return error_response(request, error, back=f"/jobs/{upload_id}/check")
    context = {
        "upload": stored,
        "action": action,
        "plan": planned,
        "skip_invalid": skip_invalid,
        "validation": validation,
    }
    return render(request, "newjob_plan.html", context, nav="new-job")


async def confirm(request: Request) -> Response:
    state = console_state(request)
    upload_id = request.path_params["upload_id"]
    form = await request.form()
    skip_invalid = _skip_invalid(form)
    consent = form_text(form, "consent")
    query = "?skip_invalid=1" if skip_invalid else ""
    try:
        stored = await run_in_threadpool(_load, state, upload_id)
        action = _action_of(stored)
        rows, _ = await run_in_threadpool(_validated, stored, action)
    except LfBulkError as error:
        return refused(request, error, back=f"/jobs/{upload_id}/plan{query}")

    def job(launch: Launch) -> runs.RunResult:
        return jobplans.job_for(
            action, state.journal, launch.client, state.settings, rows,
            group_id=stored.choice("group_id") or "", skip_invalid=skip_invalid,
            consent=consent, report_dir=state.new_report_dir(action.value),
        )(launch.progress, launch.say)  # fmt: skip

    return await launch_once(
        request, stored, f"{action.label} ({stored.original_name})", job,
        back=f"/jobs/{upload_id}/plan{query}",
    )  # fmt: skip


async def launch_once(
    request: Request, stored: uploads.Upload, label: str, job: Any, *, back: str
) -> Response:
    """Launch `job` for `stored`, once: a second confirmation goes to the run of the first (or
    is refused while the first is starting); a job refused before its run existed may be
    confirmed again."""
    state = console_state(request)
    if not await run_in_threadpool(uploads.claim, stored):
        again = await run_in_threadpool(_load, state, stored.upload_id)
        run_id = again.choice(uploads.RUN_CHOICE)
        if run_id:
            return redirect(f"/runs/{run_id}")
        error = RunChanged("this job was confirmed already and is starting; see Runs")
        return refused(request, error, back="/runs")
    try:
        launched = state.runner.launch(label, job)
        run_id = await run_in_threadpool(launched.run_id)
    except TimeoutError:
        return refused(request, InputError("the job is still starting; see Runs for it"), back)
    except LfBulkError as error:
        await run_in_threadpool(uploads.release, stored)
        return refused(request, error, back=back)
    await run_in_threadpool(lambda: uploads.remember(stored, **{uploads.RUN_CHOICE: run_id}))
    return redirect(f"/runs/{run_id}")


def refused(request: Request, error: LfBulkError, back: str) -> Response:
    """The error page of a library error; 413 for an upload over the size limit."""
    answer = error_response(request, error, back=back)
    if isinstance(error, UploadTooLarge):
        answer.status_code = TOO_LARGE
    return answer


# ---------------------------------------------------------------- fleet status of a group


async def status_of_group(request: Request) -> Response:
    """The fleet workbook of every SIM in a group (`lf-bulk sims status --group G`)."""
    state = console_state(request)
    form = await request.form()
    try:
        group_id = checked_group(form_text(form, "group_id"))

        def job(launch: Launch) -> runs.RunResult:
            return jobplans.group_status_job(
                group_id, state.journal, launch.client, state.settings,
                report_dir=state.new_report_dir("status"),
            )(launch.progress, launch.say)  # fmt: skip

        launched = state.runner.launch(f"Fleet status of {group_id}", job)
        run_id = await run_in_threadpool(launched.run_id)
    except (LfBulkError, TimeoutError) as error:
        if isinstance(error, TimeoutError):
            error = InputError("the job is still starting; see Runs for it")
        return error_response(request, error, back="/jobs/new")
    return redirect(f"/runs/{run_id}")


routes: list[BaseRoute] = [
    Route("/jobs/new", new_job, methods=["GET"], name="new_job"),
    Route("/jobs/new", upload, methods=["POST"]),
    Route("/jobs/status-group", status_of_group, methods=["POST"]),
    Route("/jobs/{upload_id}/columns", columns, methods=["GET"]),
    Route("/jobs/{upload_id}/columns", choose_columns, methods=["POST"]),
    Route("/jobs/{upload_id}/check", check, methods=["GET"]),
    Route("/jobs/{upload_id}/plan", plan, methods=["GET"]),
    Route("/jobs/{upload_id}/confirm", confirm, methods=["POST"]),
]
