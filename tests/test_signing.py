import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lf_bulk.signing import sign, sign_content, verify

DOC_VECTOR_LOGIN = (
    '{"deviceCode":"89852420180910340793","languageCode":"1","mark":"0","partnerCode":"P000270",'
    '"terminal":"1","tradeTime":"1645683857572","tradeType":"singleVerify",'
    '"url":"https://dist.linksfield.net/login","version":"3.0"}'
)
DOC_VECTOR_PLANS = (
    '{"area":"欧洲","deviceCode":"89852420180910340793","languageCode":"1","mark":"0",'
    '"partnerCode":"P000270","terminal":"0","tradeTime":"1645782486394",'
    '"tradeType":"singleServicePlanPage","version":"3.0"}'
)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (DOC_VECTOR_LOGIN, "ea7a3bba7e345e0b8ca7f7e3b43d6e72"),
        (DOC_VECTOR_PLANS, "3fdb15332726c77cd792ea2328f98a80"),
    ],
)
def test_documented_vectors(document: str, expected: str) -> None:
    params = json.loads(document)
    assert sign_content(params) == document
    assert sign(params) == expected


def test_key_order_of_input_does_not_matter() -> None:
    params = json.loads(DOC_VECTOR_LOGIN)
    reversed_params = dict(reversed(list(params.items())))
    assert sign(reversed_params) == "ea7a3bba7e345e0b8ca7f7e3b43d6e72"


def test_escaped_unicode_would_give_the_documented_wrong_hash() -> None:
    import hashlib

    escaped = json.dumps(json.loads(DOC_VECTOR_PLANS), sort_keys=True, separators=(",", ":"))
    assert hashlib.md5(escaped.encode()).hexdigest() == "f0f89b0f9aad361ed2fa28702833676f"
    assert sign(json.loads(DOC_VECTOR_PLANS)) != "f0f89b0f9aad361ed2fa28702833676f"


def test_sign_field_empty_values_and_none_are_left_out() -> None:
    base = {"partnerCode": "P000270", "version": "3.0"}
    noisy = {**base, "sign": "deadbeef", "note": "", "other": None}
    assert sign_content(noisy) == '{"partnerCode":"P000270","version":"3.0"}'
    assert sign(noisy) == sign(base)


def test_arrays_are_signed_compactly_in_sent_order() -> None:
    params = {"iccids": ["b", "a"], "partnerCode": "P1"}
    assert sign_content(params) == '{"iccids":["b","a"],"partnerCode":"P1"}'
    assert sign(params) != sign({"iccids": ["a", "b"], "partnerCode": "P1"})


def test_slash_is_not_escaped() -> None:
    assert sign_content({"url": "https://x/y"}) == '{"url":"https://x/y"}'


@given(st.dictionaries(st.text(min_size=1), st.text(min_size=1), max_size=6))
def test_verify_accepts_own_signature_and_rejects_tampering(params: dict[str, str]) -> None:
    signature = sign(params)
    assert verify(params, signature.upper())
    assert not verify({**params, "tampered": "1"}, signature)
