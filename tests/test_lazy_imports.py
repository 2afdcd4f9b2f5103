"""Commands that read or write no table start without the heavy libraries (issue: start in a blink).

`lf-bulk --help` and `runs list` are run in a fresh interpreter, and the modules it imported are
compared with the libraries that only some commands need.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("pandas", "numpy", "openpyxl", "xlsxwriter", "python_calamine", "starlette", "uvicorn")
# Not heavy, but only a command that talks to the API needs them.
NETWORK = ("httpx", "httpcore", "tenacity", "tqdm")

PROBE = """
import json, sys
from jobs.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""
# The settings machinery and what it loads: `lf-bulk --help` builds the root group and its
# options from `lf_bulk.defaults` and reads none of it (a command's settings load when it runs).
SETTINGS_MACHINERY = (
    "lf_bulk.settings",
    "lf_bulk.models",
    "lf_bulk.wire",
    "lf_bulk.quota",
    "lf_bulk.store",
    "lf_bulk.errors",
    "lf_bulk.redaction",
    "jobs.context",
    "ssl",
    "logging",
    "tomllib",
    "difflib",
)
# Only a config file, a send or an error needs these: `runs list` with no config file does not.
NOT_FOR_LISTING = ("lf_bulk.quota", "lf_bulk.api_values", "ssl", "tomllib", "difflib")
# What drives a run: `runs list` reads the journal alone and needs none of it.
RUN_LIBRARY = (
    "lf_bulk.runs",
    "lf_bulk.engine",
    "lf_bulk.client",
    "lf_bulk.bulk",
    "lf_bulk.reports",
)


def _imported_modules(args: list[str]) -> tuple[set[str], str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1])), done.stdout


def _imported(args: list[str]) -> set[str]:
    """The top-level packages `lf-bulk ARGS` imported."""
    return {name.split(".")[0] for name in _imported_modules(args)[0]}


@pytest.mark.parametrize(
    "args",
    [["--help"], ["runs", "--help"], ["sims", "status", "--help"], ["notify", "--help"]],
    ids=["help", "runs-help", "status-help", "notify-help"],
)
def test_help_imports_no_heavy_library(args: list[str]) -> None:
    loaded = _imported(args)
    assert "jobs" in loaded and "click" in loaded
    assert loaded.isdisjoint(HEAVY + NETWORK), sorted(loaded & set(HEAVY + NETWORK))


@pytest.mark.parametrize("args", [["--help"], ["--version"]], ids=["help", "version"])
def test_the_root_help_loads_no_settings_machinery(args: list[str]) -> None:
    modules, shown = _imported_modules(args)
    assert "lf-bulk" in shown and "jobs.options" in modules
    assert modules.isdisjoint(SETTINGS_MACHINERY), sorted(modules & set(SETTINGS_MACHINERY))


def test_runs_list_loads_no_quota_ledger_config_reader_or_tls(tmp_path: Path) -> None:
    modules, _ = _imported_modules(["--home", str(tmp_path / "home"), "runs", "list"])
    assert "lf_bulk.settings" in modules  # the probe sees what a command does load
    assert modules.isdisjoint(NOT_FOR_LISTING), sorted(modules & set(NOT_FOR_LISTING))


