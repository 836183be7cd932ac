"""Tokens and password hashes."""

from __future__ import annotations

import base64
import hashlib

import pytest

from item_bank import security


def test_tokens_carry_at_least_128_bits_and_are_stored_as_sha256():
    tokens = {security.new_token() for _ in range(200)}
    assert len(tokens) == 200
    for tok in list(tokens)[:5]:
        raw = base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4))
        assert len(raw) * 8 >= 128
        assert security.hash_token(tok) == hashlib.sha256(tok.encode()).hexdigest()
    with pytest.raises(ValueError):
        security.hash_token("")


def test_argon2_passwords():
    h = security.hash_password("correct horse battery")
    assert h.startswith("$argon2id$") and "correct" not in h
    assert security.verify_password(h, "correct horse battery")
    assert not security.verify_password(h, "correct horse battery!")
    assert not security.verify_password("not-a-hash", "whatever1")
    assert not security.needs_rehash(h)
    assert security.hash_password("correct horse battery") != h  # salted
