"""Errors a user can act on.

Every error raised for bad input derives from :class:`RespopError`. The command line prints its
message (no traceback) and exits with status 2; library users catch it. Messages name the file,
the line and the column, never a row's content (docs/architecture.md, "Error policy").
"""

from __future__ import annotations

import errno
from pathlib import Path


class RespopError(Exception):
    """An error caused by the user's input or configuration, with a message that says what to do."""


class ConfigError(RespopError):
    """A configuration file is missing, unreadable or invalid."""


class InputError(RespopError):
    """An input file is missing, unreadable, or lacks what respop needs.

    ``path`` and ``column`` name where the problem is, when known.
    """

    def __init__(self, message: str, path: str | Path | None = None, column: str | None = None):
        self.path = Path(path) if path is not None else None
        self.column = column
        where = f"{self.path}: " if self.path is not None else ""
        super().__init__(where + message)


class DiskFullError(RespopError):
    """The disk filled up while respop wrote ``where`` (a path, or what was being written); what
    was there before is left as it was (``intact`` says what)."""

    def __init__(self, where: str | Path, intact: str = "previous results are intact"):
        self.path = where if isinstance(where, Path) else None
        super().__init__(f"disk full while writing {where}: {intact}; free some space and run again")


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it wraps) reports a full disk or quota: a
    :class:`DiskFullError`, ``OSError`` ENOSPC
    or EDQUOT, SQLite's "database or disk is full", PostgreSQL's disk_full (SQLSTATE 53100), or
    polars' "No space left on device (os error 28)"."""
    if isinstance(exc, DiskFullError):
        return True
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            return True
        if getattr(exc, "sqlstate", None) == "53100" or getattr(exc, "pgcode", None) == "53100":
            return True
        text = str(exc).lower()
        if "database or disk is full" in text or "no space left on device" in text or "os error 28" in text:
            return True
        exc = getattr(exc, "orig", None) or exc.__cause__ or exc.__context__
    return False


class DisclosureError(RespopError):
    """Results cannot be published without letting a small count be recovered (docs/store.md)."""
