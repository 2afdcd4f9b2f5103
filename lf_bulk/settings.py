"""Resolved settings, the config files they come from, and opening an API session for them.

Config files layer in this order, each on top of the one before: the user config
(`~/.config/lf-bulk/config.toml`), then the folder config (`./lf-bulk.toml`); then environment
variables, then flags. `--config FILE` (or LF_BULK_CONFIG) replaces both files. A folder config is
trusted only if the user owns it and nobody else may write it; no config file may turn on a
destructive switch or raise a safety limit; unknown keys are errors.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from lf_bulk.defaults import DEFAULT_DAILY_QUOTA, DEFAULT_QUOTA_RESERVE
from lf_bulk.defaults import DEFAULT_HOME as DEFAULT_HOME
from lf_bulk.defaults import DEFAULT_MAX_CHANGES as DEFAULT_MAX_CHANGES
from lf_bulk.defaults import DEFAULT_MAX_REMOVAL_RATIO as DEFAULT_MAX_REMOVAL_RATIO
from lf_bulk.defaults import ENVIRONMENTS as ENVIRONMENTS
from lf_bulk.errors import ConfigError, InvalidSetting
from lf_bulk.lazy import lazy_module
from lf_bulk.models import Service
from lf_bulk.pacing import RequestPacer
from lf_bulk.redaction import mask, register_secret
from lf_bulk.sandbox import PARTNER as SANDBOX_PARTNER
from lf_bulk.sqlite import ensure_private_dir
from lf_bulk.store import Pacer, is_postgres_url, opened_store

if TYPE_CHECKING:
    import difflib
    import tomllib

    import httpx

    from lf_bulk.client import LinksfieldClient
    from lf_bulk.quota import QuotaLedger
else:
    # Loaded when a URL is checked or a session opens, not by `--help` or `runs list`.
    httpx = lazy_module("httpx")
    # Loaded when a config file is read, or a key in it is unknown.
    tomllib = lazy_module("tomllib")
    difflib = lazy_module("difflib")

log = logging.getLogger(__name__)

# The three services' base URLs per environment (linksfield-api.md §1).
TOPUP, VSHOP, PAYMENT = SERVICES = (Service.TOPUP, Service.VSHOP, Service.PAYMENT)
SERVICE_URLS: Mapping[str, Mapping[Service, str]] = {
    "uat": {
        TOPUP: "https://wx.linksfield.net/topup_test",
        VSHOP: "https://wx.linksfield.net/vshop_uat",
        PAYMENT: "https://wx.linksfield.net/payment_uat",
    },
    "prod": {
        TOPUP: "https://wx.linksfield.net/topup",
        VSHOP: "https://wx.linksfield.net/vshop",
        PAYMENT: "https://wx.linksfield.net/payment",
    },
}
BASE_URLS = {env: urls[TOPUP] for env, urls in SERVICE_URLS.items()}
# The setting that overrides one service's URL (`--base-url` sets all three).
SERVICE_URL_SETTINGS = {TOPUP: "base_url", VSHOP: "vshop_url", PAYMENT: "payment_url"}
SANDBOX_PARTNER_CODE = SANDBOX_PARTNER
USER_CONFIG = Path("~/.config/lf-bulk/config.toml")
FOLDER_CONFIG = Path("lf-bulk.toml")
LOOPBACK_HOSTS = ("localhost", "::1", "[::1]")

# Switches that make a run destructive or unattended: only a command line turns them on.
COMMAND_LINE_ONLY = frozenset({"apply", "yes", "allow_insecure_http"})
# Safety limits a config file may lower but never raise above their defaults.
RAISE_ONLY_LIMITS: Mapping[str, float] = {
    "max_changes": DEFAULT_MAX_CHANGES,
    "max_removal_ratio": DEFAULT_MAX_REMOVAL_RATIO,
}
# Global settings (top-level keys only: `[sandbox.serve] daily_quota` is the simulator's own) that
# a config file may only lower: more requests a day than the contract's 5,000 would spend what the
# server may not give...
RAISE_ONLY_GLOBALS: Mapping[str, float] = {"daily_quota": DEFAULT_DAILY_QUOTA}
# ...or only raise: the requests kept for reconcile.
LOWER_ONLY_GLOBALS: Mapping[str, float] = {"quota_reserve": DEFAULT_QUOTA_RESERVE}


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


def load_config(explicit: Path | None, schema: Schema | Callable[[], Schema]) -> LoadedConfig:
    """Read, check and layer the config files; an explicit path must exist.

    `schema` may be given as a callable: it is then built only when there is a file to check.
    """
    if explicit is not None and not os.path.lexists(explicit):
        raise ConfigError(f"config file {explicit} does not exist")
    values: dict[str, Any] = {}
    origins: dict[str, Path] = {}
    files = []
    for path, must_be_trusted in config_candidates(explicit):
        if must_be_trusted:
            check_trusted(path)
        data = _read_toml(path)
        if callable(schema):
            schema = schema()
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
        if dotted in RAISE_ONLY_GLOBALS:
            _check_limit(value, spec, path, dotted, RAISE_ONLY_GLOBALS[dotted])
        if dotted in LOWER_ONLY_GLOBALS:
            _check_floor(value, spec, path, dotted, LOWER_ONLY_GLOBALS[dotted])
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


def _check_floor(value: Any, spec: Any, path: Path, dotted: str, fallback: float) -> None:
    default = (
        spec.default if isinstance(spec, KnownSetting) and spec.default is not None else fallback
    )
    if isinstance(value, int | float) and not isinstance(value, bool) and value < default:
        raise ConfigError(
            f"config file {path}: {dotted!r} = {value} is below its default ({default}); a config "
            "file may only raise this protection: lower it on the command line of the run that "
            "needs it"
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
    # Neither may appear in a repr: the code is the credential, a URL may carry a password.
    base_url: str | None = field(default=None, repr=False)
    partner_code: str | None = field(default=None, repr=False)
    home: Path = DEFAULT_HOME
    rate_per_second: float = 10.0
    max_in_flight: int = 3
    retry_deadline: float = 60.0
    sandbox_faults: str | None = None
    allow_insecure_http: bool = False
    config_files: tuple[Path, ...] = ()
    # One service's URL, over `base_url` (which points all three services at one server).
    vshop_url: str | None = field(default=None, repr=False)
    payment_url: str | None = field(default=None, repr=False)
    daily_quota: int = DEFAULT_DAILY_QUOTA
    quota_reserve: int = DEFAULT_QUOTA_RESERVE
    # The store of runs, quota and locks (`lf_bulk.store`): None is the SQLite files in `home`.
    store_url: str | None = field(default=None, repr=False)
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
        return self.remote_service_url(TOPUP)

    def _set_url(self, service: Service) -> str | None:
        """The URL a setting gives `service`: its own override, else `base_url`; None if none."""
        own = {VSHOP: self.vshop_url, PAYMENT: self.payment_url}.get(service)
        return own or self.base_url

    def _url_origin(self, service: Service) -> str:
        own = SERVICE_URL_SETTINGS[service]
        if service != TOPUP and getattr(self, own):
            return self.origin(own)
        return self.origin("base_url") if self.base_url else f"--env {self.env}"

    def remote_service_url(self, service: Service) -> str:
        """The base URL of `service` (`models.Service` value) on a real or served API."""
        url = self._set_url(service)
        if url:
            return url
        if self.env in SERVICE_URLS:
            return SERVICE_URLS[self.env][service]
        raise ConfigError(
            f"unknown environment {self.env!r}; choose one of {', '.join(ENVIRONMENTS)}"
        )

    def remote_service_urls(self) -> dict[Service, str]:
        return {service: self.remote_service_url(service) for service in SERVICES}

    def quota_identity(self) -> str:
        """The account the daily quota belongs to: the partner code at one server. The quota
        ledger stores only a salted hash of it."""
        if self.in_process_sandbox:
            return f"sandbox\n{SANDBOX_PARTNER_CODE}"
        topup = without_userinfo(self.remote_service_url(TOPUP))
        return f"{topup}\n{self.effective_partner_code()}"

    def validate(self) -> None:
        """Every check that needs no network, so that a bad setting stops before any request."""
        if self.env not in ENVIRONMENTS:
            raise InvalidSetting(
                f"unknown environment {self.env!r} (from {self.origin('env')}); "
                f"choose one of {', '.join(ENVIRONMENTS)}"
            )
        self._check_quota()
        if self.in_process_sandbox:
            for name in SERVICE_URL_SETTINGS.values():
                if getattr(self, name):
                    raise ConfigError(
                        f"--env sandbox (from {self.origin('env')}) runs the embedded simulator, "
                        f"which talks to no other URL, but a {_label(name)} is set by "
                        f"{self.origin(name)}: to use a served sandbox pass --env uat "
                        f"--base-url URL --partner-code {SANDBOX_PARTNER_CODE}; otherwise remove "
                        f"the {_label(name)}"
                    )
            return
        for service in SERVICES:
            self._check_url(service)
        self.effective_partner_code()

    def _check_quota(self) -> None:
        if self.daily_quota < 1:
            raise InvalidSetting(
                f"--daily-quota {self.daily_quota} (from {self.origin('daily_quota')}) allows "
                "no request at all; give at least 1"
            )
        if not 0 <= self.quota_reserve < self.daily_quota:
            raise InvalidSetting(
                f"--quota-reserve {self.quota_reserve} (from {self.origin('quota_reserve')}) must "
                f"be below --daily-quota {self.daily_quota} (from {self.origin('daily_quota')}): "
                "the reserve is the part of the day kept for reconcile"
            )

    def _check_url(self, service: Service) -> None:
        raw = self.remote_service_url(service)
        shown = without_userinfo(raw)
        origin = self._url_origin(service)
        try:
            url = httpx.URL(raw)
        except (httpx.InvalidURL, TypeError):
            url = None
        flag = "--" + SERVICE_URL_SETTINGS[service].replace("_", "-")
        label = "base URL" if service == TOPUP else f"{service} URL"
        if url is None or url.scheme not in ("http", "https") or not url.host:
            raise InvalidSetting(
                f"{label} {shown!r} (from {origin}) is not an http(s) URL with a host; "
                f"pass {flag} https://host/path"
            )
        plain_http = url.scheme == "http" and not self.allow_insecure_http
        if plain_http and (self.env == "prod" or not is_loopback(url.host)):
            raise ConfigError(
                f"--env {self.env} needs https, but the {label} {shown} (from {origin}) is "
                "plain http: use https, or pass --allow-insecure-http on the command line"
            )

    def warnings(self) -> list[str]:
        """What a run must say about these settings, even in quiet mode."""
        if self.in_process_sandbox:
            return []
        found = []
        for url in dict.fromkeys(self.remote_service_urls().values()):
            shown = without_userinfo(url)
            if not shown.lower().startswith("http://"):
                continue
            host = httpx.URL(shown).host
            if self.env == "prod" or not is_loopback(host):
                found.append(
                    f"warning: plain http to {shown}: the partner code and data are not encrypted"
                )
        return found


def _label(setting: str) -> str:
    """``'base URL'``, ``'vshop URL'``: a URL setting as messages name it."""
    return setting.removesuffix("_url") + " URL"


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
    # Every request of the session is counted here (the client's gate), and plans read it.
    quota: QuotaLedger
    service_urls: Mapping[Service, str] = field(default_factory=dict)

    @property
    def is_sandbox(self) -> bool:
        return self.settings.in_process_sandbox


def open_quota_ledger(settings: Settings) -> QuotaLedger:
    """The daily quota ledger of the settings' account, in `<home>/quota.db` (or the store)."""
    if settings.store_url and is_postgres_url(settings.store_url):
        with opened_store(settings.store_url, settings.home) as store:
            return store.quota_ledger(
                settings.quota_identity(),
                daily_quota=settings.daily_quota,
                reserve=settings.quota_reserve,
            )
    from lf_bulk.quota import QuotaLedger  # the ledger's machinery, for commands that send

    return QuotaLedger.in_home(
        settings.home,
        settings.quota_identity(),
        daily_quota=settings.daily_quota,
        reserve=settings.quota_reserve,
    )


