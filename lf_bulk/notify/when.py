"""`--since` / `--until`: a moment in UTC, as a date, a date-time, or a span before now."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

_SPAN = re.compile(r"(?P<count>\d{1,6})(?P<unit>[smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
WHEN_HELP = (
    "an ISO date or date-time (2026-11-29, 2026-11-29T08:00, with an offset or Z; UTC when none) "
    "or a span before now (90m, 24h, 7d)"
)


def parse_when(text: str, *, now: Callable[[], datetime] | None = None) -> datetime:
    """The moment `text` names, as an aware UTC datetime; InputError says what is accepted."""
    value = text.strip()
    span = _SPAN.fullmatch(value)
    if span:
        current = now() if now else datetime.now(UTC)
        return current - timedelta(**{_UNITS[span["unit"]]: int(span["count"])})
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        # Imported here: the command line's --since/--until help reads this module at start.
        from lf_bulk.errors import InputError

        raise InputError(f"{value!r} is not a time: use {WHEN_HELP}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
