"""CANCEL_RENEWAL look-up runs: the plan without `yes`, each renewal cancelled once, lost answers
settled by looking, never by cancelling blindly, and the re-read at the end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from lf_bulk import errors, lookups
from lf_bulk import runs as runs_lib
from lf_bulk.answers import Answer
from lf_bulk.exitcodes import ExitCode
from lf_bulk.journal import Journal
from lf_bulk.lookups import Call, LookupKind
from lf_bulk.settings import Settings
from tests.lookups_fake import FakeVshop, make_iccid, renewal_of

YES = {lookups.OPTION_YES: True}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(env="uat", base_url="https://vshop.test", home=tmp_path / "home")


@pytest.fixture
def journal(settings: Settings) -> Iterator[Journal]:
    with runs_lib.open_journal(settings.home) as opened:
        yield opened


def pairs(*iccids: str) -> list[tuple[str, str]]:
    return [(i, "G1") for i in iccids]


def outcomes(journal: Journal, run_id: str) -> dict[str, tuple[str, str]]:
    return {a.iccid: (a.outcome, a.reason_code) for a in lookups.load_run(journal, run_id).answers}


def test_without_yes_only_the_renewals_are_read_and_nothing_is_cancelled(
    settings: Settings, journal: Journal
) -> None:
    api = FakeVshop()
    with_renewal = api.add_card(make_iccid(1), renewal=True)
    without = api.add_card(make_iccid(2))
    result = lookups.start_lookup(
        journal, api, settings, pairs(with_renewal, without), LookupKind.CANCEL_RENEWAL
    )
    assert not api.cancels_done and ("cancel_renewal", with_renewal) not in api.calls
    assert outcomes(journal, result.run_id) == {
        with_renewal: ("looked_up", "WOULD_CANCEL"),
        without: ("no_renewal", ""),
    }
    assert result.exit_code == ExitCode.OK


def test_with_yes_each_renewal_is_cancelled_once_and_read_again_at_the_end(
    settings: Settings, journal: Journal
) -> None:
    api = FakeVshop()
    sims = [api.add_card(make_iccid(n), renewal=True) for n in range(1, 5)]
    none = api.add_card(make_iccid(9))
    result = lookups.start_lookup(
        journal, api, settings, pairs(*sims, none), LookupKind.CANCEL_RENEWAL, options=YES
    )
    assert result.exit_code == ExitCode.OK
    assert api.cancels_done == {sim: 1 for sim in sims} and not api.renewals
    assert {api.calls[("renewal", sim)] for sim in sims} == {2}  # the query and the re-read
    assert outcomes(journal, result.run_id)[none] == ("no_renewal", "")
    assert {outcomes(journal, result.run_id)[s] for s in sims} == {("cancelled", "")}
    run = lookups.load_run(journal, result.run_id)
    assert run.answers[0].renewal is not None  # the renewal that was cancelled


def test_a_cancel_whose_answer_was_lost_is_settled_by_looking_and_not_sent_again(
    settings: Settings, journal: Journal
) -> None:
    api = FakeVshop()
    sim = api.add_card(make_iccid(1), renewal=True)
    api.lose_answer_after_cancel.add(sim)
    result = lookups.start_lookup(
        journal, api, settings, pairs(sim), LookupKind.CANCEL_RENEWAL, options=YES
    )
    assert api.calls[("cancel_renewal", sim)] == 1 and api.cancels_done[sim] == 1
    assert outcomes(journal, result.run_id)[sim] == ("cancelled", "LOST")
    assert result.exit_code == ExitCode.OK


def test_a_lost_cancel_that_did_not_happen_is_sent_again_after_looking(
    settings: Settings, journal: Journal
) -> None:
    api = FakeVshop()
    sim = api.add_card(make_iccid(1), renewal=True)
    api.fail("cancel_renewal", sim, errors.TransportError("https://vshop.test: timed out"))
    result = lookups.start_lookup(
        journal, api, settings, pairs(sim), LookupKind.CANCEL_RENEWAL, options=YES
    )
    assert api.calls[("cancel_renewal", sim)] == 2 and api.cancels_done[sim] == 1
    # the query, the look that found it still there, and the re-read at the end
    assert api.calls[("renewal", sim)] == 3
    assert outcomes(journal, result.run_id)[sim] == ("cancelled", "")


def test_a_cancel_refused_as_busy_is_not_journaled_as_sent_and_resume_sends_it(
    settings: Settings, journal: Journal
) -> None:
    api = FakeVshop()
    sim = api.add_card(make_iccid(1), renewal=True)
    api.fail("cancel_renewal", sim, errors.SystemBusy("SYSTEM_BUSY", "busy"))
    first = lookups.start_lookup(
        journal, api, settings, pairs(sim), LookupKind.CANCEL_RENEWAL, options=YES
    )
    assert first.exit_code == ExitCode.NOT_FINISHED
    assert journal.call_counts(first.run_id) == {"renewal api": 1}
    again = lookups.drive_lookup(journal, api, first.run_id, settings)
    assert again.exit_code == ExitCode.OK and api.cancels_done[sim] == 1
    assert api.calls[("renewal", sim)] == 2  # the query was not repeated: only the re-read


def test_a_crash_while_sending_is_settled_on_resume_by_looking_first(
    settings: Settings, journal: Journal
) -> None:
    api = FakeVshop()
    gone, still = (
        api.add_card(make_iccid(1), renewal=True),
        api.add_card(make_iccid(2), renewal=True),
    )
    api.quota_left = 2  # the two queries, then the day is spent
    first = lookups.start_lookup(
        journal, api, settings, pairs(gone, still), LookupKind.CANCEL_RENEWAL, options=YES
    )
    assert first.exit_code == ExitCode.NOT_FINISHED
    # What a process killed during both sends leaves behind; the server took only the first.
    for item_id, sim in ((0, gone), (1, still)):
        renewal = api.renewals[sim]
        request = json.dumps({"order_no": renewal.order_no, "pay_id": renewal.pay_id})
        journal.mark_call_sending(first.run_id, item_id, 1, Call.CANCEL_RENEWAL, request)
    del api.renewals[gone]
    api.quota_left = None
    again = lookups.drive_lookup(journal, api, first.run_id, settings)
    assert again.exit_code == ExitCode.OK
    assert ("cancel_renewal", gone) not in api.calls  # gone when looked at: never sent again
    assert api.cancels_done == {still: 1}
    assert outcomes(journal, first.run_id) == {
        gone: ("cancelled", "LOST"),
        still: ("cancelled", ""),
    }


def test_a_renewal_still_active_when_read_again_is_failed(
    settings: Settings, journal: Journal
) -> None:
    api = FakeVshop()
    sim = api.add_card(make_iccid(1), renewal=True)
    api.cancel_keeps_renewal.add(sim)
    result = lookups.start_lookup(
        journal, api, settings, pairs(sim), LookupKind.CANCEL_RENEWAL, options=YES
    )
    assert outcomes(journal, result.run_id)[sim] == ("failed", "STILL_ACTIVE")
    assert result.exit_code == ExitCode.SOME_FAILED and api.cancels_done[sim] == 1


def test_a_run_that_cancels_never_uses_cached_renewals(
    settings: Settings, journal: Journal
) -> None:
    api = FakeVshop()
    sim = api.add_card(make_iccid(1), renewal=True)
    lookups.start_lookup(journal, api, settings, pairs(sim), LookupKind.RENEWALS)
    lookups.start_lookup(journal, api, settings, pairs(sim), LookupKind.CANCEL_RENEWAL, options=YES)
    assert api.calls[("renewal", sim)] == 3  # renewals list, then the cancel run's query + re-read
    assert api.cancels_done[sim] == 1


def test_runs_cancel_fails_the_rows_never_asked_and_keeps_a_sent_cancel_pending(
    settings: Settings, journal: Journal
) -> None:
    api = FakeVshop()
    sent, never = (
        api.add_card(make_iccid(1), renewal=True),
        api.add_card(make_iccid(2), renewal=True),
    )
    api.quota_left = 1
    first = lookups.start_lookup(
        journal, api, settings, pairs(sent, never), LookupKind.CANCEL_RENEWAL, options=YES
    )
    renewal = api.renewals[sent]
    request = json.dumps({"order_no": renewal.order_no, "pay_id": renewal.pay_id})
    journal.mark_call_sending(first.run_id, 0, 1, Call.CANCEL_RENEWAL, request)
    result = runs_lib.cancel(journal, settings, first.run_id)
    assert not result.driven and journal.run(first.run_id).status == "cancelled"
    assert outcomes(journal, first.run_id) == {
        sent: ("pending", "CANCELLED"),
        never: ("failed", "CANCELLED"),
    }
    with pytest.raises(errors.RunRefused):
        lookups.drive_lookup(journal, api, first.run_id, settings)


def renewal_answer(sim: str) -> lookups.Asked:
    renewal = renewal_of(sim)
    return lookups.Asked(Call.RENEWAL, Answer(renewal), {})


def test_next_step_never_sends_a_cancel_blindly_after_a_lost_answer() -> None:
    sim = make_iccid(1)
    query = renewal_answer(sim)
    lost = lookups.Asked(Call.CANCEL_RENEWAL, None, {})
    step = lookups.next_step(LookupKind.CANCEL_RENEWAL, [query, lost], yes=True)
    assert (step.call, step.final) == (Call.RENEWAL, False)
    gone = lookups.Asked(Call.RENEWAL, Answer(None), {})
    assert lookups.next_step(LookupKind.CANCEL_RENEWAL, [query, lost, gone], yes=True).outcome == (
        "cancelled"
    )
    still = renewal_answer(sim)
    again = lookups.next_step(LookupKind.CANCEL_RENEWAL, [query, lost, still], yes=True)
    assert again.call is Call.CANCEL_RENEWAL and again.renewal == renewal_of(sim)
    late = lookups.Asked(Call.CANCEL_RENEWAL, Answer(code="RENEWAL_NOT_FOUND"), {})
    settled = lookups.next_step(LookupKind.CANCEL_RENEWAL, [query, lost, still, late], yes=True)
    assert (settled.outcome, settled.reason_code) == ("cancelled", "LOST")
    first_try = lookups.next_step(LookupKind.CANCEL_RENEWAL, [query, late], yes=True)
    assert (first_try.outcome, first_try.reason_code) == ("no_renewal", "RENEWAL_NOT_FOUND")
    lost_thrice = [query, lost, still, lost, still, lost, still]
    assert lookups.next_step(LookupKind.CANCEL_RENEWAL, lost_thrice, yes=True).reason_code == (
        "STILL_ACTIVE"
    )
