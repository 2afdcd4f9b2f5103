"""Look-up runs as a library: journaled answers, outcomes, quota stops, resume, the cache."""

from __future__ import annotations

import _thread
import csv
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lf_bulk import bulk, errors, lookups
from lf_bulk import runs as runs_lib
from lf_bulk.answers import CACHE_NAME
from lf_bulk.engine import Progress
from lf_bulk.exitcodes import ExitCode
from lf_bulk.journal import SCHEMA_VERSION, Journal
from lf_bulk.locking import exclusive
from lf_bulk.lookups import LookupKind
from lf_bulk.settings import Settings
from lf_bulk.sources import read_iccids
from tests.lookups_fake import PARTNER_CODE, FakeVshop, make_iccid


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(env="uat", base_url="https://vshop.test", home=tmp_path / "home")


@pytest.fixture
def journal(settings: Settings) -> Iterator[Journal]:
    with runs_lib.open_journal(settings.home) as opened:
        yield opened


def items_csv(folder: Path) -> dict[str, dict[str, str]]:
    with (folder / "items.csv").open(newline="") as f:
        return {row["iccid"]: row for row in csv.DictReader(f)}


def pairs(*iccids: str, group: str = "G1") -> list[tuple[str, str]]:
    return [(i, group) for i in iccids]


def test_verify_gives_each_card_its_outcome_and_journals_each_answer_once(
    tmp_path: Path, settings: Settings, journal: Journal
) -> None:
    api = FakeVshop()
    good = api.add_card(make_iccid(1))
    asleep = api.add_card(make_iccid(2), "SUSPENDED")
    foreign = make_iccid(3)
    api.foreign.add(foreign)
    missing = make_iccid(4)
    result = lookups.start_lookup(
        journal, api, settings, pairs(good, asleep, foreign, missing), LookupKind.VERIFY,
        report_dir=tmp_path / "r",
    )  # fmt: skip
    rows = items_csv(tmp_path / "r")
    assert rows[good]["outcome"] == "verified"
    assert (rows[asleep]["outcome"], rows[asleep]["reason_code"]) == ("rejected", "CARD_INACTIVE")
    assert rows[asleep]["card_status"] == "SUSPENDED"
    assert (rows[foreign]["outcome"], rows[foreign]["reason_code"]) == (
        "rejected",
        "CARD_NOT_OWNED",
    )
    assert (rows[missing]["outcome"], rows[missing]["reason_code"]) == (
        "rejected",
        "CARD_NOT_FOUND",
    )
    assert result.exit_code == ExitCode.SOME_FAILED
    assert journal.run(result.run_id).kind == "lookup"
    assert journal.run(result.run_id).operation == "verify"
    assert set(api.calls.values()) == {1} and len(api.calls) == 4
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["outcomes"]["verified"] == 1 and summary["outcomes"]["rejected"] == 3


def test_status_asks_three_calls_per_card_and_none_more_for_a_card_not_found(
    settings: Settings, journal: Journal
) -> None:
    api = FakeVshop()
    found = api.add_card(make_iccid(1), renewal=True)
    missing = make_iccid(2)
    result = lookups.start_lookup(journal, api, settings, pairs(found, missing), LookupKind.STATUS)
    run = lookups.load_run(journal, result.run_id)
    by_iccid = {a.iccid: a for a in run.answers}
    assert by_iccid[found].outcome == "looked_up"
    assert by_iccid[found].card is not None and by_iccid[found].card.card_status == "ACTIVE"
    assert by_iccid[found].held and by_iccid[found].held[0].expire_date == "2026-12-20"
    assert by_iccid[found].renewal is not None and by_iccid[found].renewal.iccid == found
    assert by_iccid[found].fetched_at is not None and by_iccid[found].group_id == "G1"
    assert (by_iccid[missing].outcome, by_iccid[missing].reason_code) == (
        "not_found",
        "CARD_NOT_FOUND",
    )
    assert api.calls == {
        ("verify", found): 1, ("held_orders", found): 1, ("renewal", found): 1,
        ("verify", missing): 1,
    }  # fmt: skip


