"""Rules the test suite keeps so that it stays fast, isolated and mergeable."""

from __future__ import annotations

import ast
import re
import time
from pathlib import Path

import pytest

from lf_bulk.sandbox.seed import MIN_SIMS
from lf_bulk.sandbox.server import running_sandbox

TESTS = Path(__file__).resolve().parent
TEST_MODULES = sorted(TESTS.glob("test_*.py"))


def imported_modules(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    if not re.search(r"^\s*(?:from|import)\s.*\btest_", text, re.MULTILINE):
        return set()  # no import names a test module: parsing them all is slower than the tests
    tree = ast.parse(text, filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", TEST_MODULES, ids=lambda p: p.name)
def test_no_test_module_imports_another(path: Path) -> None:
    # Shared helpers live in conftest.py, clihelp.py or badinput_corpus.py; importing a test
    # module runs (and, under pytest, may collect) its tests a second time.
    others = {p.stem for p in TEST_MODULES} - {path.stem}
    assert not imported_modules(path) & others, f"{path.name} imports a test module"


def test_a_sandbox_stops_in_milliseconds(tmp_path: Path) -> None:
    # Hundreds of tests and every in-process CLI run stop a sandbox; uvicorn's own shutdown takes
    # at least 0.1 s (and up to 0.2 s) even with nothing left to serve.
    stops = []
    for n in range(3):
        with running_sandbox(tmp_path / f"s{n}.db", sims=MIN_SIMS):
            stopping = time.perf_counter()
        stops.append(time.perf_counter() - stopping)
    assert min(stops) < 0.08, stops


HTTPX_CALLS = {"Client", "get", "post", "put", "patch", "delete", "head", "options", "request",
               "stream"}  # fmt: skip


def clients_loading_the_authorities(path: Path) -> list[int]:
    """Lines calling httpx for a client of its own (`httpx.Client(...)`, `httpx.get(...)`) with
    neither `verify=` nor `transport=`: each such client loads the certificate authorities."""
    text = path.read_text(encoding="utf-8")
    if "httpx." not in text:
        return []
    tree = ast.parse(text, filename=str(path))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "httpx"
        and node.func.attr in HTTPX_CALLS
        and not {k.arg for k in node.keywords} & {"verify", "transport"}
    ]


def test_the_suite_makes_its_http_clients_with_the_shared_tls_context() -> None:
    # About 70 ms of CPU a client, and the suite makes hundreds: tests/httphelp.py shares one.
    found = {
        str(path.relative_to(TESTS)): lines
        for path in sorted(TESTS.rglob("*.py"))
        if path.name != "httphelp.py" and (lines := clients_loading_the_authorities(path))
    }
    assert not found, f"use httphelp.http_client/http_get/http_post: {found}"
