"""docs/api-contract.md and the wire profile stay in step.

The document is the project's single reference for what it assumes about the Linksfield API; these
tests fail when the code learns an endpoint, an error code, a reason code or a limit that the
document does not state, or when something points back outside the repository.
"""

from __future__ import annotations

import os
import re
from dataclasses import fields
from pathlib import Path

import pytest

from lf_bulk import wire
from lf_bulk.settings import BASE_URLS

REPO = Path(__file__).resolve().parents[1]
CONTRACT = REPO / "docs" / "api-contract.md"

PROFILE = wire.CONTRACT_V1
ENDPOINTS = {f.name: getattr(PROFILE, f.name) for f in fields(PROFILE)}
ENDPOINTS = {name: ep for name, ep in ENDPOINTS.items() if isinstance(ep, wire.Endpoint)}
REASON_CODES = sorted(
    value
    for name, value in vars(wire).items()
    if name.startswith("REASON_") and isinstance(value, str)
)
MAPPED_CODES = sorted({wire.CODE_OK, *wire.ERROR_CLASSES, *wire.HTTP_STATUS_OF_CODE})
HOME_OF_ASSUMPTION = re.compile(r"`(WireProfile\.\w+|wire\.\w+|lf_bulk/[\w/]+\.py)`")


@pytest.fixture(scope="module")
def doc() -> str:
    assert CONTRACT.is_file(), "docs/api-contract.md is missing"
    return CONTRACT.read_text(encoding="utf-8")


def _lines_naming(doc: str, token: str) -> list[str]:
    return [line for line in doc.splitlines() if token in line]


def test_doc_names_the_contract_version_the_code_implements(doc: str) -> None:
    assert PROFILE.contract_version == wire.CONTRACT_VERSION
    assert f"Contract version: **{wire.CONTRACT_VERSION}**" in doc
    assert f"`{wire.CONTRACT_DOC}`" in Path(wire.__file__).read_text(encoding="utf-8")
    assert (REPO / wire.CONTRACT_DOC) == CONTRACT


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_every_endpoint_method_and_path_is_documented(doc: str, name: str) -> None:
    endpoint = ENDPOINTS[name]
    assert f"`{endpoint.method} {endpoint.path}`" in doc
    # Each endpoint row also names the profile field that holds it, so a fix finds its place.
    rows = _lines_naming(doc, f"`{endpoint.method} {endpoint.path}`")
    assert any(f"`WireProfile.{name}`" in row for row in rows), rows


def test_profile_knows_every_endpoint_of_contract_v1_and_v2() -> None:
    v1 = {"groups", "members", "add", "remove", "async_result", "order"}
    v2 = {"verify", "plans", "held_orders", "renewal", "cancel_renewal"}
    v2 |= {"create_order", "payment_result"}
    assert set(ENDPOINTS) == v1 | v2
    for name in v2:
        assert ENDPOINTS[name].trade is not wire.TradeGlobals.NONE, name


@pytest.mark.parametrize(
    "name",
    [f.name for f in fields(PROFILE) if not isinstance(getattr(PROFILE, f.name), wire.Endpoint)],
)
def test_every_other_profile_field_is_named_with_its_value(doc: str, name: str) -> None:
    value = getattr(PROFILE, name)
    rows = _lines_naming(doc, f"`WireProfile.{name}`")
    assert rows, f"WireProfile.{name} is not named in the contract"
    pairs = value.items() if isinstance(value, dict) else None
    shown = [f"`{key}: {val}`" for key, val in pairs] if pairs is not None else [f"`{value}`"]
    for text in shown:
        assert any(text in row for row in rows), f"{text} not stated next to WireProfile.{name}"


@pytest.mark.parametrize("code", MAPPED_CODES)
def test_every_error_code_the_profile_maps_is_documented(doc: str, code: str) -> None:
    rows = [row for row in _lines_naming(doc, f"`{code}`") if row.startswith("|")]
    assert rows, f"error code {code} has no row in a table"
    status = wire.HTTP_STATUS_OF_CODE.get(code)
    if status is not None:
        assert any(str(status) in row for row in rows), f"HTTP {status} not stated for {code}"


