"""The home page: the account's groups, recent runs, today's quota."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from lf_bulk import runs
from lf_bulk.api_values import Group
from lf_bulk.console.state import ConsoleState, console_state
from lf_bulk.console.templating import render
from lf_bulk.errors import LfBulkError
from lf_bulk.redaction import redact

RECENT_RUNS = 10


def _groups(state: ConsoleState) -> tuple[list[Group], str]:
    """The groups, or why they could not be read (the page still shows the rest)."""
    try:
        return state.client().list_groups(), ""
    except LfBulkError as error:
        return [], redact(str(error))


def _recent(state: ConsoleState) -> list[dict[str, object]]:
    with state.journal() as journal:
        return runs.listing(journal, state.settings.home)[:RECENT_RUNS]


async def home(request: Request) -> Response:
    state = console_state(request)
    groups, groups_error = await run_in_threadpool(_groups, state)
    recent = await run_in_threadpool(_recent, state)
    context = {"groups": groups, "groups_error": groups_error, "runs": recent}
    return render(request, "home.html", context, nav="home")


routes: list[BaseRoute] = [Route("/", home, methods=["GET"], name="home")]
