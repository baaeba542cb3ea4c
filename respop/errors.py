"""Errors a user can act on.

Every error raised for bad input derives from :class:`RespopError`. The command line prints its
message (no traceback) and exits with status 2; library users catch it.
"""

from __future__ import annotations

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
