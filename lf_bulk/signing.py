"""The `sign` parameter: lowercase hex MD5 of the canonical JSON of every non-empty parameter.

Documented by Linksfield and checked against their own examples (tests/test_signing.py). There is no
secret in the hash: it protects integrity, not identity.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

SIGN_FIELD = "sign"


def _is_empty(value: Any) -> bool:
    return value is None or value == ""


def sign_content(params: Mapping[str, Any]) -> str:
    """The exact text hashed: sorted keys, compact separators, raw UTF-8, `sign` left out."""
    kept = {k: v for k, v in params.items() if k != SIGN_FIELD and not _is_empty(v)}
    return canonical_json(kept)


def canonical_json(value: Any) -> str:
    """JSON text by the documented rules: keys sorted by code point (in every object), compact
    separators, non-ASCII as raw UTF-8, `/` unescaped, arrays in the order given."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sign(params: Mapping[str, Any]) -> str:
    return hashlib.md5(sign_content(params).encode("utf-8"), usedforsecurity=False).hexdigest()


def verify(params: Mapping[str, Any], signature: str) -> bool:
    return sign(params) == signature.lower()
