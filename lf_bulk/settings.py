"""Resolved settings, and opening an API session for them (remote, or the in-process sandbox)."""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lf_bulk.client import LinksfieldClient
from lf_bulk.errors import ConfigError
from lf_bulk.pacing import RequestPacer
from lf_bulk.retrying import RetryPolicy
from lf_bulk.sqlite import ensure_private_dir

log = logging.getLogger(__name__)

ENVIRONMENTS = ("sandbox", "uat", "prod")
BASE_URLS = {
    "uat": "https://wx.linksfield.net/topup_test",
    "prod": "https://wx.linksfield.net/topup",
}
SANDBOX_PARTNER_CODE = "P000270"
DEFAULT_HOME = Path(".lf-bulk")
CONFIG_CANDIDATES = (Path("lf-bulk.toml"), Path("~/.config/lf-bulk/config.toml"))


@dataclass(frozen=True)
class Settings:
    env: str = "sandbox"
    base_url: str | None = None
    partner_code: str | None = None
    home: Path = DEFAULT_HOME
    rate_per_second: float = 10.0
    max_in_flight: int = 3
    retry_deadline: float = 60.0
    sandbox_faults: str | None = None

    @property
    def in_process_sandbox(self) -> bool:
        return self.env == "sandbox" and not self.base_url

    @property
    def masked_partner_code(self) -> str:
        return mask(self.partner_code or "")

    def effective_partner_code(self) -> str:
        if self.partner_code:
            return self.partner_code
        if self.env == "sandbox":
            return SANDBOX_PARTNER_CODE
        raise ConfigError(
            f"--env {self.env} needs a partner code: pass --partner-code, "
            "set LF_BULK_PARTNER_CODE, or put partner_code in the config file"
        )

    def remote_base_url(self) -> str:
        if self.base_url:
            return self.base_url
        if self.env in BASE_URLS:
            return BASE_URLS[self.env]
        raise ConfigError(
            f"unknown environment {self.env!r}; choose one of {', '.join(ENVIRONMENTS)}"
        )

    def validate(self) -> None:
        if self.env not in ENVIRONMENTS:
            raise ConfigError(
                f"unknown environment {self.env!r}; choose one of {', '.join(ENVIRONMENTS)}"
            )
        self.effective_partner_code()


def mask(secret: str) -> str:
    if len(secret) <= 4:
        return "*" * len(secret)
    return secret[:2] + "*" * (len(secret) - 4) + secret[-2:]


def load_config(path: Path | None) -> dict[str, Any]:
    """The config file as Click's default_map; an explicit path must exist, candidates may not."""
    candidates = [path] if path else [p.expanduser() for p in CONFIG_CANDIDATES]
    for candidate in candidates:
        if candidate.is_file():
            try:
                with candidate.open("rb") as handle:
                    data = tomllib.load(handle)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"config file {candidate}: {exc}") from None
            return {key.replace("-", "_"): value for key, value in data.items()}
        if path:
            raise ConfigError(f"config file {path} does not exist")
    return {}


@dataclass
class ApiSession:
    client: LinksfieldClient
    settings: Settings
    base_url: str

    @property
    def is_sandbox(self) -> bool:
        return self.settings.env == "sandbox"


@contextmanager
def open_session(settings: Settings) -> Iterator[ApiSession]:
    settings.validate()
    partner_code = settings.effective_partner_code()
    pacer = RequestPacer(settings.rate_per_second, settings.max_in_flight)
    retry = RetryPolicy(max_attempts=10, deadline_seconds=settings.retry_deadline)
    with ExitStack() as stack:
        if settings.in_process_sandbox:
            from lf_bulk.sandbox.server import running_sandbox

            ensure_private_dir(settings.home)
            server = stack.enter_context(
                running_sandbox(settings.home / "sandbox.db", settings.sandbox_faults)
            )
            base_url = server.base_url
        else:
            base_url = settings.remote_base_url()
        client = stack.enter_context(
            LinksfieldClient(base_url, partner_code, pacer=pacer, retry=retry)
        )
        yield ApiSession(client=client, settings=settings, base_url=base_url)
