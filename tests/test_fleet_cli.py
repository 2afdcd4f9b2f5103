"""The look-up commands' shell: usage errors before anything is sent, durations, output paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from jobs import context, lookup_options
from jobs.cli import cli
from jobs.lookup_options import Duration, prepare_output
from lf_bulk import fleet
from lf_bulk.api_values import Group
from lf_bulk.errors import InputError


def run(args: list[str], *, expect: int) -> Result:
    result = CliRunner().invoke(cli, ["--no-progress", *args])
    assert result.exit_code == expect, f"{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result


@pytest.fixture
def no_api(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the API must not be called")

    monkeypatch.setattr(context, "open_session", refuse)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sims", "status"], "give one of FILE, --group"),
        (["sims", "status", "x.csv", "--group", "G1"], "give one of FILE, --group"),
        (["sims", "plans", "--group", "G1", "--all-groups"], "give one of FILE, --group"),
        (["renewals", "list", "x.csv", "--all-groups"], "give one of FILE, --group"),
        (["sims", "status", "--group", "G1", "-o", "fleet.txt"], "use a .xlsx or .csv"),
        (["sims", "status", "--group", "G1", "--max-age", "12x"], "not a duration"),
        (["sims", "status", "--group", "G 1"], "Invalid value for '--group'"),
        (["sims", "status", "--group", "G1", "--expiring-within", "-1"], "--expiring-within"),
        (["sims", "plans", "--group", "G1", "-o", "nowhere/x.xlsx"], "is not a folder"),
        (["renewals", "cancel"], "Missing argument 'FILE'"),
    ],
)
def test_usage_errors_exit_2_before_any_call(no_api: None, args: list[str], message: str) -> None:
    assert message in run(args, expect=2).stderr


@pytest.mark.parametrize("command", [["sims", "status"], ["sims", "plans"], ["renewals", "list"]])
def test_an_invalid_row_stops_the_job_before_any_call(
    no_api: None, tmp_path: Path, command: list[str]
) -> None:
    source = tmp_path / "sims.csv"
    source.write_text("iccid\n8988303000000000010\n8988303000000000011\n", encoding="utf-8")
    result = run([*command, str(source), "-o", str(tmp_path / "out.xlsx")], expect=2)
    assert "bad_checksum" in result.stderr or "invalid" in result.stderr
    assert not (tmp_path / "out.xlsx").exists()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0.0), ("45s", 45.0), ("30m", 1800.0), ("12h", 43200.0), ("2d", 172800.0)],
)
def test_max_age_durations(no_api: None, text: str, seconds: float) -> None:
    assert Duration().convert(text, None, None) == seconds


@pytest.mark.parametrize("text", ["", "h", "-1h", "1w", "1h30m", "nan", "90", "1.5h"])
def test_not_durations(no_api: None, text: str) -> None:
    assert (
        "not a duration"
        in run(["sims", "status", "--group", "G1", "--max-age", text], expect=2).stderr
    )


def test_the_default_output_is_dated_and_absolute(tmp_path: Path) -> None:
    target = prepare_output(None, "fleet")
    assert target.is_absolute() and target.name.startswith("fleet-") and target.suffix == ".xlsx"
    assert prepare_output(tmp_path / "F.CSV", "fleet") == tmp_path / "F.CSV"


class FakeGroups:
    """The two client calls `fleet.member_rows` makes, over a fixed account."""

    def __init__(self, members: dict[str, list[str]]) -> None:
        self.members = members
        self.listed: list[str] = []

    def list_groups(self) -> list[Group]:
        return [Group(g, g, len(m)) for g, m in self.members.items()]

    def list_members(self, group_id: str, *, on_page: object = None) -> list[str]:
        self.listed.append(group_id)
        return self.members[group_id]


ACCOUNT = {"G1": ["8988303000000000010", "8988303000000000028"], "G2": ["8988303000000000036"]}


def test_member_rows_of_some_groups_and_of_all() -> None:
    client = FakeGroups(ACCOUNT)
    assert fleet.member_rows(client, ["G2", "G2"]) == [("8988303000000000036", "G2")]  # type: ignore[arg-type]
    assert client.listed == ["G2"]
    assert fleet.member_rows(client, None) == [  # type: ignore[arg-type]
        ("8988303000000000010", "G1"), ("8988303000000000028", "G1"), ("8988303000000000036", "G2"),
    ]  # fmt: skip


def test_member_rows_refuses_an_unknown_group_before_reading_any_member() -> None:
    client = FakeGroups(ACCOUNT)
    with pytest.raises(InputError, match="group G3 does not exist"):
        fleet.member_rows(client, ["G1", "G3"])  # type: ignore[arg-type]
    assert client.listed == []


def test_an_output_folder_that_cannot_be_written_is_refused_before_any_call(
    no_api: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(folder: Path) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(lookup_options, "prove_writable", refuse)
    result = run(["sims", "status", "--group", "G1", "-o", str(tmp_path / "f.xlsx")], expect=2)
    assert "cannot be written (Permission denied)" in result.stderr


def test_renewals_cancel_yes_is_refused_in_a_config_file(no_api: None, tmp_path: Path) -> None:
    config = tmp_path / "lf-bulk.toml"
    config.write_text("[renewals.cancel]\nyes = true\n", encoding="utf-8")
    source = tmp_path / "sims.csv"
    source.write_text("iccid\n8988303000000000010\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "renewals", "cancel", str(source)])
    assert result.exit_code == 1, result.stderr
    assert "'renewals.cancel.yes' cannot be set in a config file" in result.stderr
