"""Write the demo lists from the sandbox's deterministic seed: `python samples/make_demo_lists.py`.

Every file fits the world a fresh sandbox starts with (`lf_bulk.sandbox.seed`, default size) and the
README's "Using it" examples, which run in this folder in order (tests/test_readme.py runs them):

- sims.xlsx: 3,000 SIMs that are in no group in a fresh sandbox (the `make demo` add list);
- remove.csv: 200 members of the demo group (a remove list);
- leavers.csv: 100 SIMs of sims.xlsx (members once it is added) and one invalid row;
- more.xlsx: 500 more SIMs in no group (the `--no-wait` example);
- desired.xlsx: the membership wanted for the empty group (a `group_id` column): drift at first;
- orders.xlsx: order keys for `orders export`, one of each kind and one that finds nothing.

The output is byte-for-byte the same on every run (fixed zip times), so regenerating is quiet.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from openpyxl import Workbook

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from make_samples import make_zip_deterministic  # noqa: E402

from lf_bulk.sandbox.seed import (  # noqa: E402
    DEMO_GROUP,
    EMPTY_GROUP,
    PARTNER,
    STAFF_GROUP,
    World,
    build_world,
)

DEMO_ADD_COUNT = 3_000
DEMO_REMOVE_COUNT = 200
LEAVERS_COUNT = 100
MORE_COUNT = 500
DESIRED_COUNT = 10
LEAVERS_INVALID_ROW = "8944 5000 1234"  # too short: reported as bad_length, skipped
UNKNOWN_PURCHASE_ORDER = "PO799999999"  # no such order: listed on the Not found sheet


def main() -> None:
    for path in write_all(HERE, build_world()):
        print(path)


def write_all(folder: Path, world: World) -> list[Path]:
    """Write every demo list into `folder`; the paths written."""
    ungrouped = sorted(
        iccid for iccid, partner, group in world.sims if group is None and partner == PARTNER
    )
    demo_members = sorted(iccid for iccid, _, group in world.sims if group == DEMO_GROUP)
    added = ungrouped[:DEMO_ADD_COUNT]
    more = ungrouped[DEMO_ADD_COUNT : DEMO_ADD_COUNT + MORE_COUNT]
    ordered_sims = {seeded.order["sim_id"] for seeded in world.orders}
    spare = [i for i in ungrouped[DEMO_ADD_COUNT + MORE_COUNT :] if i in ordered_sims]
    paths = [
        _xlsx(
            folder / "sims.xlsx",
            "SIMs",
            ("ICCID", "Site"),
            [(iccid, f"Depot {n % 12 + 1}") for n, iccid in enumerate(added)],
        ),
        _csv(folder / "remove.csv", ["iccid", *demo_members[:DEMO_REMOVE_COUNT]]),
        _csv(
            folder / "leavers.csv",
            ["iccid", *added[:LEAVERS_COUNT], LEAVERS_INVALID_ROW],
        ),
        _xlsx(folder / "more.xlsx", "SIMs", ("ICCID",), [(iccid,) for iccid in more]),
        _xlsx(
            folder / "desired.xlsx",
            "Desired",
            ("group_id", "iccid"),
            [(EMPTY_GROUP, iccid) for iccid in spare[:DESIRED_COUNT]],
        ),
        _xlsx(folder / "orders.xlsx", "Keys", ORDER_KEY_HEADER, order_keys(world)),
    ]
    return paths


ORDER_KEY_HEADER = ("purchase_order_id", "order_id", "iccid")


def order_keys(world: World) -> list[tuple[str, str, str]]:
    """One key of each kind the API looks up, then both ids (the purchase order wins), then a miss."""
    ours = [seeded.order for seeded in world.orders if seeded.partner_code == PARTNER]
    retried = ours[0]  # the seed's first orders share a purchase order id (a retried checkout)
    plain = ours[-1]
    staff = next(order for order in ours if order["sim_id"] in _members(world, STAFF_GROUP))
    return [
        (retried["purchase_order_id"], "", ""),
        ("", plain["order_id"], ""),
        ("", "", staff["sim_id"]),
        (ours[-2]["purchase_order_id"], ours[-3]["order_id"], ""),
        (UNKNOWN_PURCHASE_ORDER, "", ""),
    ]


def _members(world: World, group_id: str) -> set[str]:
    return {iccid for iccid, _, group in world.sims if group == group_id}


def _xlsx(
    path: Path, title: str, header: Sequence[str], rows: Sequence[Sequence[str]]
) -> Path:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title
    sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
    for cells in sheet.iter_rows(min_row=2):
        for cell in cells:
            cell.number_format = "@"  # ids and ICCIDs are text
    book.save(path)
    make_zip_deterministic(path)
    return path


def _csv(path: Path, lines: Sequence[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


if __name__ == "__main__":
    main()
