"""Write the demo lists from the sandbox's deterministic seed: `python samples/make_demo_lists.py`.

- sims.xlsx: 3,000 SIMs that are in no group in a fresh sandbox (the `make demo` add list);
- remove.csv: 200 members of the demo group (a remove list).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from openpyxl import Workbook

from lf_bulk.sandbox.seed import DEMO_GROUP
from lf_bulk.sandbox.state import SandboxState

HERE = Path(__file__).parent
DEMO_ADD_COUNT = 3_000
DEMO_REMOVE_COUNT = 200


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        state = SandboxState(Path(tmp) / "sandbox.db")
        ungrouped = state.ungrouped_sims(DEMO_ADD_COUNT)
        members = state.members(DEMO_GROUP)[:DEMO_REMOVE_COUNT]
        state.close()
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "SIMs"
    sheet.append(["ICCID", "Site"])
    for n, iccid in enumerate(ungrouped):
        sheet.append([iccid, f"Depot {n % 12 + 1}"])
        sheet.cell(row=n + 2, column=1).number_format = "@"
    book.save(HERE / "sims.xlsx")
    (HERE / "remove.csv").write_text("iccid\n" + "".join(f"{i}\n" for i in members))
    print(f"{HERE / 'sims.xlsx'}: {len(ungrouped)}; {HERE / 'remove.csv'}: {len(members)}")


if __name__ == "__main__":
    main()
