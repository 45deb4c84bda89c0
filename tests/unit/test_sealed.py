"""Sealed account secrets: AES-GCM round trip, and every way a ciphertext must fail to open."""

from __future__ import annotations

import base64

import pytest

from worker.sealed import Keyring, Sealed, SealError, decode_key, key_id, new_key

TOKEN = "bc_live_0123456789abcdef"


def keyring(*previous: str, current: str | None = None) -> Keyring:
    return Keyring(
        None if current is None else decode_key(current, "secret_key"),
        [decode_key(k, "previous_secret_keys") for k in previous],
    )


def test_a_sealed_secret_opens_under_its_key_and_holds_no_plain_text() -> None:
    ring = keyring(current=new_key())
    sealed = ring.seal("shop", {"token": TOKEN})
    assert TOKEN.encode() not in sealed.ciphertext
    assert sealed.key_id == ring.current_id
    assert ring.open("shop", sealed) == {"token": TOKEN}


def test_two_seals_of_one_secret_differ_by_their_nonce() -> None:
    ring = keyring(current=new_key())
    first, second = (ring.seal("shop", {"token": TOKEN}) for _ in range(2))
    assert first.ciphertext[:12] != second.ciphertext[:12]


def test_a_wrong_key_with_the_same_id_names_the_account_not_the_key() -> None:
    key = new_key()
    sealed = keyring(current=key).seal("shop", {"token": TOKEN})
    other = keyring(current=new_key())
    forged = Sealed(sealed.ciphertext, other.current_id or "")
    with pytest.raises(SealError, match="account shop: cannot decrypt") as caught:
        other.open("shop", forged)
    assert key not in str(caught.value)


def test_no_key_or_an_unknown_key_id_names_the_account() -> None:
    sealed = keyring(current=new_key()).seal("shop", {"token": TOKEN})
    with pytest.raises(SealError, match=r"account shop: .*no secret_key is set"):
        Keyring(None).open("shop", sealed)
    with pytest.raises(SealError, match=r"account shop: .*no key held has that id"):
        keyring(current=new_key()).open("shop", sealed)


def test_a_tampered_ciphertext_does_not_open() -> None:
    ring = keyring(current=new_key())
    sealed = ring.seal("shop", {"token": TOKEN})
    flipped = bytearray(sealed.ciphertext)
    flipped[-1] ^= 1
    with pytest.raises(SealError, match="altered or belongs to another account"):
        ring.open("shop", Sealed(bytes(flipped), sealed.key_id))


def test_a_ciphertext_moved_to_another_account_does_not_open() -> None:
    ring = keyring(current=new_key())
    sealed = ring.seal("shop", {"token": TOKEN})
    with pytest.raises(SealError, match=r"account outlet: .*belongs to another account"):
        ring.open("outlet", sealed)


def test_a_previous_key_still_opens_but_never_seals() -> None:
    old, new = new_key(), new_key()
    sealed = keyring(current=old).seal("shop", {"token": TOKEN})
    rotating = keyring(old, current=new)
    assert rotating.open("shop", sealed) == {"token": TOKEN}
    assert rotating.seal("shop", {"token": TOKEN}).key_id == key_id(base64.b64decode(new))


def test_sealing_without_a_key_says_how_to_get_one() -> None:
    with pytest.raises(SealError, match="accounts new-key"):
        Keyring(None).seal("shop", {"token": TOKEN})


@pytest.mark.parametrize(
    ("text", "problem"),
    [("not base64!", "not base64"), (base64.b64encode(b"short").decode(), "5 bytes, expected 32")],
)
def test_an_unusable_key_is_named_by_its_source_and_not_echoed(text: str, problem: str) -> None:
    with pytest.raises(SealError, match=f"secret_key: {problem}") as caught:
        decode_key(text, "secret_key")
    assert text not in str(caught.value)


def test_the_key_id_is_short_and_reveals_nothing_of_the_key() -> None:
    key = base64.b64decode(new_key())
    assert len(key_id(key)) == 16
    assert key.hex()[:16] != key_id(key)
    assert "Keyring(current=" in repr(Keyring(key))
    assert key.hex() not in repr(Keyring(key))
