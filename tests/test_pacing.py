import itertools
import threading

from lf_bulk.pacing import RequestPacer


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_requests_are_spaced_evenly_at_the_rate() -> None:
    clock = FakeClock()
    pacer = RequestPacer(10, 3, clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(25):
        with pacer.slot():
            starts.append(clock.now)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.1 - 1e-9
    # no one-second window ever holds more than 10 starts
    assert max(sum(1 for s in starts if t <= s < t + 1 - 1e-6) for t in starts) == 10


def test_hold_off_pushes_the_next_request_back() -> None:
    clock = FakeClock()
    pacer = RequestPacer(10, 3, clock=clock, sleep=clock.sleep)
    with pacer.slot():
        pass
    pacer.hold_off(5)
    with pacer.slot():
        assert clock.now >= 5


def test_in_flight_cap_is_enforced_across_threads() -> None:
    pacer = RequestPacer(10_000, 3)
    inside = 0
    peak = 0
    lock = threading.Lock()
    release = threading.Event()

    def worker() -> None:
        nonlocal inside, peak
        with pacer.slot():
            with lock:
                inside += 1
                peak = max(peak, inside)
            release.wait(0.2)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 3
