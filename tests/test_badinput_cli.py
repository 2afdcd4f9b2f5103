"""The bad-input corpus through the CLI: a clear message, exit 2, no traceback, nothing sent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lf_bulk.sandbox.seed import PILOT_GROUP
from lf_bulk.sandbox.server import SandboxServer, running_sandbox

from badinput_corpus import BUILDERS, CorpusCase
from clihelp import base_args, expect, invoke

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    path = tmp_path_factory.mktemp("sandbox") / "s.db"
    with running_sandbox(path, "rate=400,concurrency=8", sims=500) as running:
        yield running


@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
def test_corpus_file_through_sims_add(build, server: SandboxServer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    case: CorpusCase = build(tmp_path)
    options = [f"--{k}={v}" for k, v in case.options.items() if k in ("sheet", "column")]
    args = [*base_args(tmp_path / "home", server.base_url), "sims", "add", PILOT_GROUP]
    args += [str(case.path), *options, "--dry-run", "--report-dir", str(tmp_path / "r")]
    sent_before = len(server.state.mutation_log())

    result = invoke(args)

    assert len(server.state.mutation_log()) == sent_before, "a bad file caused a mutating call"
    bad_rows = {row: reason for row, reason in (case.rows or {}).items() if reason is not None}
    if case.error is not None:
        expect(result, 2)
        assert case.error.lower() in result.stderr.lower()
        assert case.path.name in result.stderr
    elif bad_rows:
        expect(result, 2)
        for row, reason in bad_rows.items():
            assert f"row {row}: {reason}" in result.stderr or len(bad_rows) > 10
        assert (tmp_path / "r" / "items.csv").exists()
    else:
        expect(result, 0)


@pytest.mark.slow
def test_fifty_megabyte_file_is_read_and_planned(server: SandboxServer, tmp_path: Path) -> None:
    from badinput_corpus import large_csv

    case = large_csv(tmp_path)
    assert case.path.stat().st_size >= 45_000_000
    args = [*base_args(tmp_path / "home", server.base_url), "sims", "add", PILOT_GROUP]
    result = expect(
        invoke([*args, str(case.path), "--dry-run", "--report-dir", str(tmp_path / "r")]), 0
    )
    assert f"{case.row_count} valid ICCIDs" in result.stderr
    assert server.state.mutation_log() == []
