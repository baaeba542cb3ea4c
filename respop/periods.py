"""What each step and part of a run needs of the data's period: the one place that knows it.

A run can hold any number of years of data. Most of it works on one year (the input report, the
territories, the cases and their indicators, the strata and their care use); some parts follow
people from one year to the next and need more (:data:`NEEDS`):

- ``transitions`` (strata step): a year N and the year N + 1 (two years that follow each other);
- ``survival`` (strata step): two years (the follow-up starts on 1 January of the year after N);
- ``prediction`` (strata step): three years (trained on the years up to the last but two, tested
  on the last but one, whose outcome is in the last year: respop.strata.prediction.evaluate);
- ``evaluation`` (evaluation step, with ``[evaluation]``): each pilot's start year in the data
  with ``min_pre_years`` years of data before it (respop.evaluation.design.resolve_design).

Case finding looks back on the years before each index year: with fewer years than an algorithm's
look-back the first years' history is incomplete, which the indicators mark
(``complete_history``) and the boards say; nothing is left out for it.

The pipeline checks the period at the start of ``respop run`` (:func:`data_years`: the years the
configuration names, else those of the PMSI files' names, found before anything is read by
respop.pipeline.file_years: this module reads no input, so that respop.stages may use it) and
says on standard error which parts it leaves out and why; the strata step leaves out survival and
prediction on the years of its cases (:func:`skipped`), and records what it left out in its
``summary.json``; the store step records every part left out in the run's row
(``runs.timings["skipped"]``, respop.store.schema) and the boards say, in French, what is missing
and why instead of an empty figure. A part left out by ``--no-models`` (a choice of the user, not
a limit of the period) is not one of them: the store refuses those outputs (respop.stages).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from respop.config import Config

NUMBERS_FR = {0: "aucune", 1: "une", 2: "deux", 3: "trois", 4: "quatre", 5: "cinq", 6: "six", 7: "sept", 8: "huit",
              9: "neuf", 10: "dix"}
NUMBERS_EN = {0: "none", 1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight",
              9: "nine", 10: "ten"}


@dataclass(frozen=True)
class Need:
    """What a part of a step needs: ``min_years`` years of data (``consecutive``: that follow each
    other), and what to say when the period does not give them (French for the boards, English for
    the command line)."""

    part: str
    step: str
    min_years: int
    consecutive: bool
    title_fr: str
    title_en: str
    why_fr: str
    why_en: str
    allows: Callable[[list[int]], bool]


def _has_pair(years: list[int]) -> bool:
    """A year N and N + 1."""
    present = set(years)
    return any(y + 1 in present for y in present)


def _prediction_years(years: list[int]) -> bool:
    """respop.strata.prediction.evaluate's test year (the last but one, with the last) and a training
    year (the last but two or earlier, with its next year)."""
    if not years:
        return False
    present, last = set(years), max(years)
    return last - 1 in present and any(y + 1 in present for y in present if y <= last - 2)


NEEDS: dict[str, Need] = {
    need.part: need
    for need in (
        Need("transitions", "strata", 2, True, "Trajectoires non calculées", "transitions not computed",
             "elles suivent les personnes d'une année à la suivante",
             "they follow people from one year to the next", _has_pair),
        Need("survival", "strata", 2, False, "Survie non estimée", "survival not estimated",
             "le suivi commence le 1er janvier de l'année qui suit",
             "the follow-up starts on 1 January of the next year", lambda years: len(set(years)) >= 2),
        Need("prediction", "strata", 3, True, "Prédiction non estimée", "prediction not fitted",
             "le modèle apprend sur les premières années et se vérifie sur l'avant-dernière, dont l'issue est "
             "connue l'année suivante",
             "the models are trained on the first years and tested on the last but one, whose outcome is in the "
             "last year", _prediction_years),
    )
}
"""The parts of the strata step that need more than one year, in the order they run."""

EVALUATION = "evaluation"
"""The evaluation's need depends on its configuration (:func:`evaluation_skip`)."""


@dataclass(frozen=True)
class Skip:
    """A part (or step) the period leaves out, and why."""

    part: str
    step: str
    min_years: int
    years: tuple[int, ...]
    fr: str
    en: str

    def to_dict(self) -> dict:
        return {"part": self.part, "step": self.step, "min_years": self.min_years, "years": list(self.years),
                "fr": self.fr, "en": self.en}


def _count_fr(n: int) -> str:
    return NUMBERS_FR.get(n, str(n))


def _count_en(n: int) -> str:
    return NUMBERS_EN.get(n, str(n))


def _has_fr(years: list[int]) -> str:
    n = len(years)
    if n == 0:
        return "cette exécution n'en a aucune"
    return f"cette exécution en a {_count_fr(n)}" + ("" if n == 1 else f" : {', '.join(map(str, years))}")


def _has_en(years: list[int]) -> str:
    n = len(years)
    if n == 0:
        return "this run has none"
    return f"this run has {_count_en(n)}: {', '.join(map(str, years))}"


