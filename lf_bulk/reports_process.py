"""The Items workbook of a large run, written by a process of its own (`StreamedRunReport`).

Rendering a million rows of XML holds the GIL for seconds: in a thread it slows every journal
write and every answer of the run it reports on. This process reads, from its standard input,
pickled messages that the parent (`lf_bulk.reports`) writes and no one else can reach:

    ("rows", [(row, iccid, outcome, reason_code, reason, request_id), ...])   any number
    ("summary", Summary)                                                      last

and writes `report.xlsx` atomically once the summary has come. An input that ends before the
summary (the run was abandoned, or the parent died) leaves the folder as it was. A failure is
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


def write_items_workbook(target: Path, source: BinaryIO) -> None:
    from lf_bulk.reports import ITEMS_SHEET_COLUMNS
    from lf_bulk.xlsx import Sheet, Summary, write_workbook

    summary: list[Summary] = []

    def rows() -> Iterator[tuple[object, ...]]:
        while True:
            try:
                kind, payload = pickle.load(source)
            except EOFError:
                raise _Ended from None
            if kind == SUMMARY:
                summary.append(payload)
                return
            yield from payload

    write_workbook(target, [Sheet("Items", ITEMS_SHEET_COLUMNS, rows())], lambda: summary[0])


def main(argv: list[str]) -> int:
    try:
        write_items_workbook(Path(argv[0]), sys.stdin.buffer)
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
