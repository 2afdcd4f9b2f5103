"""Secrets kept out of every message, log line, report and journal entry, whatever their source.

The partner code is the credential: it may appear in the request and nowhere else. A session
registers it (and each request's signature) here when it opens; `redact(text)` is then applied
where text leaves the process or is stored: error messages (`LfBulkError.__str__`), the logging
handler (`RedactingFilter`), `jobs.errors.to_click_exception`, and the journal's reason texts.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict

REDACTED = "***"
# Signatures are MD5 hex digests; only ones this process sent are redacted (request ids look the
# same), and only the most recent ones are kept: an echo arrives with the answer to its request.
RECENT_SIGNATURES = 4096
_HEX32 = re.compile(r"\b[0-9a-fA-F]{32}\b")

_lock = threading.Lock()
_secrets: set[str] = set()
_signatures: OrderedDict[str, None] = OrderedDict()


def register_secret(value: str | None) -> None:
    """A value (the partner code, a password) that must never be shown or stored."""
    if value:
        with _lock:
            _secrets.add(value)


def register_signature(value: str | None) -> None:
    """A request's `sign`, redacted wherever an answer or an error quotes it."""
    if not value:
        return
    with _lock:
        _signatures[value.lower()] = None
        _signatures.move_to_end(value.lower())
        while len(_signatures) > RECENT_SIGNATURES:
            _signatures.popitem(last=False)


def forget_secrets() -> None:
    """Forget every registered secret (tests; a process otherwise keeps them to its end)."""
    with _lock:
        _secrets.clear()
        _signatures.clear()


def redact(text: str) -> str:
    if not text:
        return text
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    # The recent signatures (thousands in a long run) are looked up under the lock, and only
    # for the texts that hold something shaped like one: copying them for every text made
    # recording a batch's 500 outcomes cost 130 ms.
    if _HEX32.search(text):
        text = _HEX32.sub(_redacted_signature, text)
    return text


def _redacted_signature(match: re.Match[str]) -> str:
    with _lock:
        known = match.group(0).lower() in _signatures
    return REDACTED if known else match.group(0)


def mask(secret: str) -> str:
    """At most the first character and the length: `P****** (7 chars)`."""
    if not secret:
        return ""
    shown = secret[0] if len(secret) >= 4 else ""
    return f"{shown}{'*' * (len(secret) - len(shown))} ({len(secret)} chars)"


class RedactingFilter(logging.Filter):
    """Redacts a record's final message; attached to the handlers of the lf_bulk/jobs loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True
