"""The order the suite's tests are handed to xdist's workers in, so the run ends together.

`--dist worksteal` gives each of N workers a contiguous slice of the collected tests and lets an
idle worker steal from the END of another's slice. A module whose tests mostly wait (kill trials,
the browser, worker processes) collected late ends up alone at the end of the run: about 10 s of
one busy worker and three idle ones. So the longest modules go to the FRONT of the slices,
spread over the workers (longest first, each to the least loaded), and everything else follows
in its collected order. The order only; which tests run is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

# Seconds of wall time per module (or package) in `make test`, measured 2026-11-29 on the 2-core
# machine; only their order matters. A package's tests stay together: they share one browser.
LONG_POLES: dict[str, float] = {
    "tests/test_crash_resume.py": 29,
    "tests/e2e/": 34,
    "tests/test_workers_e2e.py": 16,
    "tests/test_fault_matrix.py": 19,
    "tests/test_quota_stops.py": 16,
    "tests/test_sandbox.py": 15,
    "tests/test_reconcile_job.py": 14,
    "tests/test_engine_lost_answers.py": 13,
    "tests/test_readme.py": 11,
    "tests/test_fleet_sandbox.py": 11,
    "tests/test_workers_enqueue_more.py": 11,
    "tests/test_store_postgres.py": 10,
    "tests/test_topups_crash.py": 10,
}


def slice_starts(count: int, workers: int) -> list[int]:
    """Where each worker's first slice begins (xdist's worksteal: `pending // nodes_left`)."""
    starts, start = [], 0
    for left in range(workers, 0, -1):
        starts.append(start)
        start += (count - start) // left
    return [*starts, count]


def long_poles_first(node_ids: Sequence[str], workers: int) -> list[int]:
    """The collected tests' new order, as indexes into `node_ids`."""
    if workers < 2:
        return list(range(len(node_ids)))
    blocks: dict[str, list[int]] = {}
    rest: list[int] = []
    for index, node_id in enumerate(node_ids):
        pole = next((p for p in LONG_POLES if node_id.startswith(p)), None)
        (blocks.setdefault(pole, []) if pole else rest).append(index)
    bounds = slice_starts(len(node_ids), workers)
    fronts: list[list[int]] = [[] for _ in range(workers)]
    load = [0.0] * workers
    for pole in sorted(blocks, key=lambda p: -LONG_POLES[p]):
        room = [
            w
            for w in range(workers)
            if len(fronts[w]) + len(blocks[pole]) <= bounds[w + 1] - bounds[w]
        ]
        if not room:
            rest.extend(blocks[pole])
            continue
        lightest = min(room, key=lambda w: load[w])
        fronts[lightest].extend(blocks[pole])
        load[lightest] += LONG_POLES[pole]
    rest.sort()
    order: list[int] = []
    for w in range(workers):
        size = bounds[w + 1] - bounds[w]
        order.extend(fronts[w])
        fill = size - len(fronts[w])
        order.extend(rest[:fill])
        del rest[:fill]
    return order + rest
