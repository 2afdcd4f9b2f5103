"""Finance: the order export by keys (an upload) or by group, and the orders pushed to
`notify serve` with exact totals per currency.

    GET  /finance                   both exports' forms; the pushed orders and their totals
    POST /finance/export            `lf-bulk orders export FILE|--group G -o orders.xlsx`
    GET  /finance/files/{name}      an export's workbook (only names the console gave them)
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from lf_bulk import orders
from lf_bulk.console import finance_data
from lf_bulk.console.newjob import (
    checked_group,
    form_text,
    groups_of,
    refused,
    store_upload,
)
from lf_bulk.console.state import ConsoleState, console_state
from lf_bulk.console.templating import error_response, render
from lf_bulk.errors import InputError, LfBulkError, RunNotFound

SHOWN_PUSHES = 500
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def exports_dir(state: ConsoleState) -> Path:
    return state.report_root / "finance"


async def finance(request: Request) -> Response:
    state = console_state(request)
    groups, groups_error = await run_in_threadpool(groups_of, state)
    listing = await run_in_threadpool(finance_data.pushed_orders, state.settings.home)
    context = {
        "groups": groups,
        "groups_error": groups_error,
        "pushed": listing,
        "pushes": listing.pushes[:SHOWN_PUSHES],
    }
    return render(request, "finance.html", context, nav="finance")


def _export(state: ConsoleState, form: object, file: object) -> finance_data.FinanceExport:
    group_id = form_text(form, "group_id")
    try:
        zone = orders.zone_named(form_text(form, "timezone") or "UTC")
    except ValueError as error:
        raise InputError(str(error)) from None
    folder = exports_dir(state)
    if group_id:
        return finance_data.export_by_group(
            state.client(), checked_group(group_id), folder, zone=zone
        )
    stored = store_upload(state, file, action="orders_export")
    try:
        sheet = form_text(form, "sheet") or None
        return finance_data.export_by_keys(
            state.client(), stored.path, folder, sheet=sheet, zone=zone,
            source=stored.original_name,
        )  # fmt: skip
    except InputError as error:
        raise InputError(stored.shown(str(error))) from None


async def export(request: Request) -> Response:
    state = console_state(request)
    form = await request.form()
    try:
        made = await run_in_threadpool(_export, state, form, form.get("file"))
    except LfBulkError as error:
        return refused(request, error, back="/finance")
    finally:
        await form.close()
    return render(request, "finance_export.html", {"made": made}, nav="finance")


async def export_file(request: Request) -> Response:
    state = console_state(request)
    name = request.path_params["name"]
    path = exports_dir(state) / name
    try:
        if not finance_data.EXPORT_NAME.fullmatch(name):
            raise OSError(name)
        if not stat.S_ISREG(os.lstat(path).st_mode):
            raise OSError(name)
    except OSError:
        return error_response(request, RunNotFound(f"no export named {name[:80]!r}"))
    return FileResponse(path, media_type=XLSX_TYPE, filename=name)


routes: list[BaseRoute] = [
    Route("/finance", finance, methods=["GET"], name="finance"),
    Route("/finance/export", export, methods=["POST"]),
    Route("/finance/files/{name}", export_file, methods=["GET"]),
]
