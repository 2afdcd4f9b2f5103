"""The console's filters for people, and autoescaping of every template."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from lf_bulk.console.templating import TEMPLATES_DIR, duration, environment, money, number, when


def test_number_groups_thousands_and_leaves_text_alone() -> None:
    assert number(1234567) == "1,234,567"
    assert number(0) == "0"
    assert number("8944000000000000001") == "8944000000000000001"  # an ICCID is text
    assert number(None) == ""
    assert number(True) == "True"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (Decimal("1234.50"), "1,234.50"),
        (Decimal("0.10"), "0.10"),
        (Decimal("-12.345"), "-12.345"),
        (Decimal("1E+3"), "1,000"),
        (7, "7"),
        (None, ""),
    ],
)
def test_money_is_exact(value: object, shown: str) -> None:
    assert money(value) == shown


def test_when_reads_epochs_iso_times_and_datetimes_as_utc() -> None:
    assert when(1_800_000_000) == "2027-01-15 08:00 UTC"
    assert when("2026-11-29T19:05:31+01:00") == "2026-11-29 18:05 UTC"
    assert when("2026-11-29T19:05:31") == "2026-11-29 19:05 UTC"
    assert when(datetime(2026, 11, 30, tzinfo=UTC)) == "2026-11-30 00:00 UTC"
    assert when("") == "" and when(None) == ""
    assert when("not a time") == "not a time"


def test_duration_reads_as_an_eta() -> None:
    assert duration(40) == "40 s"
    assert duration(125) == "2 min 5 s"
    assert duration(3900) == "1 h 5 min"
    assert duration(None) == ""


def test_every_template_is_autoescaped_and_none_marks_data_safe() -> None:
    env = environment()
    assert env.from_string("{{ x }}").render(x="<script>") == "&lt;script&gt;"
    for template in TEMPLATES_DIR.glob("*.html"):
        assert "|safe" not in template.read_text(encoding="utf-8").replace(" ", ""), template
