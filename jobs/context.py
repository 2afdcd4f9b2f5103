"""What every command gets from the root group: settings, output discipline, and the API session."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field

import click

from lf_bulk.redaction import RedactingFilter
from lf_bulk.settings import ApiSession, Settings, open_session

SANDBOX_NOTICE = "sandbox: simulated Linksfield API, no real SIM is touched"


@dataclass
class AppContext:
    settings: Settings
    verbosity: int = 0
    show_progress: bool = True
    _session: ApiSession | None = field(default=None, repr=False)

    @property
    def quiet(self) -> bool:
        return self.verbosity < 0

    @property
    def progress_enabled(self) -> bool:
        return self.show_progress and not self.quiet and sys.stderr.isatty()

    def info(self, message: str) -> None:
        """A line for people, on stderr; silent in quiet mode."""
        if not self.quiet:
            click.echo(message, err=True)

    def session(self) -> ApiSession:
        if self._session is None:
            ctx = click.get_current_context().find_root()
            self._session = ctx.with_resource(open_session(self.settings))
            if self._session.is_sandbox:
                click.echo(f"{SANDBOX_NOTICE} ({self._session.base_url})", err=True)
        return self._session


def describe_store(settings: Settings) -> str:
    """Where runs, quota and locks live, as `doctor` shows it (never a password)."""
    from lf_bulk.store import is_postgres_url, shown_url

    if settings.store_url and is_postgres_url(settings.store_url):
        return f"{shown_url(settings.store_url)} (PostgreSQL, from {settings.origin('store')})"
    return f"sqlite: files in {settings.home}"


def describe_config_files(settings: Settings) -> str:
    return ", ".join(map(str, settings.config_files)) or "no config file"


class _TqdmStderrHandler(logging.Handler):
    """Log lines on the current stderr, written around any progress bar rather than through it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm  # loaded by the first log line, not by every command

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging must never break the job
            self.handleError(record)


def configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    if verbosity < 0:
        level = logging.ERROR
    for name in ("lf_bulk", "jobs"):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not any(isinstance(h, _TqdmStderrHandler) for h in logger.handlers):
            handler = _TqdmStderrHandler()
            handler.addFilter(RedactingFilter())
            handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
            logger.addHandler(handler)
    for noisy in ("httpx", "httpcore", "uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


pass_app = click.make_pass_decorator(AppContext)
