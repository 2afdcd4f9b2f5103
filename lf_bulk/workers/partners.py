"""Per-partner settings in the shared store (table `partners`), and where each partner's code is.

A row holds what every worker must agree on: the environment, URLs (never with a password), the
daily quota and the reserve, and optionally the partner's own report folder (an absolute path
every worker machine mounts; default the worker's `--report-dir`). The partner code is the
credential: it is never stored in the database nor passed on a command line. Each worker machine
reads it from the environment variable
`LF_BULK_PARTNER_CODE_<NAME>` (the name upper-cased, '-' as '_') or from `<home>/credentials.toml`
(`[partner_codes]`, `NAME = "code"`), a file that must be the user's own and mode 0600.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lf_bulk.errors import ConfigError, InvalidSetting
from lf_bulk.quota import DEFAULT_DAILY_QUOTA, DEFAULT_QUOTA_RESERVE
from lf_bulk.settings import ENVIRONMENTS, Settings, url_password, without_userinfo
from lf_bulk.workers.spec import check_partner_name

CREDENTIALS_FILE = "credentials.toml"
CODE_VARIABLE_PREFIX = "LF_BULK_PARTNER_CODE_"
# The embedded sandbox lives in one process's <home>: nothing a second machine could share.
PARTNER_ENVIRONMENTS = tuple(env for env in ENVIRONMENTS if env != "sandbox")

SCHEMA = """
CREATE TABLE IF NOT EXISTS partners (
    name TEXT PRIMARY KEY,
    env TEXT NOT NULL,
    base_url TEXT,
    vshop_url TEXT,
    payment_url TEXT,
    daily_quota INTEGER NOT NULL,
    quota_reserve INTEGER NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""
# Columns added since the table was first made, added to an older table when missing (asked
# first: an ALTER takes the table's strongest lock even when it has nothing to do).
ADDED_COLUMNS = {"report_dir": "ALTER TABLE partners ADD COLUMN IF NOT EXISTS report_dir TEXT"}
COLUMNS = (
    "name", "env", "base_url", "vshop_url", "payment_url", "daily_quota", "quota_reserve",
    "report_dir",
)  # fmt: skip
# The columns that make a partner's settings (the report folder is where, not how, it runs).
SETTING_COLUMNS = COLUMNS[:7]


@dataclass(frozen=True)
class Partner:
    name: str
    env: str
    base_url: str | None = None
    vshop_url: str | None = None
    payment_url: str | None = None
    daily_quota: int = DEFAULT_DAILY_QUOTA
    quota_reserve: int = DEFAULT_QUOTA_RESERVE
    report_dir: str | None = None

    def __post_init__(self) -> None:
        check_partner_name(self.name)
        if self.report_dir is not None and not Path(self.report_dir).is_absolute():
            raise InvalidSetting(
                f"partner {self.name}: the report folder {self.report_dir!r} must be an "
                "absolute path, the same on every worker machine (a shared folder mounted there)"
            )
        if self.env not in PARTNER_ENVIRONMENTS:
            raise InvalidSetting(
                f"partner {self.name}: environment {self.env!r}; choose one of "
                f"{', '.join(PARTNER_ENVIRONMENTS)} (the embedded sandbox cannot be shared: "
                "point --base-url at `lf-bulk sandbox serve` with --env uat instead)"
            )
        for label, url in self.urls().items():
            if url_password(url):
                raise InvalidSetting(
                    f"partner {self.name}: the {label} {without_userinfo(url)} carries a "
                    "password, which would be stored for everyone who reads the store: remove it"
                )
        if self.daily_quota < 1 or not 0 <= self.quota_reserve < self.daily_quota:
            raise InvalidSetting(
                f"partner {self.name}: the quota must be at least 1 and the reserve between 0 "
                f"and the quota (got quota {self.daily_quota}, reserve {self.quota_reserve})"
            )

    def urls(self) -> dict[str, str]:
        named = {"base URL": self.base_url, "Vshop URL": self.vshop_url}
        named["Payment URL"] = self.payment_url
        return {label: url for label, url in named.items() if url}

    def as_row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in COLUMNS}

    def settings(self, base: Settings, partner_code: str) -> Settings:
        """`base` (the worker's own settings: home, rate, ...) for this partner, checked."""
        settings = replace(
            base, env=self.env, base_url=self.base_url, vshop_url=self.vshop_url,
            payment_url=self.payment_url, daily_quota=self.daily_quota,
            quota_reserve=self.quota_reserve, partner_code=partner_code,
            origins={**base.origins, **dict.fromkeys(SETTING_COLUMNS, f"partner {self.name}")},
        )  # fmt: skip
        settings.validate()
        return settings


