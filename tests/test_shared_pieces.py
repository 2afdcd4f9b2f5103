"""Pieces written once (issue 11): each shared value or helper has one home, and the others use it.

Most tests here look at behaviour; a few read the source, where "written once" is the property
itself (a second copy of a constant behaves exactly like the first until someone changes one).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import re
from pathlib import Path
from typing import Any

import pytest

from lf_bulk import iccid, journal, orders, quota, reconcile, settings, sources, wire, xlsx
from lf_bulk.sandbox import faults, seed, state
from lf_bulk.sandbox.server import SandboxServer

from clihelp import base_args, expect, invoke

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "lf_bulk"


def files_module() -> Any:
    # Imported here, so that each test says for itself what is missing.
    return importlib.import_module("lf_bulk.files")


def library_sources() -> dict[Path, str]:
    return {
        path.relative_to(ROOT): path.read_text(encoding="utf-8")
        for path in sorted(LIBRARY.rglob("*.py"))
    }


# ---------------------------------------------------------------- lf_bulk.files


def test_the_writers_share_one_files_module() -> None:
    files = files_module()
    for name in ("atomic_file", "atomic_binary", "make_folders", "neutralise"):
        assert getattr(xlsx, name) is getattr(files, name), name
    assert files.neutralise("=1+1") == "'=1+1"
    assert files.neutralise("8985") == "8985"


def test_make_missing_folders_gives_its_mode_whatever_the_umask(tmp_path: Path) -> None:
    files = files_module()
    private, public = tmp_path / "home" / "inner", tmp_path / "reports" / "inner"
    old = os.umask(0)
    try:
        files.make_missing_folders(private, mode=0o700)
        files.make_folders(public)
    finally:
        os.umask(old)
    for folder in (private, private.parent):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    for folder in (public, public.parent):
        assert folder.stat().st_mode & 0o777 == 0o755, folder


def test_make_folders_refuses_a_file_where_the_folder_should_be(tmp_path: Path) -> None:
    files = files_module()
    (tmp_path / "taken").write_text("x")
    with pytest.raises(NotADirectoryError):
        files.make_folders(tmp_path / "taken")


def test_prove_writable_leaves_nothing_behind_and_fails_on_a_file(tmp_path: Path) -> None:
    files = files_module()
    files.prove_writable(tmp_path)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError):
        files.prove_writable(tmp_path / "file")
    assert (tmp_path / "file").read_text() == "x"


# ---------------------------------------------------------------- headers and rounded numbers


@pytest.mark.parametrize(
    "text", ["8.98524E+19", "7.00000001E+15", "8,98524e19", "1E-05", "9e9", "1.5E+3"]
)
def test_a_rounded_number_is_one_reason_for_an_iccid_and_an_order_key(text: str) -> None:
    assert iccid.looks_rounded(text)
    assert iccid.check(text)[1] is iccid.Reason.NUMERIC_CELL
    assert orders._id_reason(text) == str(iccid.Reason.NUMERIC_CELL)


@pytest.mark.parametrize("text", ["8985242018091034079", "E+19", "PO-1E5X", "1.5", "e5"])
def test_text_that_is_no_rounded_number_is_not_taken_for_one(text: str) -> None:
    assert not iccid.looks_rounded(text)
    assert orders._id_reason(text) != str(iccid.Reason.NUMERIC_CELL)


def test_the_rounded_number_pattern_is_written_once() -> None:
    holders = [path for path, text in library_sources().items() if "[eE]" in text]
    assert holders == [Path("lf_bulk/iccid.py")]


def test_headers_are_compared_one_way_for_iccid_lists_and_order_keys() -> None:
    assert sources.header_key("SIM_ID") == sources.header_key("sim id") == "simid"
    assert sources.header_key(" ICCID #: ") == "iccid"
    assert orders.is_iccid_header is sources.is_iccid_header
    assert sources.is_iccid_header("Sim-Id") and not sources.is_iccid_header("order id")
    holders = [path for path, text in library_sources().items() if r"[\s_\-.#:]" in text]
    assert holders == [Path("lf_bulk/sources.py")]


# ---------------------------------------------------------------- the batch limit


def test_the_batch_size_is_the_contracts_limit_everywhere() -> None:
    size = wire.DEFAULT_BATCH_SIZE
    assert size == wire.CONTRACT_V1.default_max_iccids
    assert size == reconcile.BATCH_SIZE
    max_batch = inspect.signature(journal.Journal.close_batch).parameters["max_batch"]
    assert max_batch.default == size
    assert state.Rules().max_iccids == size
    assert faults.FaultSpec().max_iccids == size


def _numbers_named_like_a_batch_limit(path: Path) -> list[str]:
    """Names containing 'batch' or 'max_iccids' given a number literal (assigned or default)."""
    found = []
    named = re.compile(r"batch|max_iccids", re.IGNORECASE)
    for node in ast.walk(ast.parse((ROOT / path).read_text(encoding="utf-8"))):
        pairs: list[tuple[str, ast.expr | None]] = []
        if isinstance(node, ast.Assign):
            pairs = [(ast.unparse(target), node.value) for target in node.targets]
        elif isinstance(node, ast.AnnAssign):
            pairs = [(ast.unparse(node.target), node.value)]
        elif isinstance(node, ast.arguments):
            positional = node.posonlyargs + node.args
            defaults = [None] * (len(positional) - len(node.defaults)) + list(node.defaults)
            pairs = [(a.arg, d) for a, d in zip(positional, defaults, strict=True)]
            pairs += [(a.arg, d) for a, d in zip(node.kwonlyargs, node.kw_defaults, strict=True)]
        for name, value in pairs:
            if (
                named.search(name)
                and isinstance(value, ast.Constant)
                and isinstance(value.value, int)
            ):
                found.append(f"{path}: {name} = {value.value}")
    return found


def test_the_batch_limit_is_written_only_in_the_wire_profile() -> None:
    written = [
        line
        for path in library_sources()
        if path != Path("lf_bulk/wire.py")
        for line in _numbers_named_like_a_batch_limit(path)
    ]
    assert written == []
    assert _numbers_named_like_a_batch_limit(Path("lf_bulk/wire.py")) == [
        f"lf_bulk/wire.py: default_max_iccids = {wire.CONTRACT_V1.default_max_iccids}"
    ]


# ---------------------------------------------------------------- the simulator


def test_the_fault_spec_starts_from_the_states_rules() -> None:
    assert faults.FaultSpec().rules() == state.Rules()
    spec_class = next(
        node
        for node in ast.walk(ast.parse(inspect.getsource(faults)))
        if isinstance(node, ast.ClassDef) and node.name == "FaultSpec"
    )
    mirrored = {"async_delay", "sim_locked_rate", "sim_internal_rate", "expiry", "max_iccids"}
    mirrored |= {"partners", "seed"}
    defaults = {
        ast.unparse(item.target): ast.unparse(item.value)
        for item in spec_class.body
        if isinstance(item, ast.AnnAssign) and item.value is not None
    }
    for name in mirrored:
        assert "RULES" in defaults[name], f"FaultSpec.{name} = {defaults[name]}"


def test_the_sandbox_partner_code_is_written_once() -> None:
    assert settings.SANDBOX_PARTNER_CODE == seed.PARTNER
    holders = [path for path, text in library_sources().items() if f'"{seed.PARTNER}"' in text]
    assert holders == [Path("lf_bulk/sandbox/__init__.py")]


def test_the_sandbox_serves_exactly_the_profiles_endpoints() -> None:
    from lf_bulk.sandbox.app import create_app

    profile = wire.CONTRACT_V1
    endpoints = profile.endpoints()
    assert list(endpoints) == [
        *("groups", "members", "add", "remove", "async_result", "order"),  # contract v1
        *("verify", "plans", "held_orders", "renewal", "cancel_renewal"),  # v2: Vshop
        *("create_order", "payment_result"),
    ]
    every_endpoint_field = {
        name for name, value in vars(profile).items() if isinstance(value, wire.Endpoint)
    }
    assert set(endpoints) == every_endpoint_field
    # Building the routes touches no state: the state is used only when a request comes in.
    app = create_app(None)  # type: ignore[arg-type]
    served = {
        (route.path, method)
        for route in app.routes
        for method in (getattr(route, "methods", None) or ()) - {"HEAD"}
    }
    assert served == {(e.path, e.method) for e in endpoints.values()}


# ---------------------------------------------------------------- doctor


def test_doctor_names_the_contract_version(sandbox: SandboxServer, tmp_path: Path) -> None:
    from lf_bulk.doctor import describe_contract

    assert describe_contract(wire.CONTRACT_V1) == f"{wire.CONTRACT_VERSION} ({wire.CONTRACT_DOC})"
    result = expect(invoke([*base_args(tmp_path, sandbox.base_url), "doctor"]), 0)
    assert f"contract     {wire.CONTRACT_VERSION} ({wire.CONTRACT_DOC})\n" in result.stdout


# ---------------------------------------------------------------- the README's Layout


def _layout_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]


def _module_names(package: str) -> set[str]:
    folder = ROOT / package
    return {
        path.relative_to(folder).with_suffix("").as_posix()
        for path in folder.rglob("*.py")
        if path.name != "__init__.py"
    }


@pytest.mark.parametrize("package", ["lf_bulk", "jobs"])
def test_the_readme_layout_names_every_module(package: str) -> None:
    layout = _layout_section()
    part = layout.split("`lf_bulk/`", 1)[1].split("`jobs/`", 1)
    text = part[0] if package == "lf_bulk" else part[1]
    named = set(re.findall(r"`([\w/]+)`", text))
    modules = _module_names(package)
    assert sorted(modules - named) == [], "modules missing from the README's Layout"
    assert len(modules) > 10


def test_the_limits_a_config_may_only_lower_are_reconciles_defaults() -> None:
    # settings does not import reconcile (it would load pandas into every command's start).
    assert settings.RAISE_ONLY_LIMITS == {
        "max_changes": reconcile.DEFAULT_MAX_CHANGES,
        "max_removal_ratio": reconcile.DEFAULT_MAX_REMOVAL_RATIO,
    }
    assert settings.RAISE_ONLY_GLOBALS == {"daily_quota": quota.DEFAULT_DAILY_QUOTA}
    assert settings.LOWER_ONLY_GLOBALS == {"quota_reserve": quota.DEFAULT_QUOTA_RESERVE}
