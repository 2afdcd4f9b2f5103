"""The documentation tells the truth about the CLI (as sqlite-utils' tests/test_docs.py does).

Every visible command and option is in docs/cli.md, which is exactly what `make docs` writes; every
command appears in the README; the README's exit-code table is `lf_bulk.exitcodes.ExitCode`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from jobs.cli import cli
from lf_bulk.exitcodes import ExitCode

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CLI_MD = ROOT / "docs" / "cli.md"
TABLE_ROW = re.compile(r"^\| (?P<code>\d+) \| (?P<meaning>.+) \|$")


def visible_commands(
    command: click.Command = cli, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Walked independently of the generator, so that a generator bug cannot hide a command."""
    yield path, command
    if isinstance(command, click.Group):
        for name in sorted(command.list_commands(click.Context(command))):
            sub = command.get_command(click.Context(command), name)
            if sub is not None and not sub.hidden:
                yield from visible_commands(sub, (*path, name))


def visible_options(command: click.Command) -> list[str]:
    return [
        opt
        for param in command.params
        if isinstance(param, click.Option) and not param.hidden
        for opt in (*param.opts, *param.secondary_opts)
    ]


def hidden_options(command: click.Command) -> list[str]:
    return [
        opt
        for param in command.params
        if isinstance(param, click.Option) and param.hidden
        for opt in param.opts
    ]


def cli_md_sections() -> dict[str, str]:
    """docs/cli.md split by its `## lf-bulk ...` headings: title -> body."""
    parts = re.split(r"^## (lf-bulk.*)$", CLI_MD.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def title(path: tuple[str, ...]) -> str:
    return " ".join(("lf-bulk", *path))


COMMANDS = list(visible_commands())


def test_cli_md_is_what_make_docs_writes(tmp_path: Path) -> None:
    # In a fresh interpreter, as `make docs` runs it: Click caches each command's help option
    # once it is built, so a render inside the test session depends on the tests run before it.
    fresh = tmp_path / "cli.md"
    script = CLI_MD.parent / "make_cli_md.py"
    subprocess.run([sys.executable, str(script), str(fresh)], check=True, capture_output=True)
    expected = fresh.read_text(encoding="utf-8")
    assert CLI_MD.read_text(encoding="utf-8") == expected, "docs/cli.md is stale: run `make docs`"


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: title(p))
def test_every_command_and_option_is_in_cli_md(path: tuple[str, ...]) -> None:
    command = dict(COMMANDS)[path]
    sections = cli_md_sections()
    assert title(path) in sections, f"{title(path)} has no section in docs/cli.md"
    body = sections[title(path)]
    for opt in visible_options(command):
        assert re.search(rf"(?<![\w-]){re.escape(opt)}\b", body), f"{title(path)} {opt}"
    for opt in hidden_options(command):
        assert opt not in body, f"hidden {opt} of {title(path)} is documented"
    for param in command.params:
        if isinstance(param, click.Argument):
            assert param.make_metavar(click.Context(command)) in body, f"{title(path)} {param}"


def test_cli_md_documents_no_command_that_does_not_exist() -> None:
    assert set(cli_md_sections()) == {title(path) for path, _ in COMMANDS}


def test_hidden_options_exist_to_be_left_out() -> None:
    # A test knob; if it were ever shown, the test above would say so.
    assert "--sandbox-faults" in hidden_options(cli)


@pytest.mark.parametrize(
    "path",
    [p for p, c in COMMANDS if p and not isinstance(c, click.Group)],
    ids=lambda p: title(p),
)
def test_every_command_appears_in_the_readme(path: tuple[str, ...]) -> None:
    assert title(path) in README.read_text(encoding="utf-8"), f"README lacks `{title(path)}`"


def exit_code_table(text: str) -> dict[int, str]:
    section = text[text.index("### Exit codes") :]
    section = section[: section.index("\n#", 1)]
    return {
        int(m["code"]): m["meaning"]
        for line in section.splitlines()
        if (m := TABLE_ROW.match(line.strip()))
    }


def test_readme_exit_code_table_matches_exitcodes() -> None:
    table = exit_code_table(README.read_text(encoding="utf-8"))
    assert list(table) == sorted(table), "the table is in exit-code order"
    assert set(table) == {code.value for code in ExitCode}


def test_root_help_names_every_exit_code() -> None:
    help_text = " ".join((cli.help or "").split())
    for code in ExitCode:
        assert re.search(rf"\b{code.value} [a-z]", help_text), f"exit {code.value} in --help"
