"""Look-up answers as JSON, and the cache of answers under `<home>` that new runs reuse.

An answer is what the API said about one SIM for one call: a value (`{"value": ...}`) or a
per-SIM error code (`{"error": "CARD_NOT_FOUND", "message": ...}`). The journal stores the text;
`decode` gives the models back (money stays Decimal, dates stay the API's text).

The cache (`answers.db`, a private SQLite file like the journal) keys each answer by who asked
(a salted hash of the endpoint and the partner code: the credential is never stored), the call,
and the SIM (plus the area, for plans). Entries older than `KEEP_SECONDS` are dropped on open.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
import sqlite3
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final

from lf_bulk import sqlite
from lf_bulk.api_values import (
    CardInfo,
    HeldPlan,
    PlanOffer,
    Renewal,
)
from lf_bulk.errors import BusinessError

CACHE_NAME: Final = "answers.db"
KEEP_SECONDS: Final = 7 * 24 * 3600.0
APPLICATION_ID: Final = 0x4C46414E  # "LFAN": an lf-bulk answer cache

Value = CardInfo | Renewal | list[HeldPlan] | list[PlanOffer] | None


@dataclasses.dataclass(frozen=True)
class Answer:
    """One answer: `value`, or the per-SIM error `code` (with the server's `message`)."""

    value: Any = None
    code: str = ""
    message: str = ""

    @property
    def ok(self) -> bool:
        return not self.code


def of_error(error: BusinessError) -> Answer:
    return Answer(code=error.code, message=error.api_message)


def encode(answer: Answer) -> str:
    if not answer.ok:
        return json.dumps({"error": answer.code, "message": answer.message}, ensure_ascii=False)
    return json.dumps({"value": _plain(answer.value)}, ensure_ascii=False, sort_keys=True)


def decode(call: str, text: str) -> Answer:
    """The answer stored for `call` (a `lookups.Call` value); ValueError when it is not one."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("not an answer object")
    if "error" in data:
        return Answer(code=str(data["error"]), message=str(data.get("message", "")))
    return Answer(value=_model(call, data.get("value")))


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    return value


def _model(call: str, value: Any) -> Any:
    if call == "verify":
        return CardInfo(**value)
    if call == "held_orders":
        return [HeldPlan(**v) for v in value]
    if call == "renewal":
        return None if value is None else Renewal(**value)
    if call == "plans":
        return [PlanOffer(**{**v, "price": _decimal(v.get("price"))}) for v in value]
    return value


def _decimal(text: Any) -> Decimal | None:
    if text is None:
        return None
    try:
        return Decimal(str(text))
    except InvalidOperation:
        raise ValueError(f"not an exact amount: {text!r}") from None


def _create_schema(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute(
        "CREATE TABLE IF NOT EXISTS answers (asker TEXT NOT NULL, call TEXT NOT NULL,"
        " subject TEXT NOT NULL, answer TEXT NOT NULL, fetched_at REAL NOT NULL,"
        " PRIMARY KEY (asker, call, subject))"
    )


CACHE_FILE: Final = sqlite.FileKind(
    name="answer cache",
    application_id=APPLICATION_ID,
    version=1,
    create=_create_schema,
    migrations=(_create_schema,),
    is_legacy=lambda db: False,
)


class AnswerCache:
    """The answers of earlier runs; used by one thread (the run's driver)."""

    def __init__(self, path: Path, *, clock: Any = time.time, db: Any = None) -> None:
        """`db`: a connection of another store speaking this module's SQL (`path` then only
        names it); by default the SQLite file at `path`."""
        self.path = path
        self._clock = clock
        self._db = sqlite.connect(path, CACHE_FILE) if db is None else db
        with sqlite.transaction(self._db) as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'salt'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('salt', ?)", (secrets.token_hex(16),))
            db.execute("DELETE FROM answers WHERE fetched_at < ?", (clock() - KEEP_SECONDS,))
        self._salt = str(
            self._db.execute("SELECT value FROM meta WHERE key = 'salt'").fetchone()[0]
        )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> AnswerCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def asker(self, endpoint: str, partner_code: str) -> str:
        """Who asks: a salted hash of the endpoint and the partner code (never the code)."""
        text = json.dumps([self._salt, endpoint, partner_code])
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, asker: str, call: str, subject: str, max_age: float) -> tuple[str, float] | None:
        """The stored answer text and when it was fetched, if younger than `max_age` seconds."""
        if max_age <= 0:
            return None
        row = self._db.execute(
            "SELECT answer, fetched_at FROM answers WHERE asker = ? AND call = ? AND subject = ?",
            (asker, call, subject),
        ).fetchone()
        if row is None or row[1] < self._clock() - max_age or row[1] > self._clock() + 60:
            return None
        return str(row[0]), float(row[1])

    def put(self, asker: str, call: str, subject: str, answer: str, fetched_at: float) -> None:
        with sqlite.transaction(self._db) as db:
            db.execute(
                "INSERT INTO answers VALUES (?, ?, ?, ?, ?) ON CONFLICT (asker, call, subject)"
                " DO UPDATE SET answer = excluded.answer, fetched_at = excluded.fetched_at"
                " WHERE excluded.fetched_at >= answers.fetched_at",
                (asker, call, subject, answer, fetched_at),
            )

    def forget(self, asker: str, call: str, subject: str) -> None:
        with sqlite.transaction(self._db) as db:
            db.execute(
                "DELETE FROM answers WHERE asker = ? AND call = ? AND subject = ?",
                (asker, call, subject),
            )