@pytest.mark.parametrize("code", sorted(wire.ERROR_CLASSES))
def test_error_codes_in_the_error_table_name_their_error_class(doc: str, code: str) -> None:
    cls = wire.ERROR_CLASSES[code]
    rows = [row for row in _lines_naming(doc, f"`{code}`") if row.startswith("|")]
    assert any(f"`{cls.__name__}`" in row for row in rows), f"{cls.__name__} not named for {code}"


@pytest.mark.parametrize("reason", REASON_CODES)
def test_every_per_sim_reason_code_is_documented(doc: str, reason: str) -> None:
    rows = [row for row in _lines_naming(doc, f"`{reason}`") if row.startswith("|")]
    assert rows, f"reason code {reason} has no row in a table"
    retryable = reason in wire.RETRYABLE_REASONS
    assert any(("retryable" in row and "not retryable" not in row) == retryable for row in rows), (
        f"{reason}: the table must say {'retryable' if retryable else 'not retryable'}"
    )


def test_order_fields_and_lookup_precedence_are_documented(doc: str) -> None:
    for name in wire.ORDER_FIELDS:
        assert f"`{name}`" in doc, name
    precedence = " > ".join(f"`{key}`" for key in wire.ORDER_KEYS)
    assert precedence in doc


def test_base_urls_of_the_configured_environments_are_documented(doc: str) -> None:
    for url in BASE_URLS.values():
        assert f"`{url}`" in doc, url


def _blocks(doc: str) -> list[str]:
    """Paragraphs, list items and table rows: the unit a statement and its code home share."""
    blocks: list[list[str]] = [[]]
    for line in doc.splitlines():
        if not line.strip() or line.startswith(("- ", "|", "#")):
            blocks.append([])
        if line.strip():
            blocks[-1].append(line)
    return ["\n".join(block) for block in blocks if block]


def test_every_assumption_names_where_it_lives(doc: str) -> None:
    assumed = [block for block in _blocks(doc) if "**Assumed" in block]
    assert len(assumed) >= 10
    for block in assumed:
        assert HOME_OF_ASSUMPTION.search(block) or "not implemented" in block, block


def test_the_doc_has_the_uat_checklist_and_the_planned_v2_section(doc: str) -> None:
    headings = [line.lstrip("#").strip() for line in doc.splitlines() if line.startswith("#")]
    assert "Checking against UAT" in headings
    assert "Contract v2: daily quota, Vshop and Payment" in headings
    checklist = doc.split("Checking against UAT", 1)[1].split("\n## ", 1)[0]
    assert len(re.findall(r"^- \[ \]", checklist, flags=re.MULTILINE)) >= 8
    for command in ("lf-bulk", "doctor", "groups list", "groups members", "ops status"):
        assert command in checklist, command


_SKIPPED_DIRS = {".git", ".venv", "node_modules", "__pycache__", "build", "dist"}
_TEXT_SUFFIXES = {".py", ".md", ".toml", ".cfg", ".ini", ".txt", ".yaml", ".yml", ".json", ""}
# Spelled in pieces so this file does not find itself.
_OUTSIDE_POINTERS = ("../" + "shared", "shared/" + "linksfield-api", "shared/" + "design-notes")


def _project_text_files() -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = [
            d
            for d in dirs
            if d not in _SKIPPED_DIRS and not d.startswith(".") and not d.endswith(".egg-info")
        ]
        for name in files:
            path = Path(folder) / name
            if path.suffix in _TEXT_SUFFIXES and path.stat().st_size < 2_000_000:
                found.append(path)
    return found


def test_no_project_file_points_outside_the_repository() -> None:
    files = _project_text_files()
    assert CONTRACT in files and REPO / "README.md" in files and Path(wire.__file__) in files
    offenders = [
        f"{path.relative_to(REPO)}: {needle}"
        for path in files
        for needle in _OUTSIDE_POINTERS
        if needle in path.read_text(encoding="utf-8", errors="replace")
    ]
    assert offenders == []


def test_readme_points_at_the_contract() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "docs/api-contract.md" in readme
