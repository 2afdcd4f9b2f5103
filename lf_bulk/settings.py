"""Resolved settings, the config files they come from, and opening an API session for them.

Config files layer in this order, each on top of the one before: the user config
(`~/.config/lf-bulk/config.toml`), then the folder config (`./lf-bulk.toml`); then environment
variables, then flags. `--config FILE` (or LF_BULK_CONFIG) replaces both files. A folder config is
trusted only if the user owns it and nobody else may write it; no config file may turn on a
destructive switch or raise a safety limit; unknown keys are errors.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import httpx

from lf_bulk.client import LinksfieldClient
from lf_bulk.errors import ConfigError, InvalidSetting
from lf_bulk.pacing import RequestPacer
from lf_bulk.redaction import mask, register_secret
from lf_bulk.retrying import RetryPolicy
from lf_bulk.sandbox import seed
from lf_bulk.sqlite import ensure_private_dir

log = logging.getLogger(__name__)

ENVIRONMENTS = ("sandbox", "uat", "prod")
BASE_URLS = {
    "uat": "https://wx.linksfield.net/topup_test",
    "prod": "https://wx.linksfield.net/topup",
}
SANDBOX_PARTNER_CODE = seed.PARTNER
DEFAULT_HOME = Path(".lf-bulk")
USER_CONFIG = Path("~/.config/lf-bulk/config.toml")
FOLDER_CONFIG = Path("lf-bulk.toml")
LOOPBACK_HOSTS = ("localhost", "::1", "[::1]")

# Switches that make a run destructive or unattended: only a command line turns them on.
COMMAND_LINE_ONLY = frozenset({"apply", "yes", "allow_insecure_http"})
# Safety limits a config file may lower but never raise above their defaults (reconcile's
# DEFAULT_MAX_CHANGES and DEFAULT_MAX_REMOVAL_RATIO; importing reconcile here would load pandas).
RAISE_ONLY_LIMITS: Mapping[str, float] = {"max_changes": 500, "max_removal_ratio": 0.1}


@dataclass(frozen=True)
class KnownSetting:
    """A key a config file may set: its default, and a check that raises ValueError if bad."""

    default: Any = None
    convert: Callable[[Any], Any] | None = None


Schema = Mapping[str, Union[KnownSetting, "Schema"]]


@dataclass(frozen=True)
class LoadedConfig:
    """The merged config files: `values` as Click's default_map, and which file set which key."""

    values: dict[str, Any] = field(default_factory=dict)
    files: tuple[Path, ...] = ()
    origins: dict[str, Path] = field(default_factory=dict)

    def origin_of(self, dotted_key: str) -> Path | None:
        return self.origins.get(dotted_key)


def config_candidates(explicit: Path | None) -> list[tuple[Path, bool]]:
    """The config files to read, in layering order, each with whether it must pass the trust check."""
    if explicit is not None:
        return [(explicit, False)]
    found = []
    user = USER_CONFIG.expanduser()
    if os.path.lexists(user):
        found.append((user, False))
    folder = FOLDER_CONFIG.absolute()
    if os.path.lexists(folder) and folder != user:
        found.append((folder, True))
    return found


def load_config(explicit: Path | None, schema: Schema) -> LoadedConfig:
    """Read, check and layer the config files; an explicit path must exist."""
    if explicit is not None and not os.path.lexists(explicit):
        raise ConfigError(f"config file {explicit} does not exist")
    values: dict[str, Any] = {}
    origins: dict[str, Path] = {}
    files = []
    for path, must_be_trusted in config_candidates(explicit):
        if must_be_trusted:
            check_trusted(path)
        data = _read_toml(path)
        _check_keys(data, schema, path, ())
        _merge(values, data, origins, path, ())
        files.append(path)
    return LoadedConfig(values, tuple(files), origins)


