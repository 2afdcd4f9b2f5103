"""The one place where library errors become messages and exit codes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from lf_bulk.exitcodes import ExitCode
from lf_bulk.lazy import lazy_module

if TYPE_CHECKING:
    import ssl

    from lf_bulk import errors, redaction
else:
    # The root group is built from this module: `lf-bulk --help` loads neither the error tree
    # nor ssl. Each is imported when an error is mapped (an `except` clause names its classes
    # only when an exception reaches it).
    errors = lazy_module("lf_bulk.errors")
    redaction = lazy_module("lf_bulk.redaction")
    ssl = lazy_module("ssl")

F = TypeVar("F", bound=Callable[..., Any])


class JobError(click.ClickException):
    """A message for the user and an exit code; the message is redacted whatever its source."""

    def __init__(self, message: str, exit_code: int = ExitCode.FATAL) -> None:
        super().__init__(redaction.redact(message))
        # Click declares exit_code on the class; each instance here carries its own.
        setattr(self, "exit_code", exit_code)  # noqa: B010


@contextmanager
def serving(what: str, stopped: str, certfile: Path | None, keyfile: Path | None) -> Iterator[None]:
    """Serve `what` until Ctrl-C, then say `stopped` on stderr: whether uvicorn took the signal
    (it does once its handlers are in place) or it arrived before (KeyboardInterrupt). A TLS
    file or a port that cannot be used is one line and exit 1."""
    try:
        yield
    except KeyboardInterrupt:
        pass
    except ssl.SSLError as error:
        raise JobError(
            f"cannot serve https with --certfile {certfile} and --keyfile {keyfile} ({error}): "
            "both must be PEM files, the key the certificate's own",
            ExitCode.FATAL,
        ) from None
    except OSError as error:
        reason = error.strerror or str(error)
        raise JobError(f"cannot start {what}: {reason}", ExitCode.FATAL) from None
    click.echo(stopped, err=True)


class JobExit(click.exceptions.Exit):
    """A finished job's exit code (0, 3, 4, 5) after its output is written."""


def exit_code_for(error: errors.LfBulkError) -> ExitCode:
    # An unknown group named on the command line is the user's mistake, found before any change.
    usage = errors.InputError | errors.PlanRefused | errors.InvalidSetting | errors.GroupNotFound
    if isinstance(error, usage):
        return ExitCode.BAD_INPUT
    if isinstance(error, errors.QuotaExhausted):  # a clean stop: resumable after the reset
        return ExitCode.NOT_FINISHED
    return ExitCode.FATAL


def advice_for(error: errors.LfBulkError) -> str:
    if isinstance(error, errors.SignatureRejected):
        return " The server rejected the signature: check --partner-code and the wire profile."
    if isinstance(error, errors.UnknownPartner):
        return " The server does not know this partner code: check --partner-code and --env."
    if isinstance(error, errors.TlsError):
        return ""
    if isinstance(error, errors.QuotaExhausted) and "after the reset" not in str(error):
        return " Nothing more was sent: run the command again after the reset."
    if isinstance(error, errors.ConnectionRefused):
        return (
            " The API could not be reached after retries: nothing listens at that address;"
            " check --base-url/--env, or start the server."
        )
    if isinstance(error, errors.TransportError | errors.HttpStatusError):
        return (
            " The API could not be reached after retries: check --base-url/--env and the network."
        )
    return ""


def to_click_exception(error: errors.LfBulkError) -> JobError:
    advice = advice_for(error)
    text = redaction.redact(str(error))
    message = f"{text.rstrip('.')}.{advice}" if advice else text
    return JobError(message, exit_code_for(error))


class ErrorMappingGroup(click.Group):
    """A group whose commands' expected errors end as one clear line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except errors.LfBulkError as error:
            if error.report_dir is not None:  # the failure's report: its folder is data, on stdout
                click.echo(str(error.report_dir))
            raise to_click_exception(error) from None
