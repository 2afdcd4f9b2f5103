"""The items.csv and report.xlsx of a large run, written by a process of its own
(`StreamedRunReport`).

Rendering a million rows of CSV and XML holds the GIL for seconds: in the run's process it slows
every journal write and every answer of the run it reports on. This process reads, from its standard input,
pickled messages that the parent (`lf_bulk.reports`) writes and no one else can reach:

    ("rows", [(row, iccid, outcome, reason_code, reason, request_id), ...])   any number
    ("summary", Summary)                                                      last

and puts `items.csv` (every row) and `report.xlsx` (the rows that fit a sheet) in place, each
atomically, once the summary has come; the parent writes summary.json after. An input that ends
before the summary (the run was abandoned, or the parent died) leaves the folder as it was. A failure is
reported as one JSON line on standard output ({"error", "errno", "message"}) and exit status 1.
"""

from __future__ import annotations

import json
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

ROWS = "rows"
SUMMARY = "summary"


class _Ended(Exception):
    """The input ended before the summary: nothing is to be put in place."""


def write_items_files(folder: Path, source: BinaryIO) -> None:
    import csv

    from lf_bulk.reports import (
        ITEM_FIELDS,
        ITEMS_CSV,
        ITEMS_SHEET_COLUMNS,
        REPORT_XLSX,
        write_csv_rows,
    )
    from lf_bulk.xlsx import MAX_ROWS, Sheet, Summary, atomic_file, write_workbook

    _deflate_quickly()
    summary: list[Summary] = []
    with atomic_file(folder / ITEMS_CSV, newline="") as out:
        items_csv = csv.writer(out)
        items_csv.writerow(ITEM_FIELDS)

        def rows() -> Iterator[tuple[object, ...]]:
            room = MAX_ROWS - 1
            while True:
                try:
                    kind, payload = pickle.load(source)
                except EOFError:
                    raise _Ended from None
                if kind == SUMMARY:
                    summary.append(payload)
                    return
                write_csv_rows(items_csv, payload)
                if room > 0:
                    yield from payload[:room]
                    room -= len(payload)

        sheet = Sheet("Items", ITEMS_SHEET_COLUMNS, rows())
        write_workbook(folder / REPORT_XLSX, [sheet], lambda: summary[0])


def _deflate_quickly() -> None:
    """Zip the workbook at deflate level 1, not 6: it is zipped after the run's last answer, and
    a million rows take 3 s at level 6, under 1 s at level 1, for a file 12% larger. Only this
    process (which writes nothing else) is affected; without XlsxWriter's name for it the
    default stays."""
    import functools
    import importlib
    import zipfile

    workbook = importlib.import_module("xlsxwriter.workbook")
    if getattr(workbook, "ZipFile", None) is zipfile.ZipFile:
        setattr(workbook, "ZipFile", functools.partial(zipfile.ZipFile, compresslevel=1))  # noqa: B010


def main(argv: list[str]) -> int:
    try:
        write_items_files(Path(argv[0]), sys.stdin.buffer)
    except _Ended:
        return 0
    except (OSError, ValueError, TypeError) as error:
        number = getattr(error, "errno", None)
        message = getattr(error, "strerror", None) or str(error)
        failure = {"error": type(error).__name__, "errno": number, "message": message}
        sys.stdout.write(json.dumps(failure) + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