def check_trusted(path: Path) -> None:
    """A config in the current folder may come from anyone: it must be the user's and theirs only."""
    try:
        status = path.stat()
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read it ({exc.strerror or exc})") from None
    if status.st_uid != os.geteuid():
        raise ConfigError(
            f"config file {path} is owned by user id {status.st_uid}, not by you, so it is not "
            "used: a config in the current folder must be your own (or choose one with --config)"
        )
    if status.st_mode & 0o022:
        raise ConfigError(
            f"config file {path} is writable by group or others (mode "
            f"{status.st_mode & 0o777:o}), so it is not used: run `chmod go-w {path}`"
        )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path}: cannot read it: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read it ({exc.strerror or exc})") from None


def _check_keys(
    data: Mapping[str, Any], schema: Schema, path: Path, prefix: tuple[str, ...]
) -> None:
    for raw_key, value in data.items():
        key = raw_key.replace("-", "_")
        dotted = ".".join((*prefix, key))
        spec = schema.get(key)
        if key in COMMAND_LINE_ONLY and value is not False:
            raise ConfigError(
                f"config file {path}: {dotted!r} cannot be set in a config file; "
                "pass it on the command line of the run that needs it"
            )
        if key in RAISE_ONLY_LIMITS:
            _check_limit(value, spec, path, dotted, RAISE_ONLY_LIMITS[key])
        if spec is None:
            kind = "table" if isinstance(value, dict) else "key"
            close = difflib.get_close_matches(key, list(schema), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"config file {path}: unknown {kind} {dotted!r}{hint}")
        if isinstance(spec, KnownSetting):
            if isinstance(value, dict):
                raise ConfigError(f"config file {path}: {dotted!r} is a setting, not a table")
            if spec.convert is not None:
                try:
                    spec.convert(value)
                except (ValueError, TypeError) as exc:
                    raise InvalidSetting(
                        f"config file {path}: bad value for {dotted!r}: {exc}"
                    ) from None
        elif isinstance(value, dict):
            _check_keys(value, spec, path, (*prefix, key))
        else:
            raise ConfigError(
                f"config file {path}: {dotted!r} is a command: its settings go in a [{dotted}] table"
            )


def _check_limit(value: Any, spec: Any, path: Path, dotted: str, fallback: float) -> None:
    default = (
        spec.default if isinstance(spec, KnownSetting) and spec.default is not None else fallback
    )
    if isinstance(value, int | float) and not isinstance(value, bool) and value > default:
        raise ConfigError(
            f"config file {path}: {dotted!r} = {value} is above its default ({default}); a config "
            "file may only lower a safety limit: raise it on the command line of the run that needs it"
        )


def _merge(
    into: dict[str, Any],
    data: Mapping[str, Any],
    origins: dict[str, Path],
    path: Path,
    prefix: tuple[str, ...],
) -> None:
    for raw_key, value in data.items():
        key = raw_key.replace("-", "_")
        if isinstance(value, dict):
            table = into.setdefault(key, {})
            _merge(table, value, origins, path, (*prefix, key))
        else:
            into[key] = value
            origins[".".join((*prefix, key))] = path


