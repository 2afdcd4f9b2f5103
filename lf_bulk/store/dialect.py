"""SQLite's SQL on PostgreSQL: the one place the journal's (and the ledger's) SQL is translated.

The modules keep the SQL they have (written for SQLite); a PostgreSQL store hands them a
`PgConnection`, which looks like the part of `sqlite3.Connection` they use (`execute`,
`executemany`, `cursor`, `row_factory`, `in_transaction`, rows by index and by name) and
translates each statement once:

- `?` placeholders → `%s` (and a literal `%` → `%%`), outside string literals;
- `BEGIN IMMEDIATE` (SQLite: take the write lock up front) → `BEGIN` plus a transaction-scoped
  advisory lock of the connection's kind, so writers of one kind still go one at a time and a
  read-then-write transaction (the quota ledger's `take`) stays exact across processes;
- types: `REAL` → `DOUBLE PRECISION` (PostgreSQL's REAL has 4 bytes: an epoch time would be off
  by up to a minute), `BLOB` → `BYTEA`;
- functions: `IFNULL` → `COALESCE`, the two-argument (scalar) `MAX`/`MIN` → `GREATEST`/`LEAST`;
- `INSERT OR IGNORE` → `INSERT ... ON CONFLICT DO NOTHING`;
- a subquery in FROM without a name gets one (PostgreSQL 15 requires it);
- a connection may rename tables (the answer cache's `answers` and `meta` live in the shared
  database beside the journal's `answers`).
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from enum import Enum
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from lf_bulk.errors import StoreUnavailable

if TYPE_CHECKING:
    import psycopg

_WORD_RULES = (
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
    (re.compile(r"\bIFNULL\s*\(", re.IGNORECASE), "COALESCE("),
    # A JSON list of ids passed as one parameter (the journal's `item_id IN (...)`).
    (
        re.compile(r"\bSELECT\s+value\s+FROM\s+json_each\(\s*%s\s*\)", re.IGNORECASE),
        "SELECT value::bigint FROM json_array_elements_text(%s::json)",
    ),
)
_INSERT_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\b", re.IGNORECASE)
_SCALAR_CANDIDATES = re.compile(r"\b(MAX|MIN)\s*\(", re.IGNORECASE)
_FROM_SUBQUERY = re.compile(r"\bFROM\s*\(\s*SELECT\b", re.IGNORECASE)
_NOT_AN_ALIAS = re.compile(
    r"\s*($|\)|;|WHERE\b|ORDER\b|GROUP\b|LIMIT\b|JOIN\b|UNION\b|HAVING\b)", re.IGNORECASE
)
_BEGIN_IMMEDIATE = re.compile(r"^\s*BEGIN\s+IMMEDIATE\s*;?\s*$", re.IGNORECASE)


def _split_literals(sql: str) -> list[tuple[bool, str]]:
    """The statement in pieces, each marked whether it is inside a '...' or "..." literal."""
    pieces: list[tuple[bool, str]] = []
    for part in re.split(r"('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\")", sql):
        if part:
            pieces.append((part[0] in "'\"", part))
    return pieces


def _closing(sql: str, opening: int) -> int:
    """The index of the parenthesis closing the one at `opening` (literals are already out)."""
    depth = 0
    for index in range(opening, len(sql)):
        if sql[index] == "(":
            depth += 1
        elif sql[index] == ")":
            depth -= 1
            if depth == 0:
                return index
    return -1


def _has_top_level_comma(text: str) -> bool:
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            return True
    return False


def _scalar_extremes(code: str) -> str:
    out, start = [], 0
    for match in _SCALAR_CANDIDATES.finditer(code):
        opening = match.end() - 1
        end = _closing(code, opening)
        if end > 0 and _has_top_level_comma(code[opening + 1 : end]):
            name = "GREATEST" if match.group(1).upper() == "MAX" else "LEAST"
            out.append(code[start : match.start()] + name)
            start = opening
    out.append(code[start:])
    return "".join(out)


def _name_subqueries(code: str) -> str:
    inserts: list[int] = []
    for match in _FROM_SUBQUERY.finditer(code):
        opening = code.index("(", match.start())
        end = _closing(code, opening)
        if end > 0 and _NOT_AN_ALIAS.match(code, end + 1):
            inserts.append(end + 1)
    for number, at in enumerate(reversed(inserts)):
        code = f"{code[:at]} AS subquery_{number}{code[at:]}"
    return code


@lru_cache(maxsize=1024)
def translate(
    sql: str, *, with_parameters: bool = True, renames: tuple[tuple[str, str], ...] = ()
) -> str:
    """`sql` (SQLite) as PostgreSQL runs it. `with_parameters`: placeholders are filled by the
    driver (then `?` becomes `%s` and a literal `%` is doubled). `renames`: (table, name in
    the store) pairs, for a file's table whose name another kind uses in the shared database."""
    pieces = []
    for literal, text in _split_literals(sql):
        if literal:
            pieces.append(text.replace("%", "%%") if with_parameters else text)
            continue
        if with_parameters:
            text = text.replace("%", "%%").replace("?", "%s")
        for pattern, replacement in _WORD_RULES:
            text = pattern.sub(replacement, text)
        for table, name in renames:
            text = re.sub(rf"\b{re.escape(table)}\b", name, text)
        pieces.append(text)
    code = "".join(pieces)
    # Rules that need the parentheses: literals hold none in our SQL that matter here, and a
    # placeholder never sits between a function name and its parenthesis.
    code = _scalar_extremes(code)
    code = _name_subqueries(code)
    if _INSERT_OR_IGNORE.match(code):
        code = _INSERT_OR_IGNORE.sub("INSERT INTO", code).rstrip().rstrip(";")
        code += " ON CONFLICT DO NOTHING"
    return code


