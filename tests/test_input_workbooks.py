"""Workbooks whose used range is huge, and reader failures: bounded memory, a clear error."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
import python_calamine
from hypothesis import given, settings
from hypothesis import strategies as st

from lf_bulk import workbooks
from lf_bulk.errors import InputError
from lf_bulk.iccid import Reason
from lf_bulk.sources import read_iccids

from badinput_corpus import VALID, VALID_B, write_raw_xlsx, write_xlsx

ROOT = Path(__file__).resolve().parent.parent
HEADER = '<row r="1"><c r="A1" t="inlineStr"><is><t>ICCID</t></is></c></row>'


def data_rows(*values: str, first: int = 2) -> str:
    return "".join(
        f'<row r="{n}"><c r="A{n}" t="inlineStr"><is><t>{value}</t></is></c></row>'
        for n, value in enumerate(values, first)
    )


def blank_cell_at(reference: str) -> str:
    row = "".join(ch for ch in reference if ch.isdigit())
    return f'<row r="{row}"><c r="{reference}" t="inlineStr"><is><t></t></is></c></row>'


def read_in_child(path: Path, memory_bytes: int = 1 << 30) -> dict[str, object]:
    """read_iccids in a child process that may use at most `memory_bytes` of address space."""
    script = (
        "import json, resource, sys, time\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({memory_bytes}, {memory_bytes}))\n"
        "from lf_bulk.sources import read_iccids\n"
        "started = time.perf_counter()\n"
        "table = read_iccids(sys.argv[1])\n"
        "print(json.dumps({'rows': {r.row: r.reason for r in table.rows},\n"
        "                  'seconds': time.perf_counter() - started}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize("far", ["XFD1048576", "Z1048576"])
def test_a_blank_cell_far_away_costs_neither_memory_nor_time(far: str, tmp_path: Path) -> None:
    path = write_raw_xlsx(tmp_path / "far.xlsx", HEADER + data_rows(VALID) + blank_cell_at(far))
    assert path.stat().st_size < 2000
    result = read_in_child(path)
    assert result["rows"] == {"2": None}
    assert isinstance(result["seconds"], float) and result["seconds"] < 2


def test_a_far_cell_with_text_is_read_sparsely_with_every_row(tmp_path: Path) -> None:
    far = '<row r="5000"><c r="XFD5000" t="inlineStr"><is><t>note</t></is></c></row>'
    path = write_raw_xlsx(tmp_path / "far.xlsx", HEADER + data_rows(VALID, VALID_B) + far)
    with zipfile.ZipFile(path) as archive:
        assert not workbooks.scan_sheet(archive, "Formulas").fits_dense
    table = read_iccids(path)
    assert len(table.rows) == 4999
    assert [(row.row, row.reason) for row in table.rows[:3]] == [
        (2, None),
        (3, None),
        (4, Reason.EMPTY),
    ]


def test_ordinary_workbooks_are_read_by_calamine(tmp_path: Path) -> None:
    narrow = write_xlsx(tmp_path / "narrow.xlsx", {"Data": [["ICCID", "note"], [VALID, "x"]]})
    header = ["ICCID", *(f"c{n}" for n in range(9))]
    wide = write_xlsx(tmp_path / "wide.xlsx", {"Data": [header, [VALID, *range(9)]]})
    with zipfile.ZipFile(narrow) as archive:
        assert workbooks.scan_sheet(archive, "Data").fits_dense
    with zipfile.ZipFile(wide) as archive:
        scan = workbooks.scan_sheet(archive, "Data")
    assert (scan.fits_dense, scan.dense_cells, scan.regular) == (True, 20, True)


def test_cells_without_references_are_read_sparsely(tmp_path: Path) -> None:
    xml = (
        '<row><c t="inlineStr"><is><t>ICCID</t></is></c><c t="inlineStr"><is><t>n</t></is></c>'
        f'</row><row><c t="inlineStr"><is><t>{VALID}</t></is></c><c><v>7</v></c></row>'
    )
    path = write_raw_xlsx(tmp_path / "norefs.xlsx", xml)
    with zipfile.ZipFile(path) as archive:
        assert not workbooks.scan_sheet(archive, "Formulas").regular
    table = read_iccids(path, extra_columns={"n": []})
    assert [(row.row, row.iccid, row.reason, row.extra["n"]) for row in table.rows] == [
        (2, VALID, None, "7")
    ]


def test_a_reader_panic_becomes_an_input_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    panic = type("PanicException", (BaseException,), {"__module__": "pyo3_runtime"})

    class Exploding:
        @classmethod
        def from_filelike(cls, _file: object) -> object:
            raise panic("called `Option::unwrap()` on a `None` value")

    monkeypatch.setattr(python_calamine, "CalamineWorkbook", Exploding)
    path = write_xlsx(tmp_path / "list.xlsx", {"Data": [["ICCID"], [VALID]]})
    with pytest.raises(InputError, match="could not read this workbook") as raised:
        read_iccids(path)
    assert raised.value.path == str(path)


def test_keyboard_interrupt_is_not_swallowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Interrupted:
        @classmethod
        def from_filelike(cls, _file: object) -> object:
            raise KeyboardInterrupt

    monkeypatch.setattr(python_calamine, "CalamineWorkbook", Interrupted)
    path = write_xlsx(tmp_path / "list.xlsx", {"Data": [["ICCID"], [VALID]]})
    with pytest.raises(KeyboardInterrupt):
        read_iccids(path)


def test_an_unpacked_size_over_the_cap_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workbooks, "MAX_SHEET_XML_BYTES", 2000)
    path = write_raw_xlsx(tmp_path / "bomb.xlsx", HEADER + data_rows(*[VALID] * 200))
    with pytest.raises(InputError, match=r"more than .* once unpacked"):
        read_iccids(path)


@pytest.mark.parametrize(
    ("mimetype", "member", "expected"),
    [
        (b"application/vnd.oasis.opendocument.spreadsheet", "mimetype", r"\(\.ods\)"),
        (b"", "xl/workbook.bin", r"\(\.xlsb\)"),
    ],
)
def test_other_zip_spreadsheets_are_refused_by_name_and_on_stdin(
    mimetype: bytes, member: str, expected: str, tmp_path: Path
) -> None:
    path = tmp_path / "other.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, mimetype)
    with pytest.raises(InputError, match=expected):
        read_iccids(path)
    with pytest.raises(InputError, match=expected):
        read_iccids("-", stdin=io.BytesIO(path.read_bytes()))
    with pytest.raises(InputError, match=r"\(\.ods\)"):
        read_iccids(path.rename(tmp_path / "list.ods"))


# --- the two readers agree -----------------------------------------------------------------

cell_text = st.one_of(
    st.just(VALID),
    st.just(""),
    st.just(" "),
    st.text("0123456789 -", max_size=22),
    st.text(st.characters(codec="ascii", categories=["L", "N", "P"]), max_size=8),
)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(cell_text, min_size=1, max_size=3), min_size=1, max_size=12))
def test_the_sparse_reader_reads_what_calamine_reads(rows: list[list[str]]) -> None:
    rows = [["ICCID", "note"], *rows, [VALID, "last"]]
    with tempfile.TemporaryDirectory() as directory:
        path = write_xlsx(Path(directory) / "list.xlsx", {"Data": rows})
        dense = read_iccids(path, extra_columns={"note": []})
        original = workbooks.DENSE_CELL_BUDGET
        workbooks.DENSE_CELL_BUDGET = 0
        try:
            sparse = read_iccids(path, extra_columns={"note": []})
        finally:
            workbooks.DENSE_CELL_BUDGET = original
    assert [(r.row, r.raw, r.reason, dict(r.extra)) for r in sparse.rows] == [
        (r.row, r.raw, r.reason, dict(r.extra)) for r in dense.rows
    ]


def test_an_error_cell_without_a_value_never_takes_the_next_cells_value(tmp_path: Path) -> None:
    xml = (
        HEADER
        + '<row r="2"><c r="A2" t="e"/></row>'
        + '<row r="3"><c r="A3" t="e"><f>1/0</f><v>#DIV/0!</v></c></row>'
        + data_rows(VALID, first=4)
    )
    path = write_raw_xlsx(tmp_path / "errors.xlsx", xml)
    with zipfile.ZipFile(path) as archive:
        assert workbooks.scan_sheet(archive, "Formulas").errors == {(2, 0): "#DIV/0!"}
    assert [(row.row, row.raw, row.reason) for row in read_iccids(path).rows] == [
        (2, "", Reason.EMPTY),
        (3, "#DIV/0!", Reason.EXCEL_ERROR),
        (4, VALID, None),
    ]


@pytest.mark.parametrize("far", ["A99999999", "B1048577", "XFE2"])
def test_a_cell_beyond_excels_largest_sheet_is_refused(far: str, tmp_path: Path) -> None:
    row = "".join(ch for ch in far if ch.isdigit())
    cell = f'<row r="{row}"><c r="{far}" t="inlineStr"><is><t>x</t></is></c></row>'
    path = write_raw_xlsx(tmp_path / "beyond.xlsx", HEADER + data_rows(VALID) + cell)
    with pytest.raises(InputError, match="outside the largest sheet Excel allows"):
        read_iccids(path)


def test_a_sparse_sheet_with_too_many_filled_cells_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workbooks, "SPARSE_CELL_BUDGET", 5)
    far = '<row r="9000"><c r="XFD9000" t="inlineStr"><is><t>x</t></is></c></row>'
    path = write_raw_xlsx(tmp_path / "full.xlsx", HEADER + data_rows(*[VALID_B] * 6) + far)
    with pytest.raises(InputError, match="more than 5 filled cells"):
        read_iccids(path)
