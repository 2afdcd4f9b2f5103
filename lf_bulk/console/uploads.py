"""Files uploaded to the console: stored safely, inspected, validated by the library's readers.

    save_upload        store an upload under `<uploads>/<random id>/` (never under its own name)
    load_upload        an upload by its id (the id checked, the stored file checked)
    remember           keep the choices made for an upload (action, group, sheet, column)
    remove_old_uploads uploads older than `UPLOAD_MAX_AGE` removed
    inspect_upload     its sheets, headers and the column that looks like ICCIDs
    validate_iccids    its rows checked as `sims add` checks them (`sources.read_iccids`)
    validate_orders    its rows checked as `orders create` checks them (`topups.read_orders`)

The user's file name is metadata only: the stored file is `upload.csv` or `upload.xlsx`, so no
name the user chose ever reaches the file system. Nothing here is Starlette: pages call these.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Final

from lf_bulk import topups
from lf_bulk.errors import InputError, UploadTooLarge
from lf_bulk.files import atomic_file, make_missing_folders
from lf_bulk.iccid import EXPLANATIONS, Reason
from lf_bulk.models import InputCounts
from lf_bulk.sources import InputTable, read_iccids, visible_sheets

UPLOAD_SUFFIXES: Final = (".csv", ".xlsx")
UPLOAD_MAX_AGE: Final = 24 * 3600.0
DEFAULT_MAX_UPLOAD_BYTES: Final = 20 * 1024 * 1024
STORED_STEM: Final = "upload"
META_NAME: Final = "upload.json"
_CHUNK: Final = 1024 * 1024
_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{20,64}")
_NAME_LIMIT: Final = 255
_SHOWN_ROWS: Final = 1000

__all__ = [
    "DEFAULT_MAX_UPLOAD_BYTES",
    "UPLOAD_MAX_AGE",
    "UPLOAD_SUFFIXES",
    "Inspection",
    "InvalidRow",
    "Upload",
    "Validation",
    "claim",
    "inspect_upload",
    "load_upload",
    "release",
    "remember",
    "remove_old_uploads",
    "save_upload",
    "validate_iccids",
    "validate_orders",
]


@dataclass(frozen=True)
class Upload:
    upload_id: str
    folder: Path
    original_name: str
    """The name the user's browser sent: shown (escaped), never used as a path."""
    suffix: str
    size: int
    created: float
    choices: Mapping[str, str] = field(default_factory=dict)
    """What the user chose for it so far: action, group_id, sheet, column."""

    @property
    def path(self) -> Path:
        return self.folder / f"{STORED_STEM}{self.suffix}"

    def choice(self, name: str) -> str | None:
        return self.choices.get(name) or None

    def shown(self, text: str) -> str:
        """`text` (a library message) with the stored path replaced by the user's file name."""
        return text.replace(str(self.path), self.original_name)


def _clean_name(name: str) -> str:
    # Some browsers send a Windows path ("C:\\fakepath\\x.csv"): keep its last part. The name
    # is never a path here, so "/" stays (as in "<script>x</script>.csv").
    base = (name or "").rsplit("\\", 1)[-1]
    printable = "".join(ch for ch in base if ch.isprintable())
    return printable[:_NAME_LIMIT] or "upload"


