"""Reconcile: upload a desired-state file, see the drift per category and group, apply it.

    GET  /reconcile                 the form: file, group for rows without one, scope
    POST /reconcile                 store the upload; 303 to its drift page
    GET  /reconcile/{id}            the drift (`lf-bulk reconcile FILE`: compare, nothing sent)
    POST /reconcile/{id}/apply      `lf-bulk reconcile FILE --apply --max-changes N`, with the
                                    typed number of removals when the mass-removal guard trips;
                                    303 to /runs/{run_id}

The apply compares again when it starts: what the user consented to is checked against the
groups as they are then, and the library refuses a plan beyond the typed limits.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from lf_bulk import runs
from lf_bulk.console import reconcile_data, uploads
from lf_bulk.console.newjob import (
    checked_group,
    form_text,
    groups_of,
    launch_once,
    redirect,
    refused,
    store_upload,
)
from lf_bulk.console.runner import Launch
from lf_bulk.console.state import ConsoleState, console_state
from lf_bulk.console.templating import error_response, render
from lf_bulk.errors import InputError, LfBulkError
from lf_bulk.sources import InputTable

ACTION = "reconcile"
YES = "1"


async def reconcile_form(request: Request) -> Response:
    state = console_state(request)
    groups, groups_error = await run_in_threadpool(groups_of, state)
    context = {"groups": groups, "groups_error": groups_error}
    return render(request, "reconcile.html", context, nav="reconcile")


async def reconcile_upload(request: Request) -> Response:
    state = console_state(request)
    form = await request.form()
    try:
        group_id = form_text(form, "group_id")
        if group_id:
            group_id = checked_group(group_id)
        choices = {
            "action": ACTION,
            "group_id": group_id,
            "all_groups": YES if form.get("all_groups") else "",
            "skip_invalid": YES if form.get("skip_invalid") else "",
        }
        stored = await run_in_threadpool(lambda: store_upload(state, form.get("file"), **choices))
    except LfBulkError as error:
        return refused(request, error, back="/reconcile")
    finally:
        await form.close()
    return redirect(f"/reconcile/{stored.upload_id}")


def _desired(stored: uploads.Upload) -> InputTable:
    try:
        table = runs.read_desired(stored.path, sheet=stored.choice("sheet"))
    except InputError as error:
        raise InputError(stored.shown(str(error))) from None
    return replace(table, source=stored.original_name)


def _compare(state: ConsoleState, stored: uploads.Upload) -> reconcile_data.DriftView:
    if stored.choice("action") != ACTION:
        raise InputError("this upload is not a desired-state file; start again from Reconcile")
    table = _desired(stored)
    try:
        return reconcile_data.compare(
            state.client, state.settings, table, group_id=stored.choice("group_id"),
            all_groups=bool(stored.choice("all_groups")), sheet_named=bool(stored.choice("sheet")),
            skip_invalid=bool(stored.choice("skip_invalid")), report_dir=stored.folder / "compare",
        )  # fmt: skip
    except InputError as error:
        raise InputError(stored.shown(str(error))) from None


async def drift(request: Request) -> Response:
    state = console_state(request)
    upload_id = request.path_params["upload_id"]
    try:
        stored = await run_in_threadpool(uploads.load_upload, state.uploads_dir, upload_id)
        sheet = request.query_params.get("sheet")
        if sheet is not None:
            stored = await run_in_threadpool(lambda: uploads.remember(stored, sheet=sheet))
        seen = await run_in_threadpool(uploads.inspect_upload, stored, sheet=stored.choice("sheet"))
        if seen.sheet is None and len(seen.sheets) > 1:
            asked = {"upload": stored, "seen": seen}
            return render(request, "reconcile_sheet.html", asked, nav="reconcile")
        view = await run_in_threadpool(_compare, state, stored)
    except LfBulkError as error:
        return error_response(request, error, back="/reconcile")
    context: dict[str, Any] = {"upload": stored, "view": view}
    return render(request, "reconcile_drift.html", context, nav="reconcile")


async def apply(request: Request) -> Response:
    state = console_state(request)
    upload_id = request.path_params["upload_id"]
    back = f"/reconcile/{upload_id}"
    form = await request.form()
    try:
        stored = await run_in_threadpool(uploads.load_upload, state.uploads_dir, upload_id)
        view = await run_in_threadpool(_compare, state, stored)
        if not view.changes:
            raise InputError("nothing to apply: the groups are as the file wants them")
        options = reconcile_data.apply_options(
            view, form_text(form, "max_changes"), form_text(form, "consent"),
            all_groups=bool(stored.choice("all_groups")),
        )  # fmt: skip
        table = await run_in_threadpool(_desired, stored)
    except LfBulkError as error:
        return refused(request, error, back=back)

    def job(launch: Launch) -> runs.RunResult:
        return reconcile_data.apply_job(
            state.journal, launch.client, state.settings, table, options,
            group_id=stored.choice("group_id"), sheet_named=bool(stored.choice("sheet")),
            skip_invalid=bool(stored.choice("skip_invalid")),
            report_dir=state.new_report_dir(ACTION),
        )(launch.progress, launch.say)  # fmt: skip

    return await launch_once(request, stored, f"Reconcile {stored.original_name}", job, back=back)


routes: list[BaseRoute] = [
    Route("/reconcile", reconcile_form, methods=["GET"], name="reconcile"),
    Route("/reconcile", reconcile_upload, methods=["POST"]),
    Route("/reconcile/{upload_id}", drift, methods=["GET"]),
    Route("/reconcile/{upload_id}/apply", apply, methods=["POST"]),
]
