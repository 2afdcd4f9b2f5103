"""`render`: a page from its template, with what every page shares; filters for people.

Autoescaping is on for every template (never `|safe` on data): ICCIDs, file and sheet names and
the API's messages are text. Every page gets `csrf_token` (and the `csrf_field()` macro for
forms), `nav` (the current section), `state` (the console's `ConsoleState`) and `quota`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from lf_bulk import errors
from lf_bulk.console.security import CSRF_FIELD, csrf_token_for, session_of
from lf_bulk.console.state import console_state
from lf_bulk.redaction import redact

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

SECTIONS = ("home", "new-job", "runs", "reconcile", "finance")


def number(value: object) -> str:
    """1234567 -> '1,234,567'; anything else as text."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return "" if value is None else str(value)
    return f"{value:,}"


def when(value: object) -> str:
    """An epoch (seconds) or ISO time -> '2026-11-29 19:05 UTC'; '' for nothing."""
    if value is None or value == "":
        return ""
    try:
        if isinstance(value, int | float):
            moment = datetime.fromtimestamp(float(value), UTC)
        elif isinstance(value, datetime):
            moment = value
        else:
            moment = datetime.fromisoformat(str(value))
    except (ValueError, OverflowError, OSError):
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def money(value: object) -> str:
    """An exact amount as written, grouped: Decimal('1234.50') -> '1,234.50' (never a float)."""
    if isinstance(value, Decimal):
        return f"{value:,f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "" if value is None else str(value)


def duration(seconds: object) -> str:
    """Seconds -> '2 min 5 s' (an ETA); '' when unknown."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return ""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(number=number, when=when, money=money, duration=duration)
    return env


def csrf_token(request: Request) -> str:
    return csrf_token_for(console_state(request).csrf_secret, session_of(request.scope))


def render(
    request: Request,
    template_name: str,
    context: dict[str, Any] | None = None,
    status_code: int = 200,
    *,
    nav: str = "",
) -> HTMLResponse:
    """The page `template_name` with `context` and what every page shares."""
    state = console_state(request)
    token = csrf_token(request)

    def csrf_field() -> Markup:
        return Markup('<input type="hidden" name="{}" value="{}">').format(
            CSRF_FIELD, escape(token)
        )

    values: dict[str, Any] = {
        "request": request,
        "state": state,
        "nav": nav,
        "csrf_token": token,
        "csrf_field": csrf_field,
        "quota": quota_figures(request),
        **(context or {}),
    }
    body = environment().get_template(template_name).render(values)
    return HTMLResponse(body, status_code=status_code)


def quota_figures(request: Request) -> dict[str, Any]:
    """Today's quota for the footer: used, left, when it resets ('' when unreadable)."""
    state = console_state(request)
    try:
        ledger = state.quota()
        return {
            "used": ledger.used_today(),
            "left": ledger.left_today(),
            "daily": ledger.daily_quota,
            "resets_at": when(ledger.resets_at()),
        }
    except Exception:  # the footer must never break a page (e.g. a broken home folder)
        return {}


def status_for(error: BaseException) -> int:
    """The HTTP status of a library error: 400 bad input, 404 no such run, 409 locked or
    changed, 429 quota spent, 503 API unreachable, 500 anything else."""
    if isinstance(error, errors.RunNotFound):
        return 404
    if isinstance(error, errors.RunLocked | errors.RunChanged | errors.RunTampered):
        return 409
    if isinstance(error, errors.QuotaExhausted):
        return 429
    if isinstance(
        error,
        errors.InputError | errors.PlanRefused | errors.InvalidSetting | errors.GroupNotFound,
    ):
        return 400
    if isinstance(error, errors.ApiError):
        return 503
    return 500


TITLES = {
    400: "Refused: nothing was sent",
    404: "Not found",
    409: "Locked or changed",
    429: "The day's request quota is spent",
    503: "The API could not be reached",
    500: "Something went wrong",
}


def error_response(
    request: Request, error: BaseException, *, back: str = "", advice: str = ""
) -> HTMLResponse:
    """`error.html` for a library error: its own message (redacted, escaped), what to do next."""
    status = status_for(error)
    if isinstance(error, errors.LfBulkError):
        message = redact(str(error))
    else:  # a bug: its text may hold anything, the log has the detail
        message = "An unexpected error stopped this page; the console's log has the detail."
    report_dir = getattr(error, "report_dir", None)
    if not advice and report_dir is not None:
        advice = f"Its report is in {report_dir}."
    context = {"title": TITLES[status], "message": message, "advice": advice, "back": back}
    return render(request, "error.html", context, status_code=status)