def _skip(need: Need, years: list[int]) -> Skip:
    gap = need.consecutive and len(years) >= need.min_years  # enough years, but not following each other
    years_fr = f"{_count_fr(need.min_years)} années de données" + (" qui se suivent" if gap else "")
    years_en = f"{_count_en(need.min_years)} years of data" + (" that follow each other" if gap else "")
    return Skip(
        part=need.part, step=need.step, min_years=need.min_years, years=tuple(years),
        fr=f"{need.title_fr} : il faut au moins {years_fr} ({_has_fr(years)}) ; {need.why_fr}.",
        en=f"{need.title_en}: it needs at least {years_en} ({_has_en(years)}); {need.why_en}",
    )


def evaluation_skip(config: Config, years: list[int]) -> Skip | None:
    """The evaluation left out when a pilot's start year is not in the data with
    ``min_pre_years`` years of data before it (None: the period allows it, or no ``[evaluation]``,
    or hospital mode, which has none)."""
    evaluation = config.evaluation
    if evaluation is None or config.hospital is not None or not years:
        return None
    need = evaluation.min_pre_years + 1
    short = []
    for key, start in evaluation.pilots.items():
        pre = [y for y in years if y < start]
        if not (years[0] < start <= years[-1]) or len(pre) < evaluation.min_pre_years:
            short.append((key, start))
    if not short:
        return None
    pilots_fr = ", ".join(f"« {key} » en {start}" for key, start in short)
    pilots_en = ", ".join(f"{key!r} in {start}" for key, start in short)
    return Skip(
        part=EVALUATION, step=EVALUATION, min_years=need, years=tuple(years),
        fr=(f"Évaluation non réalisée : il faut l'année de début de chaque territoire pilote et au moins "
            f"{_count_fr(evaluation.min_pre_years)} années de données avant elle ({_has_fr(years)} ; début de "
            f"{pilots_fr})."),
        en=(f"evaluation not run: it needs each pilot's start year in the data and at least "
            f"{_count_en(evaluation.min_pre_years)} years of data before it ({_has_en(years)}; start of {pilots_en})"),
    )


def skipped(config: Config, years: Iterable[int] | None, models: bool = True, steps: Iterable[str] | None = None) -> list[Skip]:
    """The parts the period ``years`` leaves out, in the order they would run: transitions,
    survival, prediction (the last two only when ``models``, and never in hospital mode, which
    fits none), the evaluation (with ``[evaluation]``). ``steps``: only the parts of those steps.
    ``years`` None (unknown before reading): nothing is left out; the steps will say."""
    if years is None:
        return []
    years = sorted(set(int(y) for y in years))
    steps = set(steps) if steps is not None else {"strata", EVALUATION}
    models = models and config.hospital is None
    out = []
    if "strata" in steps:
        for need in NEEDS.values():
            if need.part in ("survival", "prediction") and not models:
                continue
            if not need.allows(years):
                out.append(_skip(need, years))
    if EVALUATION in steps:
        evaluation = evaluation_skip(config, years)
        if evaluation is not None:
            out.append(evaluation)
    return out


def data_years(config: Config, found: Iterable[int] | None = None) -> list[int] | None:
    """The index years of a run, known before anything is read: ``[cases] years``, else
    ``[input] years``, else ``found``, the exit years in the names of the PMSI files (found by the
    pipeline, respop.pipeline.file_years: this module reads no input). None when unknown (names
    without a year): the steps then find out themselves."""
    if config.cases.years is not None:
        return sorted(config.cases.years)
    if config.input.years is not None:
        return sorted(config.input.years)
    return sorted(set(found)) if found else None


def output_years(config: Config) -> list[int] | None:
    """The index years of the run whose outputs are in ``<output.dir>``: ``[cases] years``, else
    ``[input] years``, else the years of its input report (``input/report.json``: the years read);
    None without any (the steps' own checks then apply)."""
    report = config.output.dir / "input" / "report.json"
    found = None
    if config.cases.years is None and config.input.years is None and report.is_file():
        try:
            found = [int(y) for y in json.loads(report.read_text(encoding="utf-8")).get("years") or [] if y is not None]
        except (OSError, ValueError, TypeError, AttributeError):
            found = None
    return data_years(config, found)


def allowed(config: Config, step: str) -> bool:
    """The period of the outputs in ``<output.dir>`` (:func:`output_years`) allows ``step`` as a
    whole (the evaluation; the other steps run on any period, leaving out the parts it does not
    allow). True when the years are unknown."""
    return not any(s.part == step for s in skipped(config, output_years(config), steps=[step]))


def from_dicts(records: Iterable[dict] | None) -> list[Skip]:
    """Skips as recorded (:meth:`Skip.to_dict`: a step's ``summary.json``, the store's runs row)."""
    out = []
    for r in records or []:
        try:
            out.append(Skip(part=str(r["part"]), step=str(r["step"]), min_years=int(r["min_years"]),
                            years=tuple(int(y) for y in r.get("years") or ()), fr=str(r["fr"]), en=str(r["en"])))
        except (KeyError, TypeError, ValueError):
            continue
    return out