def test_a_quota_stop_is_clean_and_resume_never_asks_an_answered_call_again(
    settings: Settings, journal: Journal
) -> None:
    api = FakeVshop(max_in_flight=1)
    sims = [api.add_card(make_iccid(n)) for n in range(1, 6)]
    api.quota_left = 7  # 5 SIMs x 3 calls = 15 needed
    first = lookups.start_lookup(journal, api, settings, pairs(*sims), LookupKind.STATUS)
    assert first.exit_code == ExitCode.NOT_FINISHED
    assert "quota" in first.stopped and "resets at 2026-11-30 00:00 UTC" in first.stopped
    record = journal.run(first.run_id)
    assert record.status == "not_finished" and record.exit_code == ExitCode.NOT_FINISHED
    assert sum(api.calls.values()) == 7
    api.quota_left = None
    again = runs_lib.resume(journal, api, settings, first.run_id)  # type: ignore[arg-type]
    assert again is not None and again.exit_code == ExitCode.OK
    assert len(api.calls) == 15 and set(api.calls.values()) == {1}  # nothing looked up twice
    assert journal.run(first.run_id).status == "finished"


def test_a_new_run_reuses_young_cached_answers_and_max_age_0_asks_again(
    settings: Settings, journal: Journal
) -> None:
    api = FakeVshop()
    sims = [api.add_card(make_iccid(n)) for n in range(1, 4)]
    lookups.start_lookup(journal, api, settings, pairs(*sims), LookupKind.RENEWALS)
    assert sum(api.calls.values()) == 3
    second = lookups.start_lookup(journal, api, settings, pairs(*sims), LookupKind.RENEWALS)
    assert sum(api.calls.values()) == 3  # every answer came from the cache
    run = lookups.load_run(journal, second.run_id)
    assert {a.outcome for a in run.answers} == {"looked_up"}
    lookups.start_lookup(journal, api, settings, pairs(*sims), LookupKind.RENEWALS, max_age=0)
    assert sum(api.calls.values()) == 6


def test_the_cache_is_per_partner_code_and_never_holds_the_code(
    settings: Settings, journal: Journal
) -> None:
    api = FakeVshop()
    sim = api.add_card(make_iccid(1))
    lookups.start_lookup(journal, api, settings, pairs(sim), LookupKind.VERIFY)
    other = FakeVshop()
    other.partner_code = "ANOTHER-PARTNER-0001"
    other.foreign.add(sim)
    result = lookups.start_lookup(journal, other, settings, pairs(sim), LookupKind.VERIFY)
    assert other.calls[("verify", sim)] == 1  # not answered from the first partner's cache
    assert lookups.load_run(journal, result.run_id).answers[0].reason_code == "CARD_NOT_OWNED"
    for path in settings.home.glob(CACHE_NAME + "*"):
        assert PARTNER_CODE.encode() not in path.read_bytes()


def test_a_failed_call_leaves_its_sim_pending_and_resume_finishes_it(
    settings: Settings, journal: Journal
) -> None:
    api = FakeVshop()
    ok, flaky = api.add_card(make_iccid(1)), api.add_card(make_iccid(2))
    api.fail("verify", flaky, errors.TransportError("https://vshop.test: timed out"))
    first = lookups.start_lookup(journal, api, settings, pairs(ok, flaky), LookupKind.VERIFY)
    assert first.exit_code == ExitCode.NOT_FINISHED
    pending = {a.iccid: a for a in lookups.load_run(journal, first.run_id).answers}[flaky]
    assert pending.outcome == "pending" and pending.reason_code == "TransportError"
    assert first.stopped == "the calls for 1 SIM(s) failed; they stay pending, see the report"
    again = lookups.drive_lookup(journal, api, first.run_id, settings)
    assert again.exit_code == ExitCode.OK
    assert api.calls[("verify", ok)] == 1 and api.calls[("verify", flaky)] == 2


def test_calls_failing_one_after_another_stop_the_run_resumably(
    settings: Settings, journal: Journal
) -> None:
    api = FakeVshop(max_in_flight=1)
    sims = [api.add_card(make_iccid(n)) for n in range(1, 9)]
    for sim in sims[: lookups.MAX_FAILURES_IN_A_ROW]:
        api.fail("verify", sim, errors.ConnectFailed("https://vshop.test: could not connect"))
    with pytest.raises(errors.RunStopped, match="runs resume") as stopped:
        lookups.start_lookup(journal, api, settings, pairs(*sims), LookupKind.VERIFY)
    assert sum(api.calls.values()) == lookups.MAX_FAILURES_IN_A_ROW
    assert stopped.value.report_dir is not None
    run_id = journal.runs()[0].run_id
    assert journal.run(run_id).status == "not_finished"
    assert lookups.drive_lookup(journal, api, run_id, settings).exit_code == ExitCode.OK


