"""The console's job pages, library side: uploads, validation, plans, jobs, reconcile, finance.

No Starlette here: these are the functions the pages render, driven against a real sandbox.
"""

from __future__ import annotations

import io
import os
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook

from lf_bulk import errors, runs
from lf_bulk.console import finance_data, jobplans, reconcile_data, uploads
from lf_bulk.console.jobplans import Action
from lf_bulk.exitcodes import ExitCode
from lf_bulk.iccid import with_check_digit
from lf_bulk.sandbox.seed import EMPTY_GROUP, PILOT_GROUP
from lf_bulk.sandbox.server import SandboxServer
from lf_bulk.settings import SANDBOX_PARTNER_CODE, Settings, open_session

from clihelp import read_items

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")


def settings_for(server: SandboxServer, home: Path) -> Settings:
    return Settings(
        env="uat", base_url=server.base_url, partner_code=SANDBOX_PARTNER_CODE, home=home,
        rate_per_second=200, max_in_flight=4,
    )  # fmt: skip


def upload_bytes(folder: Path, name: str, data: bytes, **kw: int) -> uploads.Upload:
    return uploads.save_upload(folder, name, io.BytesIO(data), **kw)


def csv_of(iccids: list[str], header: str = "iccid") -> bytes:
    return (header + "\n" + "".join(f"{i}\n" for i in iccids)).encode()


def xlsx_bytes(sheets: dict[str, list[list[object]]]) -> bytes:
    book = Workbook()
    book.remove(book.active)  # type: ignore[arg-type]
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


GOOD = with_check_digit("894450010219830482")
BAD_CHECKSUM = GOOD[:-1] + str((int(GOOD[-1]) + 1) % 10)  # one digit mistyped


# ---------------------------------------------------------------- uploads


def test_an_upload_is_stored_under_a_random_id_never_its_own_name(tmp_path: Path) -> None:
    upload = upload_bytes(tmp_path / "up", "../../<script>x.csv", csv_of([GOOD]))
    assert upload.original_name == "../../<script>x.csv"  # metadata only, never a path
    assert upload.path == tmp_path / "up" / upload.upload_id / "upload.csv"
    assert upload.path.read_bytes() == csv_of([GOOD])
    assert sorted(p.name for p in (tmp_path / "up").rglob("*")) == sorted(
        [upload.upload_id, "upload.csv", "upload.json"]
    )
    assert os.stat(upload.folder).st_mode & 0o077 == 0
    again = uploads.load_upload(tmp_path / "up", upload.upload_id)
    assert again.original_name == upload.original_name and again.size == upload.size
    assert upload_bytes(tmp_path / "up", "C:\\fakepath\\a.csv", b"x").original_name == "a.csv"


@pytest.mark.parametrize("name", ["list.exe", "list.xls", "list", "list.csv.html"])
def test_only_csv_and_xlsx_uploads_are_taken(tmp_path: Path, name: str) -> None:
    with pytest.raises(errors.InputError, match=r"\.csv or \.xlsx"):
        upload_bytes(tmp_path / "up", name, b"iccid\n")
    assert not any((tmp_path / "up").glob("*/*"))


def test_an_upload_over_the_limit_is_refused_and_nothing_is_kept(tmp_path: Path) -> None:
    with pytest.raises(errors.UploadTooLarge, match="larger than"):
        upload_bytes(tmp_path / "up", "big.csv", b"x" * 5000, max_bytes=4096)
    assert list((tmp_path / "up").iterdir()) == []


@pytest.mark.parametrize("bad_id", ["../etc", "a" * 5, "", "x/../../y" + "a" * 20])
def test_a_malformed_or_unknown_upload_id_is_not_there(tmp_path: Path, bad_id: str) -> None:
    with pytest.raises(errors.InputError, match="is not there"):
        uploads.load_upload(tmp_path, bad_id)


def test_uploads_older_than_a_day_are_removed(tmp_path: Path) -> None:
    old = upload_bytes(tmp_path, "a.csv", csv_of([GOOD]))
    new = upload_bytes(tmp_path, "b.csv", csv_of([GOOD]))
    os.utime(old.folder, (0, 0))
    assert uploads.remove_old_uploads(tmp_path) == 1
    assert not old.folder.exists() and new.folder.exists()


