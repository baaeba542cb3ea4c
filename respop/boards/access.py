"""The board's optional password (``[dashboard] access = "password"`` in the configuration).

The configuration keeps only a hash of the password, made by ``respop dashboard hash-password``:
scrypt (RFC 7914, :func:`hashlib.scrypt`) with a random 16-byte salt, written as one line

    scrypt$<n>$<r>$<p>$<salt, hex>$<hash, hex>

so that the cost parameters travel with the hash and can be raised later without breaking the
hashes already written. :func:`check_password` compares in constant time
(:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SCHEME = "scrypt"
N, R, P = 2**14, 8, 1
"""scrypt cost: 16 MiB of memory (128 · n · r bytes), about 50 ms on a laptop."""
SALT_BYTES = 16
HASH_BYTES = 32
MAX_N = 2**20
"""Refuse hashes asking for more than 1 GiB: a hash line is configuration, not trusted input."""


def hash_password(password: str, *, n: int = N, r: int = R, p: int = P, salt: bytes | None = None) -> str:
    """The hash line of ``password`` for the configuration's ``password_hash``."""
    if not password:
        raise ValueError("the password is empty")
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, n, r, p)
    return f"{SCHEME}${n}${r}${p}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str | None) -> bool:
    """True when ``password`` matches the hash line ``stored``; False for any malformed line."""
    if not password or not stored:
        return False
    try:
        scheme, n, r, p, salt_hex, hash_hex = stored.strip().split("$")
        n_, r_, p_ = int(n), int(r), int(p)
        salt, expected = bytes.fromhex(salt_hex), bytes.fromhex(hash_hex)
    except ValueError:
        return False
    if (scheme != SCHEME or len(expected) != HASH_BYTES or len(salt) < 8
            or n_ < 2 or n_ > MAX_N or n_ & (n_ - 1) or r_ < 1 or p_ < 1):
        return False  # a truncated hash would accept wrong passwords: refused
    try:
        digest = _scrypt(password, salt, n_, r_, p_)
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(digest, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int = HASH_BYTES) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=length, maxmem=129 * n * r * p + 2**20
    )
