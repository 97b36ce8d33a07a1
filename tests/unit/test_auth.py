"""API keys: their shape, how a bearer header is read, and how a key is checked."""

from __future__ import annotations

import pytest

from api.auth import KEY_SHAPE, PREFIX, bearer_key, digest, key_id_of


def test_a_key_has_a_prefix_a_public_id_and_256_secret_bits() -> None:
    key = "tlk_0123456789ab_" + "A" * 43
    assert KEY_SHAPE.fullmatch(key) and key.startswith(PREFIX)
    assert key_id_of(key) == "0123456789ab"
    assert 43 * 6 >= 256  # 43 base64url characters


@pytest.mark.parametrize(
    "key",
    [
        "",
        "tlk_",
        "tlk_0123456789ab_" + "A" * 42,
        "tlk_0123456789AB_" + "A" * 43,
        "xyz_0123456789ab_" + "A" * 43,
        "tlk_0123456789ab_" + "A" * 43 + "\n",
        "tlk_0123456789ab_" + "+" * 43,
    ],
)
def test_a_malformed_key_has_no_id(key: str) -> None:
    assert key_id_of(key) is None


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("Bearer tlk_x", "tlk_x"),
        ("bearer   tlk_x  ", "tlk_x"),
        ("Basic dXNlcg==", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("", None),
        (None, None),
    ],
)
def test_the_key_is_read_from_a_bearer_header(header: str | None, key: str | None) -> None:
    assert bearer_key(header) == key


def test_the_digest_is_sha256_hex_and_never_the_key() -> None:
    key = "tlk_0123456789ab_" + "A" * 43
    assert len(digest(key)) == 64 and key not in digest(key)
    assert digest(key) != digest(key[:-1] + "B")