def without_userinfo(url: str) -> str:
    """The URL as it may be shown or stored: any `user:password@` removed."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*:)?//[^/?#@]*@", r"\1//", url.strip())


def url_password(url: str) -> str | None:
    try:
        return httpx.URL(url).password or None
    except (httpx.InvalidURL, TypeError):
        return None


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


@dataclass(frozen=True)
class Settings:
    env: str = "sandbox"
    # Neither may appear in a repr: the code is the credential, the URL may carry a password.
    base_url: str | None = field(default=None, repr=False)
    partner_code: str | None = field(default=None, repr=False)
    home: Path = DEFAULT_HOME
    rate_per_second: float = 10.0
    max_in_flight: int = 3
    retry_deadline: float = 60.0
    sandbox_faults: str | None = None
    allow_insecure_http: bool = False
    config_files: tuple[Path, ...] = ()
    # Where each setting came from ("--base-url", "LF_BULK_BASE_URL", "config file X (base_url)"),
    # so that an error can say which one to change.
    origins: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def in_process_sandbox(self) -> bool:
        return self.env == "sandbox"

    @property
    def display_base_url(self) -> str | None:
        """The base URL as it may be shown or stored (no userinfo); None when not set."""
        return without_userinfo(self.base_url) if self.base_url else None

    @property
    def masked_partner_code(self) -> str:
        return "" if self.in_process_sandbox else mask(self.partner_code or "")

    def origin(self, name: str) -> str:
        return self.origins.get(name, "the default")

    def effective_partner_code(self) -> str:
        if self.in_process_sandbox:
            # The simulator has its own code; the user's credential is never sent to it.
            return SANDBOX_PARTNER_CODE
        if self.partner_code:
            return self.partner_code
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
        """Every check that needs no network, so that a bad setting stops before any request."""
        if self.env not in ENVIRONMENTS:
            raise InvalidSetting(
                f"unknown environment {self.env!r} (from {self.origin('env')}); "
                f"choose one of {', '.join(ENVIRONMENTS)}"
            )
        if self.in_process_sandbox:
            if self.base_url:
                raise ConfigError(
                    f"--env sandbox (from {self.origin('env')}) runs the embedded simulator, "
                    f"which talks to no other URL, but a base URL is set by "
                    f"{self.origin('base_url')}: to use a served sandbox pass --env uat "
                    f"--base-url URL --partner-code {SANDBOX_PARTNER_CODE}; otherwise remove "
                    "the base URL"
                )
            return
        self._check_url()
        self.effective_partner_code()

    def _check_url(self) -> None:
        shown = without_userinfo(self.remote_base_url())
        origin = self.origin("base_url") if self.base_url else f"--env {self.env}"
        try:
            url = httpx.URL(self.remote_base_url())
        except (httpx.InvalidURL, TypeError):
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.host:
            raise InvalidSetting(
                f"base URL {shown!r} (from {origin}) is not an http(s) URL with a host; "
                "pass --base-url https://host/path"
            )
        plain_http = url.scheme == "http" and not self.allow_insecure_http
        if plain_http and (self.env == "prod" or not is_loopback(url.host)):
            raise ConfigError(
                f"--env {self.env} needs https, but the base URL {shown} (from {origin}) is "
                "plain http: use https, or pass --allow-insecure-http on the command line"
            )

    def warnings(self) -> list[str]:
        """What a run must say about these settings, even in quiet mode."""
        url = self.display_base_url
        if url and not self.in_process_sandbox and url.lower().startswith("http://"):
            host = httpx.URL(url).host
            if self.env == "prod" or not is_loopback(host):
                return [
                    f"warning: plain http to {url}: the partner code and data are not encrypted"
                ]
        return []


def socks_proxy_variables() -> list[str]:
    return sorted(
        name
        for name, value in os.environ.items()
        if name.lower() in ("all_proxy", "https_proxy", "http_proxy")
        and value.lower().startswith("socks")
    )


@dataclass
class ApiSession:
    client: LinksfieldClient
    settings: Settings
    base_url: str

    @property
    def is_sandbox(self) -> bool:
        return self.settings.in_process_sandbox


@contextmanager
def open_session(settings: Settings) -> Iterator[ApiSession]:
    settings.validate()
    register_secret(settings.partner_code)
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
        try:
            # The embedded sandbox is reached directly: no proxy variable applies to it.
            client = LinksfieldClient(
                base_url,
                partner_code,
                pacer=pacer,
                retry=retry,
                trust_env=not settings.in_process_sandbox,
            )
        except ImportError as exc:
            names = " / ".join(socks_proxy_variables()) or "a *_PROXY variable"
            if "socks" not in str(exc).lower():
                raise
            raise ConfigError(
                f"{names} names a SOCKS proxy, which needs httpx's socks support: install it "
                f"with `pip install 'httpx[socks]'` in lf-bulk's environment, or unset {names}"
            ) from None
        stack.enter_context(client)
        yield ApiSession(client=client, settings=settings, base_url=client.base_url)
