"""Secrets: invitation/session tokens and staff password hashes.

Tokens carry 256 bits from `secrets.token_urlsafe` and are stored only as their SHA-256 hex
digest: for a uniformly random 256-bit token a fast hash is enough (no dictionary to attack), and
lookups stay an indexed equality. Passwords are low-entropy, so they get argon2id
(Biryukov, Dinu & Khovratovich 2016; RFC 9106) through argon2-cffi's `PasswordHasher` defaults.
"""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

#: Bytes of entropy in a token (≥ 16 bytes = 128 bits required; we use 32).
TOKEN_BYTES = 32

_hasher = PasswordHasher()


def new_token() -> str:
    """A fresh URL-safe random token (256 bits)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """SHA-256 hex digest of ``token`` (what the database stores)."""
    if not isinstance(token, str) or not token:
        raise ValueError("token must be a non-empty string")
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_password(n_bytes: int = 12) -> str:
    """A random password for generated accounts (demo, first admin)."""
    return secrets.token_urlsafe(n_bytes)


def hash_password(password: str) -> str:
    """argon2id hash of ``password`` (PHC string format, salt included)."""
    if not isinstance(password, str) or len(password) < 8:
        raise ValueError("password must be a string of at least 8 characters")
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches ``password_hash``; never raises on a mismatch."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than the current defaults."""
    return _hasher.check_needs_rehash(password_hash)