def test_a_timeout_stops_with_the_rows_pending(settings: Settings, journal: Journal) -> None:
    api = FakeVshop()
    sims = [api.add_card(make_iccid(n)) for n in range(1, 4)]
    result = lookups.start_lookup(
        journal, api, settings, pairs(*sims), LookupKind.VERIFY, timeout=0
    )
    assert result.exit_code == ExitCode.NOT_FINISHED and result.stopped == "timed out"
    assert not api.calls


def test_invalid_rows_refuse_the_file_before_a_run_exists(
    tmp_path: Path, settings: Settings, journal: Journal
) -> None:
    api = FakeVshop()
    source = tmp_path / "sims.csv"
    source.write_text(f"iccid\n{make_iccid(1)}\n12345\n")
    table = read_iccids(source)
    with pytest.raises(errors.InvalidRowsError):
        lookups.start_lookup(journal, api, settings, table, LookupKind.VERIFY)
    assert not api.calls and not journal.runs()
    result = lookups.start_lookup(
        journal, api, settings, table, LookupKind.VERIFY, skip_invalid=True,
        report_dir=tmp_path / "r",
    )  # fmt: skip
    rows = items_csv(tmp_path / "r")
    assert rows["12345"]["outcome"] == "invalid" and rows["12345"]["reason_code"] == "bad_length"
    assert result.counts["invalid"] == 1


def test_a_duplicated_member_is_asked_once(settings: Settings, journal: Journal) -> None:
    api = FakeVshop()
    sim = api.add_card(make_iccid(1))
    result = lookups.start_lookup(
        journal, api, settings, [(sim, "G1"), (sim, "G2")], LookupKind.VERIFY
    )
    assert api.calls[("verify", sim)] == 1
    assert [a.outcome for a in lookups.load_run(journal, result.run_id).answers] == [
        "verified",
        "duplicate",
    ]


def test_a_registered_reporter_gets_the_run_and_decides_the_exit_code(
    settings: Settings, journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lookups, "_REPORTERS", {})
    seen: list[lookups.LookupRun] = []

    def reporter(run: lookups.LookupRun) -> ExitCode:
        seen.append(run)
        return ExitCode.DRIFT

    lookups.register_reporter(LookupKind.PLANS, reporter)
    api = FakeVshop()
    sim = api.add_card(make_iccid(1))
    result = lookups.start_lookup(
        journal, api, settings, pairs(sim), LookupKind.PLANS,
        options={"output": "plans.xlsx", lookups.OPTION_AREA: "欧洲"},
    )  # fmt: skip
    assert result.exit_code == ExitCode.DRIFT
    assert seen[0].options["output"] == "plans.xlsx"
    plans = seen[0].answers[0].plans
    assert plans is not None and str(plans[0].price) == "12.90"
    assert journal.run(result.run_id).exit_code == ExitCode.DRIFT


def test_options_changed_in_the_journal_refuse_the_run(
    settings: Settings, journal: Journal
) -> None:
    api = FakeVshop()
    sim = api.add_card(make_iccid(1), renewal=True)
    api.quota_left = 0
    result = lookups.start_lookup(journal, api, settings, pairs(sim), LookupKind.CANCEL_RENEWAL)
    assert result.exit_code == ExitCode.NOT_FINISHED
    db = journal._db
    details = json.loads(db.execute("SELECT details FROM runs").fetchone()[0])
    details["options"] = {"yes": True}
    db.execute("UPDATE runs SET details = ?", (json.dumps(details),))
    db.commit()
    api.quota_left = None
    with pytest.raises(errors.RunTampered):
        lookups.drive_lookup(journal, api, result.run_id, settings)
    assert not api.calls