@contextmanager
def open_pacer(settings: Settings, ledger: QuotaLedger) -> Iterator[Pacer]:
    """The request pacer: the process's own, or with a PostgreSQL store the one every process
    sharing the store uses for this account (its rate and in-flight cap hold across them)."""
    if settings.store_url and is_postgres_url(settings.store_url):
        with opened_store(settings.store_url, settings.home) as store:
            pacer = store.pacer(ledger.account, settings.rate_per_second, settings.max_in_flight)
        try:
            yield pacer
        finally:
            getattr(pacer, "close", lambda: None)()
        return
    yield RequestPacer(settings.rate_per_second, settings.max_in_flight)


@contextmanager
def open_session(
    settings: Settings, *, spend_reserve: bool = False, sandbox_url: str | None = None
) -> Iterator[ApiSession]:
    """The API client for `settings`, its requests counted in the quota ledger; `spend_reserve`
    lets it use the requests kept for reconcile (see `lf_bulk.quota`). `sandbox_url`: the
    embedded sandbox of this home is already served there (the console's, started once for its
    lifetime), so no second one is started."""
    settings.validate()
    register_secret(settings.partner_code)
    partner_code = settings.effective_partner_code()
    from lf_bulk.client import LinksfieldClient
    from lf_bulk.retrying import RetryPolicy

    retry = RetryPolicy(max_attempts=10, deadline_seconds=settings.retry_deadline)
    with ExitStack() as stack:
        if settings.in_process_sandbox and sandbox_url is not None:
            service_urls = dict.fromkeys(SERVICES, sandbox_url)
        elif settings.in_process_sandbox:
            from lf_bulk.sandbox.server import running_sandbox

            ensure_private_dir(settings.home)
            server = stack.enter_context(
                running_sandbox(settings.home / "sandbox.db", settings.sandbox_faults)
            )
            # The simulator serves every service's paths on one port.
            service_urls = dict.fromkeys(SERVICES, server.base_url)
        else:
            service_urls = settings.remote_service_urls()
        ledger = stack.enter_context(open_quota_ledger(settings))
        pacer = stack.enter_context(open_pacer(settings, ledger))
        try:
            # The embedded sandbox is reached directly: no proxy variable applies to it.
            client = LinksfieldClient(
                service_urls[TOPUP],
                partner_code,
                pacer=pacer,
                retry=retry,
                trust_env=not settings.in_process_sandbox,
                service_urls=service_urls,
                quota=ledger.gate(spend_reserve=spend_reserve),
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
        shown = {service: without_userinfo(url) for service, url in service_urls.items()}
        yield ApiSession(
            client=client,
            settings=settings,
            base_url=client.base_url,
            quota=ledger,
            service_urls=shown,
        )