def code_variable(name: str) -> str:
    return CODE_VARIABLE_PREFIX + check_partner_name(name).upper().replace("-", "_")


def partner_code(name: str, home: Path, environ: Mapping[str, str] | None = None) -> str:
    """This machine's code for partner `name`: its environment variable, else the credentials
    file in `home`; a `ConfigError` saying where to put it when neither has it."""
    variable = code_variable(name)
    code = (os.environ if environ is None else environ).get(variable, "").strip()
    if code:
        return code
    path = home / CREDENTIALS_FILE
    codes = _read_credentials(path)
    value = codes.get(name)
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ConfigError(
        f"partner {name}: this machine has no partner code for it: set {variable}, or put "
        f'`{name} = "..."` under [partner_codes] in {path} (mode 0600)'
    )


def _read_credentials(path: Path) -> Mapping[str, Any]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            raise ConfigError(f"{path} is not a regular file of yours, so it is not used")
        if info.st_mode & 0o077:
            raise ConfigError(
                f"{path} may be read by others (mode {info.st_mode & 0o777:o}), so it is not "
                f"used: run `chmod 600 {path}`"
            )
        try:
            data = tomllib.load(handle)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not a TOML file ({exc})") from None
    codes = data.get("partner_codes", {})
    if not isinstance(codes, dict):
        raise ConfigError(f'{path}: [partner_codes] must be a table of NAME = "code"')
    return codes


# ---------------------------------------------------------------- the table (psycopg connection)


def ensure_table(db: Any) -> None:
    db.execute(SCHEMA)
    present = {
        row[0]
        for row in db.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = 'partners'"
        )
    }
    for column, statement in ADDED_COLUMNS.items():
        if column not in present:
            db.execute(statement)


def save(db: Any, partner: Partner) -> bool:
    """Add or update `partner`; True when it was new."""
    ensure_table(db)
    row = partner.as_row()
    names = ", ".join(COLUMNS)
    values = ", ".join(f"%({name})s" for name in COLUMNS)
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in COLUMNS[1:])
    found = db.execute(
        f"INSERT INTO partners ({names}) VALUES ({values}) ON CONFLICT (name) DO UPDATE SET "
        f"{updates}, updated_at = now() RETURNING (xmax = 0) AS inserted",
        row,
    ).fetchone()
    return bool(found[0])


def listing(db: Any) -> list[Partner]:
    ensure_table(db)
    rows = db.execute(f"SELECT {', '.join(COLUMNS)} FROM partners ORDER BY name").fetchall()
    return [Partner(*row) for row in rows]


def get(db: Any, name: str) -> Partner:
    ensure_table(db)
    row = db.execute(
        f"SELECT {', '.join(COLUMNS)} FROM partners WHERE name = %s", (check_partner_name(name),)
    ).fetchone()
    if row is None:
        raise InvalidSetting(
            f"no partner named {name!r} in the store: add it with `lf-bulk partners add {name} "
            "--env ...` (`lf-bulk partners list` shows them)"
        )
    return Partner(*row)


def remove(db: Any, name: str) -> bool:
    ensure_table(db)
    deleted = db.execute("DELETE FROM partners WHERE name = %s", (check_partner_name(name),))
    return bool(deleted.rowcount)