def test_choices_are_remembered_with_the_upload(tmp_path: Path) -> None:
    upload = upload_bytes(tmp_path, "a.csv", csv_of([GOOD]))
    uploads.remember(upload, action="add", group_id=PILOT_GROUP)
    loaded = uploads.load_upload(tmp_path, upload.upload_id)
    assert loaded.choice("action") == "add" and loaded.choice("group_id") == PILOT_GROUP
    uploads.remember(loaded, group_id=None)
    assert uploads.load_upload(tmp_path, upload.upload_id).choice("group_id") is None


# ---------------------------------------------------------------- inspecting and validating


def test_a_workbook_with_two_sheets_lists_them_and_asks(tmp_path: Path) -> None:
    data = xlsx_bytes({"Notes": [["hello"]], "SIMs": [["Name", "SIM_ID"], ["a", GOOD]]})
    upload = upload_bytes(tmp_path, "two.xlsx", data)
    seen = uploads.inspect_upload(upload)
    assert seen.sheets == ("Notes", "SIMs") and seen.sheet is None and seen.needs_choice
    chosen = uploads.inspect_upload(upload, sheet="SIMs")
    assert chosen.headers == ("Name", "SIM_ID") and chosen.column == "SIM_ID"
    assert not chosen.needs_choice


def test_a_file_without_an_iccid_header_asks_for_the_column(tmp_path: Path) -> None:
    upload = upload_bytes(tmp_path, "c.csv", f"name,card\nx,{GOOD}\n".encode())
    seen = uploads.inspect_upload(upload)
    assert seen.headers == ("name", "card") and seen.column == "" and seen.needs_choice
    table, checked = uploads.validate_iccids(upload, column="card")
    assert checked.ok and table.valid_iccids() == [GOOD]


def test_validation_names_each_rejected_row_and_gives_the_numeric_cell_hint(
    tmp_path: Path,
) -> None:
    rows: list[list[object]] = [["ICCID"], [GOOD], [BAD_CHECKSUM], [8.9852420180910e19], [GOOD]]
    upload = upload_bytes(tmp_path, "bad.xlsx", xlsx_bytes({"S": rows}))
    _, checked = uploads.validate_iccids(upload)
    assert not checked.ok
    assert [(r.row, r.reason_code) for r in checked.rows] == [
        (3, "bad_checksum"), (4, "numeric_cell"), (5, "duplicate"),
    ]  # fmt: skip
    assert checked.rows[0].value == BAD_CHECKSUM
    assert "Format the column as Text" in checked.numeric_hint
    assert (checked.counts.valid, checked.counts.invalid, checked.counts.duplicates) == (1, 2, 1)


def test_an_unreadable_file_is_named_by_the_users_name_not_the_stored_path(
    tmp_path: Path,
) -> None:
    upload = upload_bytes(tmp_path, "mine.xlsx", b"PK\x03\x04 not really a workbook")
    with pytest.raises(errors.InputError) as caught:
        uploads.validate_iccids(upload)
    assert "mine.xlsx" in str(caught.value) and str(upload.folder) not in str(caught.value)


# ---------------------------------------------------------------- plans and jobs (sandbox)