class Row(tuple[Any, ...]):
    """A row by index and by column name, and `dict(row)`: what `sqlite3.Row` gives."""

    _names: tuple[str, ...] = ()

    def keys(self) -> list[str]:
        return list(self._names)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names.index(key))
        return tuple.__getitem__(self, key)


def _row_class(names: tuple[str, ...]) -> type[Row]:
    return type("Row", (Row,), {"_names": names, "__slots__": ()})


def _plain(value: Any) -> Any:
    # StrEnum members are strs already; other enums (IntEnum exit codes) go as their values.
    if isinstance(value, Enum) and not isinstance(value, str | int):
        return value.value
    return value


def _parameters(params: Sequence[Any] | None) -> tuple[Any, ...] | None:
    if params is None:
        return None
    return tuple(_plain(p) for p in params)


class PgCursor:
    """The part of `sqlite3.Cursor` the journal uses, over a psycopg cursor."""

    def __init__(self, connection: PgConnection) -> None:
        self._connection = connection
        self._cursor = connection.raw.cursor()
        self.row_factory: Any = connection.row_factory
        self._row_class: type[Row] | None = None

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> PgCursor:
        self._connection.run(self._cursor, sql, params)
        self._row_class = None
        return self

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> PgCursor:
        self._connection.run_many(self._cursor, sql, rows)
        return self

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)

    def _shape(self, raw: tuple[Any, ...]) -> Any:
        if self.row_factory is None:
            return raw
        if self._row_class is None:
            description = self._cursor.description or ()
            self._row_class = _row_class(tuple(d.name for d in description))
        return self._row_class(raw)

    def fetchone(self) -> Any:
        raw = self._cursor.fetchone()
        return None if raw is None else self._shape(raw)

    def fetchall(self) -> list[Any]:
        return [self._shape(raw) for raw in self._cursor.fetchall()]

    def __iter__(self) -> Iterator[Any]:
        while True:
            chunk = self._cursor.fetchmany(1000)
            if not chunk:
                return
            for raw in chunk:
                yield self._shape(raw)

    def close(self) -> None:
        self._cursor.close()


class PgConnection:
    """A psycopg connection that runs SQLite-dialect statements (see the module docstring).

    `kind` names what it holds ("journal", "quota ledger"): `BEGIN IMMEDIATE` takes that kind's
    write lock. Autocommit outside explicit transactions, as lf-bulk's SQLite connections are
    (`isolation_level=None`).
    """

    def __init__(
        self,
        raw: psycopg.Connection[Any],
        write_lock_key: int,
        *,
        on_close: Callable[[], None] | None = None,
        renames: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.raw = raw
        self.write_lock_key = write_lock_key
        self._on_close = on_close
        self.renames = renames
        self.row_factory: Any = None
        # psycopg serialises calls on one connection; the journal's transactions must not
        # interleave between threads either (a sqlite3 connection is one thread's).
        self._lock = threading.RLock()

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return bool(self.raw.info.transaction_status != TransactionStatus.IDLE)

    def run(self, cursor: Any, sql: str, params: Sequence[Any] | None) -> None:
        with self._lock, self._unavailable_as_error():
            if _BEGIN_IMMEDIATE.match(sql):
                # One round trip (the key is our own integer, not input).
                key = int(self.write_lock_key)
                cursor.execute(f"BEGIN; SELECT pg_advisory_xact_lock({key})")
                return
            code = translate(sql, with_parameters=params is not None, renames=self.renames)
            cursor.execute(code, _parameters(params))

    def run_many(self, cursor: Any, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._lock, self._unavailable_as_error():
            code = translate(sql, renames=self.renames)
            cursor.executemany(code, [_parameters(r) for r in rows])

    @contextmanager
    def _unavailable_as_error(self) -> Iterator[None]:
        import psycopg

        try:
            yield
        except psycopg.OperationalError as exc:
            if not (self.raw.closed or self.raw.broken):
                raise
            raise StoreUnavailable(
                f"the connection to the store was lost ({str(exc).strip() or 'closed'}); "
                "what was committed before is kept: `lf-bulk runs resume` continues"
            ) from None

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> PgCursor:
        return self.cursor().execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> PgCursor:
        return self.cursor().executemany(sql, rows)

    def cursor(self) -> PgCursor:
        return PgCursor(self)

    def close(self) -> None:
        self.raw.close()
        if self._on_close is not None:
            self._on_close()


def uses_rows_by_name(factory: Any) -> bool:
    return factory is sqlite3.Row


__all__ = ("PgConnection", "PgCursor", "Row", "translate")
