"""The daily quota ledger: counting per account and UTC day, the reserve, the server's word, plans."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lf_bulk import quota
from lf_bulk.errors import ForeignDatabase, QuotaExhausted
from lf_bulk.quota import QuotaLedger

CODE = "P000123"
IDENTITY = f"https://wx.linksfield.net/topup\n{CODE}"


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 29, 18, 48, tzinfo=UTC))


def ledger_at(path: Path, clock: FakeClock, quota_: int = 10, reserve: int = 2) -> QuotaLedger:
    return QuotaLedger(
        path / "quota.db", IDENTITY, daily_quota=quota_, reserve=reserve, clock=clock
    )


def take_until_refused(gate: quota.LedgerGate, at_most: int = 1000) -> tuple[int, QuotaExhausted]:
    for taken in range(at_most):
        try:
            gate.take()
        except QuotaExhausted as error:
            return taken, error
    raise AssertionError("the gate never refused")


def test_a_gate_stops_at_the_quota_less_the_reserve_and_says_when_it_resets(
    tmp_path: Path, clock: FakeClock
) -> None:
    with ledger_at(tmp_path, clock) as ledger:
        taken, error = take_until_refused(ledger.gate())
        assert taken == 8
        assert ledger.used_today() == 8
        assert ledger.left_today() == 0
        assert ledger.left_today(spend_reserve=True) == 2
        assert error.source == "ledger"
        assert (error.used, error.limit) == (8, 8)
        assert error.resets_at == datetime(2026, 11, 30, tzinfo=UTC)
        assert "8 of 8 requests used today by our ledger" in str(error)
        assert "2 more are kept for reconcile" in str(error)
        assert "resets at 00:00 UTC, in 5 h 12 min" in str(error)
        # A refused request is not counted.
        assert ledger.used_today() == 8


def test_only_the_reserve_gate_spends_the_reserve(tmp_path: Path, clock: FakeClock) -> None:
    with ledger_at(tmp_path, clock) as ledger:
        take_until_refused(ledger.gate())
        taken, error = take_until_refused(ledger.gate(spend_reserve=True))
        assert taken == 2
        assert (error.used, error.limit) == (10, 10)
        assert "kept for reconcile" not in str(error)
        with pytest.raises(QuotaExhausted):
            ledger.gate().take()


def test_the_count_starts_again_at_utc_midnight(tmp_path: Path, clock: FakeClock) -> None:
    with ledger_at(tmp_path, clock) as ledger:
        take_until_refused(ledger.gate())
        clock.advance(hours=5, minutes=11)
        with pytest.raises(QuotaExhausted):
            ledger.gate().take()
        clock.advance(minutes=1)  # 00:00 UTC
        assert ledger.used_today() == 0
        assert ledger.left_today() == 8
        ledger.gate().take()
        assert ledger.used_today() == 1
        assert ledger.resets_at() == datetime(2026, 12, 1, tzinfo=UTC)


def test_the_count_is_shared_by_ledgers_and_kept_per_account(
    tmp_path: Path, clock: FakeClock
) -> None:
    with ledger_at(tmp_path, clock) as first, ledger_at(tmp_path, clock) as second:
        first.gate().take()
        second.gate().take()
        assert first.used_today() == second.used_today() == 2
        other = QuotaLedger(
            tmp_path / "quota.db", f"sandbox\n{CODE}", daily_quota=10, reserve=2, clock=clock
        )
        with other:
            assert other.used_today() == 0
            other.gate().take()
        assert first.used_today() == 2


def test_processes_taking_at_once_never_overspend(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from lf_bulk.errors import QuotaExhausted
        from lf_bulk.quota import QuotaLedger
        ledger = QuotaLedger(sys.argv[1], {IDENTITY!r}, daily_quota=160, reserve=10)
        gate, taken = ledger.gate(), 0
        for _ in range(100):
            try:
                gate.take()
                taken += 1
            except QuotaExhausted:
                pass
        print(taken)
        """
    )
    path = tmp_path / "quota.db"
    QuotaLedger(path, IDENTITY, daily_quota=160, reserve=10).close()  # created before the race
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    taken = [int(child.communicate(timeout=60)[0]) for child in children]
    assert sum(taken) == 150
    with QuotaLedger(path, IDENTITY, daily_quota=160, reserve=10) as ledger:
        assert ledger.used_today() == 150


def test_the_partner_code_is_never_stored(tmp_path: Path, clock: FakeClock) -> None:
    with ledger_at(tmp_path, clock) as ledger:
        ledger.gate().take()
        ledger.mark_server_exhausted(None)
    stored = b"".join(path.read_bytes() for path in tmp_path.iterdir() if path.is_file())
    assert stored  # the ledger really wrote something
    assert CODE.encode() not in stored
    assert b"P000" not in stored
    mode = stat.S_IMODE(os.stat(tmp_path / "quota.db").st_mode)
    assert mode == 0o600


