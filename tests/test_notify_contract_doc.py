"""docs/api-contract.md v2.5 and the push's wire details (`wire.PushProfile`) stay in step."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from lf_bulk import wire

CONTRACT = Path(__file__).resolve().parents[1] / "docs" / "api-contract.md"
NAMED_FIELDS = {"window_seconds", "sort_nested_keys", "max_body_bytes", "answer_seconds"}


@pytest.fixture(scope="module")
def section() -> str:
    text = CONTRACT.read_text(encoding="utf-8")
    return text.split("### v2.5", 1)[1].split("\n### ", 1)[0]


@pytest.mark.parametrize("name", [f.name for f in fields(wire.PushProfile)])
def test_every_push_profile_field_is_stated(section: str, name: str) -> None:
    value = getattr(wire.PUSH_V2, name)
    if name in NAMED_FIELDS:
        assert f"`PushProfile.{name}`" in section, name
        shown = {600: "600", 1024 * 1024: "1 MB", 5.0: "5 s", True: "`True`"}[value]
        block = section.split(f"`PushProfile.{name}`", 1)[1][:40]
        assert shown in block, f"{name} = {value} is not stated next to it"
    else:
        assert f"`{value}`" in section, f"{name} = {value!r} is not in the v2.5 section"


def test_every_function_the_section_names_exists(section: str) -> None:
    named = set(re.findall(r"`wire\.(\w+)`", section))
    assert {"push_sign_content", "push_signature", "sign_push", "push_business_key"} <= named
    assert [name for name in named if not hasattr(wire, name)] == []
    for field_name in wire.PUSH_DATA_FIELDS:
        assert f'"{field_name}"' in section, field_name


def test_the_push_is_no_longer_marked_not_implemented(section: str) -> None:
    assert "not implemented" not in section
    assert "`lf_bulk/notify/receiver.py`" in section and "`lf_bulk/notify/store.py`" in section
