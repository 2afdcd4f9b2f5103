"""Reading a workbook in bounded memory whatever its sheet's `dimension` claims."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from openpyxl import Workbook

from lf_bulk.iccid import with_check_digit

_READ_UNDER_A_LIMIT = """
import json, resource, sys
limit = int(sys.argv[2]) * 1024 * 1024
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from lf_bulk.sources import read_iccids
table = read_iccids(sys.argv[1])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(json.dumps({"rows": len(table.rows), "valid": table.counts.valid, "peak_mb": peak}))
"""


def _claiming_the_whole_sheet(tmp_path: Path, rows: int) -> Path:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("SIMs")
    sheet.append(["ICCID", "site"])
    for n in range(rows):
        sheet.append([with_check_digit(f"8985242{n:012d}"), f"depot {n % 7}"])
    plain = tmp_path / "plain.xlsx"
    book.save(plain)
    hostile = tmp_path / "hostile.xlsx"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(hostile, "w") as out:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename.startswith("xl/worksheets/sheet"):
                claim = b'<dimension ref="A1:XFD1048576"/><sheetViews>'
                data = data.replace(b"<sheetViews>", claim, 1)
                assert claim in data
            out.writestr(info, data)
    return hostile


def test_a_sheet_claiming_the_largest_dimension_is_read_in_bounded_memory(
    tmp_path: Path,
) -> None:
    # 17 billion cells claimed: any reader that sized its grid by the claim would need terabytes,
    # far beyond the address-space limit the child runs under.
    path = _claiming_the_whole_sheet(tmp_path, rows=3_000)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _READ_UNDER_A_LIMIT, str(path), "2048"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert (result["rows"], result["valid"]) == (3_000, 3_000)
    assert result["peak_mb"] < 400