def test_the_servers_daily_answer_marks_the_day_spent_for_everyone(
    tmp_path: Path, clock: FakeClock
) -> None:
    resets = datetime(2026, 11, 30, 0, 0, 5, tzinfo=UTC)
    with ledger_at(tmp_path, clock) as ledger, ledger_at(tmp_path, clock) as other:
        gate = ledger.gate()
        gate.take()
        gate.server_exhausted(resets)
        with pytest.raises(QuotaExhausted) as raised:
            other.gate(spend_reserve=True).take()
        assert raised.value.source == "server"
        assert raised.value.resets_at == resets
        assert "the server said so" in str(raised.value)
        assert other.left_today(spend_reserve=True) == 0
        assert other.resets_at() == resets
        assert "the server said the day's quota is spent" in other.describe()
        clock.advance(hours=5, minutes=13)
        assert other.server_spent_until() is None
        other.gate().take()


def test_a_retrying_gate_sends_once_more_until_the_server_says_no_again(
    tmp_path: Path, clock: FakeClock
) -> None:
    with ledger_at(tmp_path, clock) as ledger:
        ledger.mark_server_exhausted(None)
        with pytest.raises(QuotaExhausted):
            ledger.gate().take()
        retrying = ledger.gate(retry_server=True)
        retrying.take()
        retrying.take()  # the server answered: it has reset after all
        retrying.server_exhausted(datetime(2026, 11, 30, tzinfo=UTC))
        with pytest.raises(QuotaExhausted):
            retrying.take()
        assert ledger.used_today() == 2


def test_a_server_mark_far_in_the_future_is_capped(tmp_path: Path, clock: FakeClock) -> None:
    with ledger_at(tmp_path, clock) as ledger:
        ledger.mark_server_exhausted(datetime(2030, 1, 1, tzinfo=UTC))
        assert ledger.resets_at() == datetime(2026, 12, 1, tzinfo=UTC)
        ledger.mark_server_exhausted(datetime(2020, 1, 1, tzinfo=UTC))  # in the past: midnight
        assert ledger.resets_at() == datetime(2026, 11, 30, tzinfo=UTC)


def test_describe_plan_says_calls_needed_left_and_the_reset(
    tmp_path: Path, clock: FakeClock
) -> None:
    with QuotaLedger(tmp_path / "q.db", IDENTITY, clock=clock) as ledger:
        for _ in range(300):
            ledger.gate().take()
        assert quota.describe_plan(15_000, ledger) == (
            "needs 15,000 calls; 4,200 left today (resets 00:00 UTC, in 5 h 12 min)"
        )
        assert quota.describe_plan(1, ledger, spend_reserve=True) == (
            "needs 1 call; 4,700 left today (resets 00:00 UTC, in 5 h 12 min)"
        )
        plan = quota.check_plan(15_000, ledger)
        assert not plan.fits
        assert "runs resume" in plan.advice()
        assert quota.check_plan(4_200, ledger).advice() == ""


def test_a_job_is_refused_before_it_starts_when_nothing_is_left(
    tmp_path: Path, clock: FakeClock
) -> None:
    with ledger_at(tmp_path, clock) as ledger:
        take_until_refused(ledger.gate())
        with pytest.raises(QuotaExhausted) as raised:
            quota.check_plan(5, ledger)
        assert "nothing was sent" in str(raised.value)
        assert "needs 5 calls" in str(raised.value)
        quota.check_plan(2, ledger, spend_reserve=True)  # reconcile may still go


def test_describe_reset_names_the_date_when_it_is_far() -> None:
    now = datetime(2026, 11, 29, 23, 59, 30, tzinfo=UTC)
    assert quota.describe_reset(quota.next_reset(now), now) == "00:00 UTC, in 0 min"
    later = datetime(2026, 12, 2, 6, 30, tzinfo=UTC)
    assert quota.describe_reset(later, now).startswith("2026-12-02 06:30 UTC, in 54 h")


def test_bad_limits_and_foreign_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="reserve below it"):
        QuotaLedger(tmp_path / "q.db", IDENTITY, daily_quota=100, reserve=100)
    foreign = tmp_path / "other.db"
    foreign.write_bytes(b"")
    import sqlite3

    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE x (y)")
    os.chmod(foreign, 0o600)
    with pytest.raises(ForeignDatabase):
        QuotaLedger(foreign, IDENTITY)


def test_a_bulk_job_costs_a_few_calls_per_batch() -> None:
    assert quota.calls_for_bulk(5_000, 500) == 31
    assert quota.calls_for_bulk(1, 500) == 4
