"""The ``[strata]`` part of an algorithm spec: ordered clinical profiles with their conditions.

Levels are listed from the most severe to the least severe; a person-year falls in the first
level whose condition holds, and the last level has no condition (everyone else), so each
person-year falls in exactly one stratum (docs/strata.md). Conditions are parsed here
(:mod:`respop.spec.conditions`); the feature names they use are checked against the known
features when the spec file is loaded (:func:`respop.spec.loaders.load_spec`) and against the
configured diseases when the run's catalogue is built (:mod:`respop.spec.catalogue`).
"""

from __future__ import annotations

from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from respop.tomlfiles import LOCATED
from respop.spec.conditions import ConditionError, ConditionTooDeep, Node, parse


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StrataLevel(_Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str = Field(min_length=1, description="French name shown on the boards")
    description: str = Field(min_length=1, description="for clinicians, in French")
    when: str | None = Field(None, description="condition on the features; absent on the last level only")
    rationale: str = ""
    protocol: str = Field(min_length=1, description="the care protocol attached to the profile, in French")

    @field_validator("when")
    @classmethod
    def _parse(cls, text: str | None) -> str | None:
        if text is not None:
            try:
                parse(text)
            except ConditionError as exc:
                raise ValueError(str(exc)) from None
        return text

    @cached_property
    def condition(self) -> Node | None:
        return parse(self.when) if self.when is not None else None


def _level_error(index: int, key: str, value: object, message: str) -> ValueError:
    """An error naming its own key, ``strata.levels.<index>.<key>`` (see LOCATED in respop.tomlfiles)."""
    return ValueError(f"{LOCATED}strata.levels.{index}.{key}': {message} (value {value!r})")


class StrataSpec(_Model):
    description: str = ""
    sources: list[str] = Field(min_length=1)
    levels: list[StrataLevel] = Field(min_length=2)

    @field_validator("levels", mode="before")
    @classmethod
    def _depth(cls, levels: object) -> object:
        """A condition nesting more than conditions.MAX_DEPTH levels is refused here, where its level's index
        is known, with the text cut short (the generic message would quote it whole)."""
        if not isinstance(levels, list):
            return levels
        for i, level in enumerate(levels):
            when = level.get("when") if isinstance(level, dict) else None
            if isinstance(when, str):
                try:
                    parse(when)
                except ConditionTooDeep as exc:
                    shown = when if len(when) <= 60 else f"{when[:40]} … {when[-20:]} ({len(when):,} characters)"
                    raise _level_error(i, "when", shown, f"level {level.get('name')!r}: {exc.reason}") from None
                except ConditionError:
                    pass  # reported by StrataLevel, under the same key
        return levels

    @field_validator("levels")
    @classmethod
    def _levels(cls, levels: list[StrataLevel]) -> list[StrataLevel]:
        names = [lv.name for lv in levels]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"level names must be unique; listed more than once: {twice}")
        return levels

    @model_validator(mode="after")
    def _conditions(self) -> StrataSpec:
        last = len(self.levels) - 1
        if self.levels[last].when is not None:
            raise _level_error(last, "when", self.levels[last].when, f"the last level ({self.levels[last].name}) takes everyone else: remove its 'when'")
        for i, lv in enumerate(self.levels[:-1]):
            if lv.when is None:
                raise _level_error(i, "when", None, f"level {lv.name!r} needs a condition (only the last level has none)")
        return self

    def level_of(self, name: str) -> int:
        """1 for the last listed (least severe) … len(levels) for the first listed."""
        names = [lv.name for lv in self.levels]
        return len(names) - names.index(name)

    def get(self, name: str) -> StrataLevel:
        return next(lv for lv in self.levels if lv.name == name)
