"""Redacting a journal's texts stays cheap however many request signatures a long run has sent.

A 1,000,000-ICCID add sends 4,000 requests: each signature is remembered (RECENT_SIGNATURES), and
every outcome's reason text recorded in the journal is redacted. Copying the remembered
signatures for each text made one batch of 500 outcomes cost 130 ms of CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from lf_bulk import redaction
from lf_bulk.redaction import REDACTED, forget_secrets, redact, register_secret, register_signature


@pytest.fixture(autouse=True)
def _no_secrets_left() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


def _signatures(count: int) -> list[str]:
    return [f"{n:032x}" for n in range(count)]


def _cpu_of(call: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        call()
        best = min(best, time.process_time() - started)
    return best


def test_a_remembered_signature_is_redacted_among_thousands_and_others_are_not() -> None:
    register_secret("P000270")
    for signature in _signatures(redaction.RECENT_SIGNATURES):
        register_signature(signature)
    sent = _signatures(redaction.RECENT_SIGNATURES)[-1].upper()
    request_id = "a7f3c2d19e8b4c55a1d0e9f8b7c6d5e4"
    text = f"partner P000270 signed {sent} for request {request_id}"
    assert redact(text) == f"partner {REDACTED} signed {REDACTED} for request {request_id}"
    assert redact("") == ""
    assert redact("SIM is locked") == "SIM is locked"


def test_redacting_plain_texts_costs_the_same_with_thousands_of_signatures_remembered() -> None:
    texts = ["", "SIM is locked by another operation", "already in group G1"] * 2_000

    def redact_all() -> None:
        for text in texts:
            redact(text)

    register_secret("P000270")
    without = _cpu_of(redact_all)
    for signature in _signatures(redaction.RECENT_SIGNATURES):
        register_signature(signature)
    with_signatures = _cpu_of(redact_all)
    # Before: every text copied the 4,096 signatures, about 20x the cost of the text itself.
    assert with_signatures < 3 * without + 0.005, (with_signatures, without)
