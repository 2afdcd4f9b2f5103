"""tests/scheduling.py: the long modules start the workers' slices; nothing is lost or doubled."""

from __future__ import annotations

from tests.scheduling import LONG_POLES, long_poles_first, slice_starts


def ids() -> list[str]:
    short = [f"tests/test_a{n}.py::test_{n}" for n in range(40)]
    long = [
        f"{pole}{'x.py' if pole.endswith('/') else ''}::test_{n}"
        for pole in LONG_POLES
        for n in range(2)
    ]
    return short[:20] + long + short[20:]


def test_the_slices_are_the_ones_worksteal_hands_out() -> None:
    assert slice_starts(10, 4) == [0, 2, 4, 7, 10]
    assert slice_starts(3, 4) == [0, 0, 1, 2, 3]


def test_every_test_once_and_each_slice_begins_with_a_long_module() -> None:
    node_ids = ids()
    order = long_poles_first(node_ids, 4)
    assert sorted(order) == list(range(len(node_ids)))
    bounds = slice_starts(len(node_ids), 4)
    firsts = [node_ids[order[b]] for b in bounds[:-1]]
    assert all(any(f.startswith(pole) for pole in LONG_POLES) for f in firsts), firsts
    longest = max(LONG_POLES, key=lambda p: LONG_POLES[p])
    placed = [i for i, o in enumerate(order) if node_ids[o].startswith(longest)]
    assert placed == list(range(placed[0], placed[0] + 2))  # a module's tests stay together


def test_one_worker_keeps_the_collected_order() -> None:
    assert long_poles_first(ids(), 1) == list(range(len(ids())))
