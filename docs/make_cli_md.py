"""Write docs/cli.md, the reference of every command and option, from the Click tree itself.

Run `make docs` (or `python docs/make_cli_md.py`) after changing a command; tests/test_docs.py
fails while docs/cli.md differs from what this script writes. Hidden commands and options (test
knobs) are left out, as in `--help`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import click

from jobs.cli import cli

HERE = Path(__file__).resolve().parent
TARGET = HERE / "cli.md"
PROG = "lf-bulk"
WIDTH = 100  # fixed, so that the output does not depend on the terminal

HEADER = """\
# lf-bulk command reference

Generated from the code by `make docs` (`docs/make_cli_md.py`); do not edit by hand. The README
shows the commands in use; this page is each command's `--help`.
"""


def commands(
    command: click.Command, path: tuple[str, ...], ctx: click.Context
) -> Iterator[tuple[tuple[str, ...], click.Command, click.Context]]:
    """Every visible command under `command` (itself first), with its path and context."""
    yield path, command, ctx
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            yield from commands(sub, (*path, name), click.Context(sub, info_name=name, parent=ctx))


def root_context() -> click.Context:
    return click.Context(cli, info_name=PROG, terminal_width=WIDTH, **cli.context_settings)


def render() -> str:
    parts = [HEADER]
    for path, command, ctx in commands(cli, (), root_context()):
        title = " ".join((PROG, *path))
        parts.append(f"\n## {title}\n\n```text\n{command.get_help(ctx).rstrip()}\n```\n")
    return "".join(parts)


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else TARGET
    target.write_text(render(), encoding="utf-8")
    print(target)


if __name__ == "__main__":
    main()
