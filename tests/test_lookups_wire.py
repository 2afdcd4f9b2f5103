"""Look-up runs through the real client and wire layer, against a Vshop on httpx's transport seam:
the server's daily quota stops a run cleanly, and a dropped cancel answer is settled by looking."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from lf_bulk import errors, lookups
from lf_bulk import runs as runs_lib
from lf_bulk.client import LinksfieldClient
from lf_bulk.exitcodes import ExitCode
from lf_bulk.journal import Journal
from lf_bulk.lookups import LookupKind
from lf_bulk.pacing import RequestPacer
from lf_bulk.quota import QuotaLedger
from lf_bulk.settings import Settings
from tests.lookups_fake import VshopServer, make_iccid, wire_renewal


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(env="uat", base_url="https://vshop.test", home=tmp_path / "home")


@pytest.fixture
def journal(settings: Settings) -> Iterator[Journal]:
    with runs_lib.open_journal(settings.home) as opened:
        yield opened


def client_for(server: VshopServer) -> LinksfieldClient:
    return LinksfieldClient(
        "https://vshop.test", "P1", transport=httpx.MockTransport(server),
        pacer=RequestPacer(1000, 3), sleep=lambda s: None,
    )  # fmt: skip


def test_the_servers_daily_quota_stops_the_run_and_resume_asks_only_the_rest(
    settings: Settings, journal: Journal
) -> None:
    server = VshopServer()
    sims = [make_iccid(n) for n in range(1, 7)]
    server.cards = dict.fromkeys(sims, "ACTIVE")
    server.quota = 4
    with client_for(server) as api:
        first = lookups.start_lookup(journal, api, settings, [(s, "G1") for s in sims],
                                     LookupKind.VERIFY)  # fmt: skip
    assert first.exit_code == ExitCode.NOT_FINISHED
    assert "by the server" in first.stopped
    assert journal.run(first.run_id).status == "not_finished"
    server.quota = None
    with client_for(server) as api:
        again = runs_lib.resume(journal, api, settings, first.run_id)
    assert again is not None and again.exit_code == ExitCode.OK
    assert set(server.seen.values()) == {1} and len(server.seen) == 6


def test_a_dropped_cancel_answer_through_the_wire_is_settled_by_looking(
    settings: Settings, journal: Journal
) -> None:
    server = VshopServer()
    sim = make_iccid(1)
    server.cards = {sim: "ACTIVE"}
    server.renewals = {sim: wire_renewal(sim)}
    server.drop_cancel_answers = 1
    with client_for(server) as api:
        result = lookups.start_lookup(journal, api, settings, [(sim, "G1")],
                                      LookupKind.CANCEL_RENEWAL, options={lookups.OPTION_YES: True})  # fmt: skip
    assert server.seen[("cancelAutoRenewalRecord", sim)] == 1
    answers = lookups.load_run(journal, result.run_id).answers
    assert (answers[0].outcome, answers[0].reason_code) == ("cancelled", "LOST")
    assert (
        answers[0].renewal is not None
        and answers[0].renewal.order_no == wire_renewal(sim)["orderNo"]
    )
    assert result.exit_code == ExitCode.OK


def test_the_ledger_plans_stops_refuses_and_the_next_day_finishes_without_asking_twice(
    tmp_path: Path, settings: Settings, journal: Journal
) -> None:
    server = VshopServer()
    sims = [make_iccid(n) for n in range(1, 11)]
    server.cards = dict.fromkeys(sims, "ACTIVE")
    today = [datetime(2026, 11, 29, 9, 0, tzinfo=UTC)]
    ledger = QuotaLedger.in_home(settings.home, "acct", daily_quota=10, reserve=2,
                                 clock=lambda: today[0])  # fmt: skip
    said: list[str] = []

    def client() -> LinksfieldClient:
        return LinksfieldClient(
            "https://vshop.test", "P1", transport=httpx.MockTransport(server),
            pacer=RequestPacer(1000, 3), sleep=lambda s: None, quota=ledger.gate(),
        )  # fmt: skip

    with ledger, client() as api:
        first = lookups.start_lookup(journal, api, settings, [(s, "G1") for s in sims],
                                     LookupKind.VERIFY, say=said.append)  # fmt: skip
        assert any("needs 10 calls; 8 left today" in line for line in said)
        assert first.exit_code == ExitCode.NOT_FINISHED and "by the quota ledger" in first.stopped
        assert sum(server.seen.values()) == 8 and ledger.used_today() == 8
        with pytest.raises(errors.QuotaExhausted, match="nothing was sent"):
            lookups.start_lookup(journal, api, settings, [(sims[0], "G1")], LookupKind.VERIFY,
                                 max_age=0)  # fmt: skip
        assert len(journal.runs()) == 1 and sum(server.seen.values()) == 8
        today[0] += timedelta(days=1)
        again = runs_lib.resume(journal, api, settings, first.run_id)
    assert again is not None and again.exit_code == ExitCode.OK
    assert set(server.seen.values()) == {1} and len(server.seen) == 10