def test_the_add_plan_has_rows_counts_members_and_calls_against_the_quota(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    settings = settings_for(sandbox, tmp_path / "h")
    member = sandbox.state.members(PILOT_GROUP)[0]
    fresh = sandbox.state.ungrouped_sims(2)
    upload = upload_bytes(tmp_path / "up", "a.csv", csv_of([*fresh, member]))
    table, _ = uploads.validate_iccids(upload)
    sent_before = len(sandbox.state.mutation_log())
    with open_session(settings) as session:
        plan = jobplans.plan_job(
            Action.ADD, session.client, settings, table, group_id=PILOT_GROUP,
            report_dir=tmp_path / "plan",
        )  # fmt: skip
    assert plan.to_change == 2 and plan.already == 1
    assert plan.outcomes == {"would_add": 2, "already_member": 1}
    assert [i.outcome for i in plan.items] == ["would_add", "would_add", "already_member"]
    assert plan.members_before == len(sandbox.state.members(PILOT_GROUP))
    assert plan.quota is not None and plan.quota.needed == plan.calls == 4
    assert plan.consent is None and plan.guard is None
    assert len(sandbox.state.mutation_log()) == sent_before


def test_a_plan_refuses_invalid_rows_unless_skipped(sandbox: SandboxServer, tmp_path: Path) -> None:
    settings = settings_for(sandbox, tmp_path / "h")
    upload = upload_bytes(tmp_path / "up", "a.csv", csv_of([GOOD, BAD_CHECKSUM]))
    table, _ = uploads.validate_iccids(upload)
    with open_session(settings) as session:
        for action in (Action.ADD, Action.VERIFY):
            with pytest.raises(errors.InputError):
                jobplans.plan_job(
                    action, session.client, settings, table, group_id=PILOT_GROUP,
                    report_dir=tmp_path / "plan",
                )  # fmt: skip
        plan = jobplans.plan_job(
            Action.VERIFY, session.client, settings, table, skip_invalid=True,
            report_dir=tmp_path / "plan",
        )  # fmt: skip
    assert plan.outcomes == {"would_look_up": 1, "invalid": 1} and plan.calls == 1


def test_removing_most_of_a_group_needs_the_typed_number_and_sends_nothing_without_it(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    settings = settings_for(sandbox, tmp_path / "h")
    members = sandbox.state.members(PILOT_GROUP)
    leaving = members[: len(members) // 2]
    upload = upload_bytes(tmp_path / "up", "r.csv", csv_of(leaving))
    table, _ = uploads.validate_iccids(upload)
    with open_session(settings) as session:
        plan = jobplans.plan_job(
            Action.REMOVE, session.client, settings, table, group_id=PILOT_GROUP,
            report_dir=tmp_path / "plan",
        )  # fmt: skip
    assert plan.guard is not None and plan.guard.tripped
    assert (plan.guard.members, plan.guard.removals) == (len(members), len(leaving))
    assert plan.consent == len(leaving)
    sent_before = len(sandbox.state.mutation_log())
    with open_session(settings) as session:
        for typed in ("", "yes", str(len(leaving) - 1)):
            job = jobplans.job_for(
                Action.REMOVE, lambda: runs.open_journal(settings.home), lambda: session.client,
                settings, table, group_id=PILOT_GROUP, consent=typed,
                report_dir=tmp_path / "r",
            )  # fmt: skip
            with pytest.raises(errors.PlanRefused, match=f"type {len(leaving)}"):
                job(runs.no_progress, lambda line: None)
    assert len(sandbox.state.mutation_log()) == sent_before
    assert len(sandbox.state.members(PILOT_GROUP)) == len(members)
    assert not (settings.home / "journal.db").exists() or not runs.listing(
        runs.open_journal(settings.home), settings.home
    )


def test_a_confirmed_add_is_an_ordinary_journaled_run(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    settings = settings_for(sandbox, tmp_path / "h")
    fresh = sandbox.state.ungrouped_sims(3)
    upload = upload_bytes(tmp_path / "up", "a.csv", csv_of(fresh))
    table, _ = uploads.validate_iccids(upload)
    with open_session(settings) as session:
        job = jobplans.job_for(
            Action.ADD, lambda: runs.open_journal(settings.home), lambda: session.client,
            settings, table, group_id=PILOT_GROUP, report_dir=tmp_path / "r",
        )  # fmt: skip
        result = job(runs.no_progress, lambda line: None)
    assert result.exit_code == ExitCode.OK and result.counts.get("added") == 3
    assert set(fresh) <= set(sandbox.state.members(PILOT_GROUP))
    assert [i["outcome"] for i in read_items(result.report_dir)] == ["added"] * 3
    with runs.open_journal(settings.home) as journal:
        assert [r["run_id"] for r in runs.listing(journal, settings.home)] == [result.run_id]


def test_consent_is_the_exact_number() -> None:
    jobplans.check_consent(None, "")
    jobplans.check_consent(1200, " 1,200 ")
    for typed in ("", "1199", "all", "1200x"):
        with pytest.raises(errors.PlanRefused):
            jobplans.check_consent(1200, typed)


# ---------------------------------------------------------------- reconcile


def test_reconcile_drift_per_category_and_group_then_apply_with_consent(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    settings = settings_for(sandbox, tmp_path / "h")
    members = sandbox.state.members(PILOT_GROUP)
    keep = members[: len(members) // 2]  # the other half is unexpected: a mass removal
    fresh = sandbox.state.ungrouped_sims(2)
    data = ("iccid,group_id\n" + "".join(f"{i},{PILOT_GROUP}\n" for i in [*keep, *fresh])).encode()
    upload = upload_bytes(tmp_path / "up", "desired.csv", data)
    table = runs.read_desired(upload.path)
    with open_session(settings) as session:
        view = reconcile_data.compare(session.client, settings, table, report_dir=tmp_path / "c")
    removals = len(members) - len(keep)
    assert view.counts["missing"] == 2 and view.counts["unexpected"] == removals
    assert view.changes == 2 + removals and view.removals == removals
    (group,) = view.groups
    assert (group.group_id, group.members, group.removals) == (PILOT_GROUP, len(members), removals)
    assert group.counts["in_sync"] == len(keep)
    assert view.consent == removals
    with pytest.raises(errors.InputError, match="most changes"):
        reconcile_data.apply_options(view, "", str(removals))
    with pytest.raises(errors.PlanRefused, match=f"type {removals}"):
        reconcile_data.apply_options(view, str(view.changes), "")
    options = reconcile_data.apply_options(view, str(view.changes), str(removals))
    assert options.apply and options.max_changes == view.changes
    with open_session(settings) as session:
        job = reconcile_data.apply_job(
            lambda: runs.open_journal(settings.home), lambda: session.client, settings, table,
            options, report_dir=tmp_path / "a",
        )  # fmt: skip
        result = job(runs.no_progress, lambda line: None)
    assert result.exit_code == ExitCode.OK, result
    assert sorted(sandbox.state.members(PILOT_GROUP)) == sorted([*keep, *fresh])


def test_reconcile_apply_refuses_a_limit_below_the_plan(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    settings = settings_for(sandbox, tmp_path / "h")
    fresh = sandbox.state.ungrouped_sims(3)
    data = ("iccid,group_id\n" + "".join(f"{i},{EMPTY_GROUP}\n" for i in fresh)).encode()
    table = runs.read_desired(upload_bytes(tmp_path / "up", "d.csv", data).path)
    with open_session(settings) as session:
        view = reconcile_data.compare(session.client, settings, table, report_dir=tmp_path / "c")
        assert view.consent is None and view.changes == 3
        options = reconcile_data.apply_options(view, "2", "")
        job = reconcile_data.apply_job(
            lambda: runs.open_journal(settings.home), lambda: session.client, settings, table,
            options, report_dir=tmp_path / "a",
        )  # fmt: skip
        with pytest.raises(errors.PlanRefused, match="--max-changes is 2"):
            job(runs.no_progress, lambda line: None)
    assert sandbox.state.members(EMPTY_GROUP) == []


# ---------------------------------------------------------------- finance


def test_the_group_export_totals_are_exact_per_currency(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    settings = settings_for(sandbox, tmp_path / "h")
    with open_session(settings) as session:
        made = finance_data.export_by_group(session.client, PILOT_GROUP, tmp_path / "fin")
    assert finance_data.EXPORT_NAME.fullmatch(made.name) and made.path.is_file()
    export = made.export
    assert export.orders, "the sandbox's pilot group has orders"
    by_currency: dict[str, Decimal] = {}
    for item in export.orders:
        if item.order.amount is not None:
            by_currency[item.order.currency] = (
                by_currency.get(item.order.currency, Decimal(0)) + item.order.amount
            )
    totals: dict[str, Decimal] = {}
    for total in export.by_status:
        totals[total.currency] = totals.get(total.currency, Decimal(0)) + total.amount
    assert totals == by_currency
    cells = {c for row in load_workbook(made.path, read_only=True)["Orders"].values for c in row}
    assert {item.order.order_id for item in export.orders} <= cells


def test_pushed_orders_of_an_empty_home_are_none(tmp_path: Path) -> None:
    listing = finance_data.pushed_orders(tmp_path)
    assert listing.pushes == [] and listing.totals == []


def test_an_orders_file_is_validated_as_orders_create_validates_it(tmp_path: Path) -> None:
    other = with_check_digit("894450010219830483")
    data = (
        "iccid,package_code,periods,amount,currency,pay_id\n"
        f"{GOOD},P1,1,10.00,EUR,pay-1\n"
        f"{other},P1,1,10.001,EUR,pay-2\n"
        f"{BAD_CHECKSUM},P1,1,5,EUR,pay-3\n"
        f"{other},P1,1,5,EUR,pay-1\n"
    ).encode()
    upload = upload_bytes(tmp_path, "orders.csv", data)
    order_input, checked = uploads.validate_orders(upload)
    assert not checked.ok and checked.counts.valid == 1
    codes = {r.row: r.reason_code for r in checked.rows}
    assert codes[3] == "bad_amount" and codes[5] == "duplicate_pay_id"
    assert codes[4] == "bad_checksum"
    assert all(r.explanation for r in checked.rows)
    assert len(order_input.rows) == 4
