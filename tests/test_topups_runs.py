"""`orders create` as a run, against a Linksfield that is NOT idempotent (a re-sent order_no is a
second order): at most one order per row, lost answers settled by looking the order_no up."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from lf_bulk import errors, runs, topups
from lf_bulk.api_values import (
    CreatedOrder,
    Order,
    PaymentResult,
    TopUp,
)
from lf_bulk.exitcodes import ExitCode
from lf_bulk.journal import Journal
from lf_bulk.pacing import RequestPacer
from lf_bulk.settings import Settings
from tests.lookups_fake import make_iccid


class NonIdempotentShop:
    """Orders by order_no; every send that reaches it creates an order, even a second one."""

    def __init__(self) -> None:
        self.pacer = RequestPacer(10_000, 3)
        self.base_url = "https://lf.test"
        self.partner_code = "P1"
        self.orders: dict[str, list[Order]] = {}
        self.sends: Counter[str] = Counter()
        self.lose_after_acting: set[str] = set()  # answer lost once, after the order was made
        self.fail_before_acting: dict[str, BaseException] = {}
        self.looks: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add_existing(self, order_no: str, iccid: str, amount: str, currency: str) -> None:
        self.orders[order_no] = [self._order(order_no, iccid, Decimal(amount), currency)]

    def _order(self, order_no: str, iccid: str, amount: Decimal, currency: str) -> Order:
        n = sum(len(v) for v in self.orders.values()) + 1
        return Order(f"O{n}", order_no, iccid, "DP1", "Plan", 1, amount, currency, "PAID", "",
                     "pi", "", "", "", "", "0")  # fmt: skip

    def find_orders(self, key_kind: str, key: str) -> list[Order]:
        assert key_kind == "purchase_order_id"
        with self._lock:
            self.looks[key] += 1
            return list(reversed(self.orders.get(key, [])))

    def create_order(self, top_up: TopUp) -> CreatedOrder:
        with self._lock:
            error = self.fail_before_acting.pop(top_up.order_no, None)
            if error is not None:
                raise error
            self.sends[top_up.order_no] += 1
            order = self._order(top_up.order_no, top_up.iccid, top_up.amount, top_up.currency)
            self.orders.setdefault(top_up.order_no, []).append(order)
            if top_up.order_no in self.lose_after_acting:
                self.lose_after_acting.discard(top_up.order_no)
                raise errors.TransportError("https://lf.test: timed out (ReadTimeout)")
        return CreatedOrder(top_up.order_no, order.order_id, top_up.iccid)

    def payment_result(self, pay_id: str) -> PaymentResult:
        raise NotImplementedError

    def verify_card(self, iccid: str) -> object:
        raise NotImplementedError

    held_plans = find_renewal = list_plans = cancel_renewal = verify_card


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(env="uat", base_url="https://lf.test", home=tmp_path / "home")


@pytest.fixture
def journal(settings: Settings) -> Iterator[Journal]:
    with runs.open_journal(settings.home) as opened:
        yield opened


HEADER = "iccid,package_code,periods,amount,currency,pay_id,order_no\n"


def orders_file(tmp_path: Path, rows: list[tuple[str, ...]]) -> topups.OrderInput:
    path = tmp_path / "orders.csv"
    path.write_text(HEADER + "".join(",".join(r) + "\n" for r in rows))
    return topups.read_orders(path)


def row(
    n: int, amount: str = "10.00", currency: str = "EUR", order_no: str = ""
) -> tuple[str, ...]:
    return (make_iccid(n), "DP1", "1", amount, currency, f"pi_{n}", order_no)


def outcomes(report: Path) -> dict[str, tuple[str, str]]:
    import csv

    with (report / "items.csv").open(newline="") as f:
        return {r["order_no"]: (r["outcome"], r["reason_code"]) for r in csv.DictReader(f)}


def test_a_lost_answer_is_settled_by_looking_and_the_order_is_never_sent_again(
    tmp_path: Path, settings: Settings, journal: Journal
) -> None:
    shop = NonIdempotentShop()
    shop.lose_after_acting = {"A-1"}
    given = orders_file(tmp_path, [row(1, order_no="A-1"), row(2, order_no="A-2")])
    result = topups.start_orders(journal, shop, settings, given, report_dir=tmp_path / "r")
    assert result.exit_code == ExitCode.OK
    assert shop.sends == Counter({"A-1": 1, "A-2": 1})
    assert {k: len(v) for k, v in shop.orders.items()} == {"A-1": 1, "A-2": 1}
    assert outcomes(tmp_path / "r") == {"A-1": ("created", "LOST"), "A-2": ("created", "")}
    assert shop.looks["A-1"] == 2  # the look before the send, and the one that settled it


def test_a_lost_answer_of_a_generated_order_no_is_settled_by_looking_too(
    tmp_path: Path, settings: Settings, journal: Journal
) -> None:
    shop = NonIdempotentShop()
    given = orders_file(tmp_path, [row(n) for n in range(1, 6)])
    shop.lose_after_acting = {r.top_up.order_no for r in given.rows if r.top_up}
    result = topups.start_orders(journal, shop, settings, given, report_dir=tmp_path / "r")
    assert result.exit_code == ExitCode.OK
    assert set(shop.sends.values()) == {1} and len(shop.sends) == 5
    assert {v for v in outcomes(tmp_path / "r").values()} == {("created", "LOST")}


def test_an_order_no_linksfield_has_already_is_reported_exists_and_never_sent(
    tmp_path: Path, settings: Settings, journal: Journal
) -> None:
    shop = NonIdempotentShop()
    shop.add_existing("OLD-1", make_iccid(1), "7.50", "GBP")
    given = orders_file(tmp_path, [row(1, "7.50", "GBP", "OLD-1"), row(2, "1.25", "GBP", "N-2")])
    result = topups.start_orders(journal, shop, settings, given, report_dir=tmp_path / "r")
    assert result.exit_code == ExitCode.OK
    assert shop.sends == Counter({"N-2": 1})
    assert outcomes(tmp_path / "r")["OLD-1"][0] == "exists"
    summary = topups_summary(tmp_path / "r")
    assert summary["totals"] == {"GBP": {"orders": 2, "amount": "8.75"}}
    assert summary["outcomes"]["exists"] == 1 and summary["outcomes"]["created"] == 1


def topups_summary(report: Path) -> dict[str, object]:
    import json

    data: dict[str, object] = json.loads((report / "summary.json").read_text())
    return data


def test_an_order_that_provably_did_not_happen_is_sent_again_after_looking(
    tmp_path: Path, settings: Settings, journal: Journal
) -> None:
    shop = NonIdempotentShop()
    # a 502 from a proxy: the server may have acted; this one did not
    shop.fail_before_acting["A-1"] = errors.HttpStatusError(502, "HTTP 502 from https://lf.test")
    given = orders_file(tmp_path, [row(1, order_no="A-1")])
    result = topups.start_orders(journal, shop, settings, given, report_dir=tmp_path / "r")
    assert result.exit_code == ExitCode.OK
    assert shop.sends == Counter({"A-1": 1}) and len(shop.orders["A-1"]) == 1
    assert shop.looks["A-1"] == 2


def test_a_busy_order_is_not_journaled_as_sent_and_resume_sends_it_once(
    tmp_path: Path, settings: Settings, journal: Journal
) -> None:
    shop = NonIdempotentShop()
    shop.fail_before_acting["A-1"] = errors.SystemBusy("SYSTEM_BUSY", "busy")
    given = orders_file(tmp_path, [row(1, order_no="A-1")])
    first = topups.start_orders(journal, shop, settings, given, report_dir=tmp_path / "r")
    assert first.exit_code == ExitCode.NOT_FINISHED
    assert outcomes(tmp_path / "r")["A-1"][0] == "pending"
    again = runs.drive(journal, shop, first.run_id, settings)  # type: ignore[arg-type]
    assert again.exit_code == ExitCode.OK and shop.sends == Counter({"A-1": 1})


def test_a_crash_after_sending_is_settled_by_looking_on_resume(
    tmp_path: Path, settings: Settings, journal: Journal
) -> None:
    """A kill between the send and the journal: the call stays `sending`; resume looks first."""
    shop = NonIdempotentShop()
    given = orders_file(tmp_path, [row(1, order_no="A-1")])

    class Killed(BaseException):
        pass

    real_create = shop.create_order

    def create_then_die(top_up: TopUp) -> CreatedOrder:
        real_create(top_up)
        raise Killed

    shop.create_order = create_then_die  # type: ignore[method-assign]
    with pytest.raises(Killed):
        topups.start_orders(journal, shop, settings, given, report_dir=tmp_path / "r")
    shop.create_order = real_create  # type: ignore[method-assign]
    run_id = journal.runs()[0].run_id
    again = runs.drive(journal, shop, run_id, settings)  # type: ignore[arg-type]
    assert again.exit_code == ExitCode.OK
    assert shop.sends == Counter({"A-1": 1})
    assert outcomes(tmp_path / "r")["A-1"] == ("created", "LOST")


def test_generated_order_numbers_are_fixed_in_the_journal_before_the_first_send(
    tmp_path: Path, settings: Settings, journal: Journal
) -> None:
    shop = NonIdempotentShop()
    given = orders_file(tmp_path, [row(1), row(2)])
    shop.fail_before_acting = {
        r.top_up.order_no: errors.SystemBusy("SYSTEM_BUSY", "busy") for r in given.rows if r.top_up
    }
    first = topups.start_orders(journal, shop, settings, given, report_dir=tmp_path / "r")
    stored = journal.run(first.run_id).details["options"]["orders"]
    fixed = {stored[k]["order_no"] for k in stored}
    assert fixed == set(shop.fail_before_acting) | {
        r.top_up.order_no for r in given.rows if r.top_up
    }
    runs.drive(journal, shop, first.run_id, settings)  # type: ignore[arg-type]
    assert set(shop.sends) == fixed  # the resume sent the numbers fixed before, not new ones


def test_duplicate_order_no_is_settled_by_looking_never_by_sending_again(
    tmp_path: Path, settings: Settings, journal: Journal
) -> None:
    shop = NonIdempotentShop()
    refusal = errors.DuplicateOrderNo("DUPLICATE_ORDER_NO", "orderNo exists already")
    given = orders_file(tmp_path, [row(1), row(2)])
    found, missing = (r.top_up.order_no for r in given.rows if r.top_up)
    # generated numbers are not looked up before their first send: one is at Linksfield already
    # (refused, then found: `exists`), the other is refused though no order with it exists
    shop.add_existing(found, make_iccid(1), "10.00", "EUR")
    shop.fail_before_acting = {found: refusal, missing: refusal}
    result = topups.start_orders(journal, shop, settings, given, report_dir=tmp_path / "r")
    assert result.exit_code == ExitCode.SOME_FAILED
    assert not shop.sends  # neither was sent a second time
    reported = outcomes(tmp_path / "r")
    assert reported[found] == ("exists", "")
    assert reported[missing] == ("failed", "DUPLICATE_ORDER_NO")


def test_a_card_linksfield_refuses_fails_its_row_only(
    tmp_path: Path, settings: Settings, journal: Journal
) -> None:
    shop = NonIdempotentShop()
    shop.fail_before_acting["A-1"] = errors.CardNotFound("CARD_NOT_FOUND", "no such card")
    given = orders_file(tmp_path, [row(1, order_no="A-1"), row(2, order_no="A-2")])
    result = topups.start_orders(journal, shop, settings, given, report_dir=tmp_path / "r")
    assert result.exit_code == ExitCode.SOME_FAILED
    assert outcomes(tmp_path / "r") == {
        "A-1": ("failed", "CARD_NOT_FOUND"), "A-2": ("created", ""),
    }  # fmt: skip
    assert topups_summary(tmp_path / "r")["totals"] == {"EUR": {"orders": 1, "amount": "10.00"}}


def test_an_order_changed_in_the_journal_is_refused_and_nothing_is_sent(
    tmp_path: Path, settings: Settings, journal: Journal
) -> None:
    import json as json_

    shop = NonIdempotentShop()
    shop.fail_before_acting["A-1"] = errors.SystemBusy("SYSTEM_BUSY", "busy")
    given = orders_file(tmp_path, [row(1, order_no="A-1")])
    first = topups.start_orders(journal, shop, settings, given, report_dir=tmp_path / "r")
    assert first.exit_code == ExitCode.NOT_FINISHED
    details = journal.run(first.run_id).details
    details["options"]["orders"]["2"]["amount"] = "1000000.00"
    with journal._db:  # what a hand edit of the journal would do
        journal._db.execute("UPDATE runs SET details = ? WHERE run_id = ?",
                            (json_.dumps(details), first.run_id))  # fmt: skip
    with pytest.raises(errors.RunTampered):
        runs.drive(journal, shop, first.run_id, settings)  # type: ignore[arg-type]
    assert not shop.sends