def test_ctrl_c_records_the_answers_in_flight_and_resume_asks_only_the_rest(
    settings: Settings, journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = FakeVshop(max_in_flight=2)
    sims = [api.add_card(make_iccid(n)) for n in range(1, 7)]
    answer = api.verify_card

    def verify_then_ctrl_c(iccid: str) -> object:
        if iccid == sims[1]:
            _thread.interrupt_main()  # as Ctrl-C would, while the driver waits for answers
            time.sleep(0.2)
        return answer(iccid)

    monkeypatch.setattr(api, "verify_card", verify_then_ctrl_c)
    first = lookups.start_lookup(journal, api, settings, pairs(*sims), LookupKind.VERIFY)
    assert first.exit_code == ExitCode.NOT_FINISHED and first.stopped == "interrupted"
    assert journal.run(first.run_id).status == "not_finished"
    answers = lookups.load_run(journal, first.run_id).answers
    recorded = {a.iccid for a in answers if a.outcome == "verified"}
    assert sims[1] in recorded  # the call on the wire at Ctrl-C was answered and journaled
    assert len(recorded) < len(sims)
    monkeypatch.setattr(api, "verify_card", answer)
    again = lookups.drive_lookup(journal, api, first.run_id, settings)
    assert again.exit_code == ExitCode.OK
    assert {api.calls[("verify", sim)] for sim in recorded} == {1}  # never asked again
    assert sum(api.calls.values()) <= len(sims) + api.pacer.max_in_flight


@pytest.mark.parametrize(
    ("text", "seconds"), [("0", 0.0), ("90s", 90.0), ("30m", 1800.0), ("12h", 43200.0),
                          ("2D", 172800.0), (" 1 h ", 3600.0)]
)  # fmt: skip
def test_max_age_reads_durations(text: str, seconds: float) -> None:
    assert lookups.parse_max_age(text) == seconds


@pytest.mark.parametrize("text", ["12", "-1h", "1.5h", "h", "", "12 hours", "1e3s"])
def test_max_age_refuses_what_is_no_duration(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        lookups.parse_max_age(text)


def test_a_cached_answer_that_cannot_be_read_is_asked_again(
    settings: Settings, journal: Journal
) -> None:
    api = FakeVshop()
    sim = api.add_card(make_iccid(1))
    lookups.start_lookup(journal, api, settings, pairs(sim), LookupKind.VERIFY)
    with sqlite3.connect(settings.home / CACHE_NAME) as db:
        db.execute('UPDATE answers SET answer = \'{"value": {"nonsense": 1}}\'')
    db.close()
    result = lookups.start_lookup(journal, api, settings, pairs(sim), LookupKind.VERIFY)
    assert api.calls[("verify", sim)] == 2
    assert lookups.load_run(journal, result.run_id).answers[0].outcome == "verified"


def test_a_version_2_journal_gains_the_answers_table(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "old" / "journal.db"
    Journal(path).close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE answers")
        db.execute("PRAGMA user_version = 2")
    db.close()
    api = FakeVshop()
    sim = api.add_card(make_iccid(1))
    with Journal(path) as journal:
        result = lookups.start_lookup(journal, api, settings, pairs(sim), LookupKind.VERIFY)
        assert journal.call_counts(result.run_id) == {"verify api": 1}
    with sqlite3.connect(path) as db:
        assert (
            db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
        )  # migrated to the current schema
    db.close()


def test_a_run_driven_elsewhere_is_locked(settings: Settings, journal: Journal) -> None:
    api = FakeVshop()
    sim = api.add_card(make_iccid(1))
    api.quota_left = 0
    first = lookups.start_lookup(journal, api, settings, pairs(sim), LookupKind.VERIFY)
    api.quota_left = None
    lock = bulk.run_lock_name(first.run_id)
    with exclusive(settings.home, lock, "run", holder="test"), pytest.raises(errors.RunLocked):
        lookups.drive_lookup(journal, api, first.run_id, settings)
    assert ("verify", sim) not in api.calls


def test_progress_counts_each_sim_taken_up_and_finished(
    settings: Settings, journal: Journal
) -> None:
    api = FakeVshop()
    sims = [api.add_card(make_iccid(n)) for n in range(1, 5)]
    seen = {"total": 0, "submitted": 0, "finished": 0}

    @contextmanager
    def watch(total: int) -> Iterator[Progress]:
        seen["total"] = total

        def count(key: str) -> Callable[[int], None]:
            return lambda n: seen.__setitem__(key, seen[key] + n)

        yield Progress(submitted=count("submitted"), finished=count("finished"))

    lookups.start_lookup(journal, api, settings, pairs(*sims), LookupKind.STATUS, progress=watch)
    assert seen == {"total": 4, "submitted": 4, "finished": 4}