def _suffix_of(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        shown = suffix or "no extension"
        raise InputError(
            f"{name}: the console takes .csv or .xlsx files ({shown} given); save the list as "
            "CSV or as an Excel Workbook (.xlsx) and upload it again. Nothing was sent",
        )
    return suffix


def save_upload(
    uploads_dir: Path,
    original_name: str,
    data: IO[bytes],
    *,
    max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    now: Callable[[], float] = time.time,
) -> Upload:
    """Store `data` under a new random id; refuse another suffix or more than `max_bytes`."""
    name = _clean_name(original_name)
    suffix = _suffix_of(name)
    make_missing_folders(uploads_dir, mode=0o700)
    upload_id = secrets.token_urlsafe(18)
    folder = uploads_dir / upload_id
    os.mkdir(folder, 0o700)
    target = folder / f"{STORED_STEM}{suffix}"
    size = 0
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with os.fdopen(os.open(target, flags, 0o600), "wb") as out:
            while chunk := data.read(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise UploadTooLarge(
                        f"{name} is larger than the console takes ({max_bytes // (1024 * 1024)} "
                        "MB); split the list, or use the command line. Nothing was sent"
                    )
                out.write(chunk)
        if size == 0:
            raise InputError(f"{name} is empty; nothing was sent")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    upload = Upload(upload_id, folder, name, suffix, size, now())
    _write_meta(upload)
    return upload


def _write_meta(upload: Upload) -> None:
    document = {
        "original_name": upload.original_name,
        "suffix": upload.suffix,
        "size": upload.size,
        "created": upload.created,
        "choices": dict(upload.choices),
    }
    with atomic_file(upload.folder / META_NAME) as out:
        json.dump(document, out)


def load_upload(uploads_dir: Path, upload_id: str) -> Upload:
    """The upload `upload_id`; InputError when the id is malformed or nothing is stored there."""
    gone = InputError(
        f"upload {upload_id[:64]!r} is not there (uploads are kept 24 hours); upload the file again"
    )
    if not _ID_PATTERN.fullmatch(upload_id):
        raise gone
    folder = uploads_dir / upload_id
    try:
        with open(folder / META_NAME, encoding="utf-8") as meta:
            document = json.load(meta)
        suffix = str(document["suffix"])
        if suffix not in UPLOAD_SUFFIXES:
            raise ValueError(suffix)
        choices = {str(k): str(v) for k, v in dict(document.get("choices") or {}).items()}
        upload = Upload(
            upload_id, folder, _clean_name(str(document["original_name"])), suffix,
            int(document["size"]), float(document["created"]), choices,
        )  # fmt: skip
        mode = os.lstat(upload.path).st_mode
    except (OSError, ValueError, KeyError, TypeError):
        raise gone from None
    if not stat.S_ISREG(mode):
        raise gone
    return upload


def remember(upload: Upload, **choices: str | None) -> Upload:
    """`upload` with `choices` added (None or '' removes a choice), written to its metadata."""
    merged = {**upload.choices, **{k: v for k, v in choices.items() if v}}
    for name, value in choices.items():
        if not value:
            merged.pop(name, None)
    updated = replace(upload, choices=merged)
    _write_meta(updated)
    return updated


def remove_old_uploads(
    uploads_dir: Path, *, max_age: float = UPLOAD_MAX_AGE, now: Callable[[], float] = time.time
) -> int:
    """Remove the uploads older than `max_age` seconds; return how many went."""
    if not uploads_dir.is_dir():
        return 0
    removed, limit = 0, now() - max_age
    for entry in os.scandir(uploads_dir):
        if not _ID_PATTERN.fullmatch(entry.name) or not entry.is_dir(follow_symlinks=False):
            continue
        if entry.stat(follow_symlinks=False).st_mtime < limit:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed += 1
    return removed


CONFIRMED_NAME: Final = "confirmed"
RUN_CHOICE: Final = "run_id"


def claim(upload: Upload) -> bool:
    """Mark `upload` as confirmed, once: False when it was already (a second click, another
    tab). A job is launched once per upload: two top-up runs of one file would make two orders
    of every row that has no order_no."""
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        os.close(os.open(upload.folder / CONFIRMED_NAME, flags, 0o600))
    except FileExistsError:
        return False
    return True


def release(upload: Upload) -> None:
    """Undo `claim` when the job was refused before its run existed (it may be confirmed again)."""
    (upload.folder / CONFIRMED_NAME).unlink(missing_ok=True)


# ---------------------------------------------------------------- inspecting


@dataclass(frozen=True)
class Inspection:
    sheets: tuple[str, ...]
    """The workbook's visible sheets; () for a CSV file."""
    sheet: str | None
    """The sheet read; None while the user has a sheet to choose."""
    headers: tuple[str, ...]
    column: str
    """The header found for the ICCIDs; '' when none was recognised."""

    @property
    def needs_choice(self) -> bool:
        """Whether the user must pick: several sheets, or a header row with no ICCID column."""
        return (len(self.sheets) > 1 and self.sheet is None) or (
            bool(self.headers) and not self.column
        )


def inspect_upload(upload: Upload, *, sheet: str | None = None) -> Inspection:
    """The sheets and columns of `upload` (InputError with the user's file name if unreadable)."""
    try:
        sheets = visible_sheets(upload.path)
        if sheets and sheet is None and len(sheets) > 1:
            return Inspection(sheets, None, (), "")  # which sheet first: the user chooses
        table = read_iccids(upload.path, sheet=sheet, require_column=False)
    except InputError as error:
        raise InputError(upload.shown(str(error))) from None
    return Inspection(sheets, table.sheet, table.headers, table.column)


# ---------------------------------------------------------------- validating


@dataclass(frozen=True)
class InvalidRow:
    row: int
    value: str
    """The cell as it was typed (data: rendered escaped)."""
    reason_code: str
    explanation: str


@dataclass(frozen=True)
class Validation:
    source: str
    """The user's file name."""
    sheet: str | None
    column: str
    counts: InputCounts
    rows: Sequence[InvalidRow]
    """The rejected rows (invalid and duplicate), at most `_SHOWN_ROWS` of them."""
    numeric_cells: int = 0

    @property
    def ok(self) -> bool:
        return not (self.counts.invalid or self.counts.duplicates)

    @property
    def numeric_hint(self) -> str:
        """The advice for ICCIDs Excel stored as numbers; '' when there are none."""
        return EXPLANATIONS[Reason.NUMERIC_CELL] if self.numeric_cells else ""

    @property
    def more_rows(self) -> int:
        return self.counts.invalid + self.counts.duplicates - len(self.rows)


def validate_iccids(
    upload: Upload,
    *,
    sheet: str | None = None,
    column: str | None = None,
    extra_columns: Mapping[str, Sequence[str]] | None = None,
) -> tuple[InputTable, Validation]:
    """Read `upload` as the CLI reads FILE, and its rejected rows as data."""
    try:
        table = read_iccids(
            upload.path, sheet=sheet, column=column, extra_columns=extra_columns or {}
        )
    except InputError as error:
        raise InputError(upload.shown(str(error))) from None
    table = replace(table, source=upload.original_name)  # what the run and its reports name
    rejected = [row for row in table.rows if row.reason is not None]
    shown = [
        InvalidRow(row.row, row.raw, str(row.reason), EXPLANATIONS[row.reason])
        for row in rejected[:_SHOWN_ROWS]
        if row.reason is not None
    ]
    numeric = table.reason_counts[Reason.NUMERIC_CELL]
    return table, Validation(
        upload.original_name, table.sheet, table.column, table.counts, shown, numeric
    )


def validate_orders(
    upload: Upload, *, sheet: str | None = None
) -> tuple[topups.OrderInput, Validation]:
    """Read `upload` as `orders create` reads FILE, and its rejected rows as data."""
    try:
        order_input = topups.read_orders(upload.path, sheet=sheet)
    except InputError as error:
        raise InputError(upload.shown(str(error))) from None
    order_input = replace(order_input, source=upload.original_name)
    bad = [r for r in order_input.rows if r.top_up is None]
    shown = [InvalidRow(r.row, r.value, r.reason_code, r.reason) for r in bad[:_SHOWN_ROWS]]
    numeric = sum(1 for r in bad if r.reason_code == Reason.NUMERIC_CELL)
    return order_input, Validation(
        upload.original_name, sheet, "iccid", order_input.counts, shown, numeric
    )
