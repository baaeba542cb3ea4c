"""TOML files validated by pydantic models, with one message line per problem.

Shared by the configuration (:mod:`respop.config`), the specification layer (:mod:`respop.spec`)
and the synthetic-data profiles: it sits below all of them, so that none imports the others to
read a file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from respop.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

LOCATED = "located error: key '"
"""Start of a validator's message that names its own key (a check across several keys)."""


def load_toml_model(path: str | Path, model: type[M], what: str) -> M:
    """Read a TOML file and validate it as ``model``; every problem is a :class:`ConfigError`
    naming the file (and, for invalid content, each key and value). ``what``: e.g. "configuration"."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a valid TOML file: {exc}") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid {what.removesuffix(' file')}:\n{explain_validation_error(exc)}") from None


def explain_validation_error(exc: ValidationError) -> str:
    """One line per problem: the key (dotted path), what is wrong, and the value given."""
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        if LOCATED in err["msg"]:
            lines.append("  - key '" + err["msg"].split(LOCATED, 1)[1])
        elif err["type"] == "extra_forbidden":
            lines.append(f"  - unknown key '{key}' (value {err['input']!r})")
        else:
            lines.append(f"  - key '{key}': {err['msg']} (value {err['input']!r})")
    return "\n".join(lines)
