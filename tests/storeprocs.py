"""Processes the store tests start: `python -m tests.storeprocs MODE URL ...` (repo as cwd).

- `hold URL NAME`: take lock NAME in the store, say "held", then sleep (to be killed);
- `quota URL N`: take the day's quota until it is spent; print how many were granted;
- `paced URL BASE_URL THREADS CALLS`: THREADS threads each make CALLS API calls through the
  store's shared pacer; print one JSON line: each request's start time (epoch), the statuses
  seen, and the pacer's reservation times.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
IDENTITY = "http://sandbox.test\nP-TEST"


def hold(url: str, name: str) -> None:
    from lf_bulk.store import open_store

    store = open_store(url, Path("/nonexistent"))
    with store.lock(name, f"lock {name}", holder="test"):
        print("held", flush=True)
        time.sleep(60)


def quota(url: str, limit: int) -> None:
    from lf_bulk.errors import QuotaExhausted
    from lf_bulk.store import open_store

    store = open_store(url, Path("/nonexistent"))
    ledger = store.quota_ledger(IDENTITY, daily_quota=limit, reserve=0)
    granted = 0
    print("ready", flush=True)
    sys.stdin.readline()  # every process starts at once
    while True:
        try:
            ledger.take()
        except QuotaExhausted:
            break
        granted += 1
    print(granted, flush=True)


def paced(url: str, base_url: str, threads: int, calls: int) -> None:
    import httpx

    from lf_bulk.client import LinksfieldClient
    from lf_bulk.sandbox.seed import PARTNER
    from lf_bulk.store import open_store

    store = open_store(url, Path("/nonexistent"))
    ledger = store.quota_ledger(IDENTITY, daily_quota=5_000, reserve=0)
    pacer = store.pacer(ledger.account, 10, 3)
    starts: list[float] = []
    statuses: list[int] = []

    class Recording(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            starts.append(time.time())
            response = super().handle_request(request)
            statuses.append(response.status_code)
            return response

    print("ready", flush=True)
    sys.stdin.readline()

    def work() -> None:
        with LinksfieldClient(base_url, PARTNER, pacer=pacer, transport=Recording()) as client:
            for _ in range(calls):
                client.list_groups()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    report: dict[str, Any] = {
        "starts": starts,
        "statuses": statuses,
        "reservations": getattr(pacer, "reservations", []),
        "reserved": getattr(pacer, "starts", []),
    }
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "hold":
        hold(args[0], args[1])
    elif mode == "quota":
        quota(args[0], int(args[1]))
    elif mode == "paced":
        paced(args[0], args[1], int(args[2]), int(args[3]))
    else:
        raise SystemExit(f"unknown mode {mode}")
