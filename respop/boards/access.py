"""The board's optional password (``[dashboard] access = "password"`` in the configuration).

The configuration keeps only a hash of the password, made by ``respop dashboard hash-password``:
scrypt (RFC 7914, :func:`hashlib.scrypt`) with a random 16-byte salt, written as one line

    scrypt$<n>$<r>$<p>$<salt, hex>$<hash, hex>

so that the cost parameters travel with the hash and can be raised later without breaking the
hashes already written. :func:`check_password` compares in constant time
(:func:`hmac.compare_digest`).

The hash itself can be kept out of the configuration (``[dashboard] password_hash_file``, or the
environment variable ``RESPOP_DASHBOARD_PASSWORD_HASH``; :mod:`respop.config`).

Wrong passwords are rate-limited per client (:class:`AttemptLimiter`, one for the whole server:
:data:`LIMITER`): after :data:`FREE_ATTEMPTS` wrong passwords, every further attempt waits for a
pause that doubles each time, from :data:`FIRST_PAUSE` to :data:`MAX_PAUSE` seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

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


# ------------------------------------------------------------------------------ rate limiting

FREE_ATTEMPTS = 5
"""Wrong passwords a client may give before its attempts are paused."""
FIRST_PAUSE = 30.0
"""Seconds of the first pause (after the FREE_ATTEMPTS-th wrong password); each further wrong
password doubles it."""
MAX_PAUSE = 3600.0
"""The longest pause, in seconds."""
FORGET_AFTER = 24 * 3600.0
"""A client's wrong passwords are forgotten this many seconds after the last one."""
MAX_CLIENTS = 10_000
"""Clients remembered at most (the oldest forgotten first): the memory of the limiter is bounded."""


@dataclass
class _Failures:
    count: int
    last: float


class AttemptLimiter:
    """Wrong password attempts per client (any string: an IP address, a session id).

    A client may try freely until it has given ``free`` wrong passwords; then each attempt must wait
    ``pause(n)`` seconds after the last wrong one, where ``n`` is the number of wrong ones: ``first``
    seconds for the ``free``-th, doubling with each further wrong password, at most ``longest``.
    Attempts refused during a pause are not counted (someone else's guesses sharing the client's
    address cannot lengthen it forever). The right password forgets the client's failures.
    Thread-safe: Streamlit runs each session's script in its own thread."""

    def __init__(self, free: int = FREE_ATTEMPTS, first: float = FIRST_PAUSE, longest: float = MAX_PAUSE,
                 forget_after: float = FORGET_AFTER, max_clients: int = MAX_CLIENTS,
                 clock: Callable[[], float] = time.monotonic):
        self.free, self.first, self.longest = free, first, longest
        self.forget_after, self.max_clients, self.clock = forget_after, max_clients, clock
        self._failures: OrderedDict[str, _Failures] = OrderedDict()
        self._lock = threading.Lock()

    def pause(self, failures: int) -> float:
        """Seconds to wait after the last of ``failures`` wrong passwords (0 before ``free``)."""
        if failures < self.free:
            return 0.0
        return min(self.first * 2.0 ** min(failures - self.free, 64), self.longest)

    def wait(self, client: str) -> float:
        """Seconds ``client`` must wait before its next attempt (0: it may try now)."""
        with self._lock:
            entry = self._entry(client)
            if entry is None:
                return 0.0
            return max(0.0, entry.last + self.pause(entry.count) - self.clock())

    def failed(self, client: str) -> None:
        """Count a wrong password of ``client``."""
        with self._lock:
            entry = self._entry(client)
            now = self.clock()
            if entry is None:
                entry = self._failures[client] = _Failures(0, now)
            entry.count += 1
            entry.last = now
            self._failures.move_to_end(client)
            while len(self._failures) > self.max_clients:
                self._failures.popitem(last=False)

    def succeeded(self, client: str) -> None:
        """The right password: forget ``client``'s wrong ones."""
        with self._lock:
            self._failures.pop(client, None)

    def _entry(self, client: str) -> _Failures | None:
        entry = self._failures.get(client)
        if entry is not None and self.clock() - entry.last > self.forget_after:
            del self._failures[client]
            return None
        return entry


LIMITER = AttemptLimiter()
"""The board server's limiter: shared by every session of the Streamlit process."""