def test_a_config_file_is_still_read_and_checked_when_its_reader_loads_late(
    tmp_path: Path,
) -> None:
    config = tmp_path / "lf.toml"
    config.write_text('envv = "uat"\n')
    done = subprocess.run(
        [sys.executable, "-m", "jobs", "--config", str(config), "--home", str(tmp_path / "h"),
         "runs", "list"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "unknown key 'envv'; did you mean 'env'?" in done.stderr
    config.write_text("env = [\n")
    done = subprocess.run(
        [sys.executable, "-m", "jobs", "--config", str(config), "runs", "list"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode != 0 and str(config) in done.stderr and "Traceback" not in done.stderr


def test_the_api_values_live_in_their_own_module_and_models_keeps_the_vocabularies() -> None:
    # Imported from where they are defined, so mypy --strict checks every name (a module
    # `__getattr__` serving them from models would let a misspelt import pass until it ran).
    import dataclasses
    import inspect

    from lf_bulk import api_values, models

    defined = [
        value
        for value in vars(api_values).values()
        if inspect.isclass(value) and value.__module__ == api_values.__name__
    ]
    assert len(defined) == 14 and all(dataclasses.is_dataclass(v) for v in defined)
    assert not hasattr(models, "__getattr__") and not hasattr(models, "Group")


def test_the_id_options_check_ids_with_the_wire_profiles_kinds() -> None:
    import click

    from jobs.options import GROUP_ID, REQUEST_ID
    from lf_bulk import wire

    assert GROUP_ID.kind is wire.IdKind.GROUP and REQUEST_ID.kind is wire.IdKind.REQUEST
    assert GROUP_ID.convert("G1000001", None, None) == "G1000001"
    with pytest.raises(click.BadParameter, match="group id"):
        GROUP_ID.convert("../G1", None, None)


def test_runs_list_imports_no_heavy_library(tmp_path: Path) -> None:
    loaded = _imported(["--home", str(tmp_path / "home"), "runs", "list"])
    assert loaded.isdisjoint(HEAVY + NETWORK), sorted(loaded & set(HEAVY + NETWORK))


@pytest.mark.parametrize("output_format", ["table", "json"])
def test_runs_list_reads_the_journal_without_the_run_library(
    tmp_path: Path, output_format: str
) -> None:
    from lf_bulk.journal import PlannedItem
    from lf_bulk.models import InputCounts
    from lf_bulk.run_listing import open_journal

    home = tmp_path / "home"
    with open_journal(home) as journal:
        run_id = journal.create_run(
            kind="sims", operation="ADD", group_id="G7", batch_size=500,
            items=[PlannedItem(2, "89852420000000000001", "ADD", "G7")],
            counts=InputCounts(1, 1, 0, 0),
        )  # fmt: skip
    modules, shown = _imported_modules(
        ["--home", str(home), "runs", "list", "--format", output_format]
    )
    assert run_id in shown and "G7" in shown and "interrupted" in shown
    assert "lf_bulk.journal" in modules  # the probe sees the modules the listing does load
    assert modules.isdisjoint(RUN_LIBRARY), sorted(modules & set(RUN_LIBRARY))


def test_a_command_that_reads_a_workbook_does_import_its_reader(tmp_path: Path) -> None:
    # The probe would pass if it could not see imports at all: show that it sees them.
    import xlsxwriter  # type: ignore[import-untyped, unused-ignore]

    listed = tmp_path / "list.xlsx"
    with xlsxwriter.Workbook(str(listed)) as workbook:
        sheet = workbook.add_worksheet("Data")
        sheet.write_string(0, 0, "iccid")
        sheet.write_string(1, 0, "8988")
    args = ["--home", str(tmp_path / "home"), "sims", "verify", str(listed)]
    loaded = _imported([*args, "--report-dir", str(tmp_path / "r")])
    assert "python_calamine" in loaded


def test_the_root_lists_every_command_group_with_its_own_summary() -> None:
    import importlib

    import click

    from jobs.cli import COMMAND_MODULES, COMMANDS, cli

    for name, summary in COMMANDS.items():
        module = COMMAND_MODULES.get(name, name)
        command = getattr(importlib.import_module(f"jobs.{module}"), name)
        assert isinstance(command, click.Command)
        assert command.get_short_help_str(500) == click.Command(
            name, help=summary
        ).get_short_help_str(500)
    jobs_dir = Path(__file__).resolve().parents[1] / "jobs"
    groups = {
        path.stem
        for path in jobs_dir.glob("*.py")
        if path.stem != "cli"
        and f"def {path.stem}(" in path.read_text(encoding="utf-8")
        and "@click.group" in path.read_text(encoding="utf-8")
    }
    assert groups <= set(COMMANDS), groups - set(COMMANDS)
    assert cli.get_command(click.Context(cli), "nothing-like-this") is None
