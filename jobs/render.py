"""Rendering rows for people (table) and programs (csv, json), to stdout or a file."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import click

from lf_bulk.files import atomic_file, make_folders, neutralise
from lf_bulk.wire import clean_text

Row = Mapping[str, object]


def render(rows: Sequence[Row], columns: Sequence[str], output_format: str) -> str:
    if output_format == "json":
        return json.dumps([{c: row.get(c) for c in columns} for row in rows], indent=2) + "\n"
    if output_format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([neutralise(str(row.get(c, ""))) for c in columns] for row in rows)
        return buffer.getvalue()
    return table(rows, columns)


def table(rows: Sequence[Row], columns: Sequence[str]) -> str:
    # A table is for a terminal: text from the API or the journal never acts on it.
    cells = [[clean_text(row.get(c, "")) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines) + "\n"


def emit(text: str, output: Path | None) -> None:
    """Data to stdout, or to a file whose path is then printed on stdout."""
    if output is None:
        click.echo(text, nl=False)
        return
    make_folders(output.parent)
    with atomic_file(output) as out:
        out.write(text)
    click.echo(str(output))
