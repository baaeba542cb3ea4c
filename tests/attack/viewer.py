"""What a viewer of the boards can derive from a results store, as a :class:`~tests.attack.solver.System`.

The viewer sees every succeeded run of the store (every table of every run) and knows:

- the hierarchy: zones → territories through each run's published ``zones`` table, territories →
  area; strata and sub-types → ``all``; a transition row's destinations → its ``all`` total;
  hospital groups → a territory's ``all`` row in ``flows``;
- that zeros are published (a masked count is 1 or more; a count never published, such as
  deaths per zone, is 0 or more), and that a row absent from a table is a group with nobody (the
  tables have a row per group with at least one person);
- that counts are integers, and the ties between tables: a unit's cases (``indicators``, sub-type
  ``all``) are the people of its ``all`` stratum (``care_use``); a stratum's people in the area
  are its transitions row total plus its in-hospital deaths; the start of a survival curve (and
  the log-rank and Cox counts) is the sum over the years of the stratum's row totals; the
  calibration deciles add up to the test year's totals, the same for both models, between the
  transitions that stay and those that stay or die; the input report's balances; published rates
  (a rate with its count gives the denominator, with its denominator the count);
- runs on the same data share their unknowns: the same (column, disease, year, category, zone)
  is one unknown in every run whose true value for it is the same (checked on the truth).

Unknowns (atoms) are zone-level counts (column, disease, year, category, zone), transitions
(disease, year, from, to), flows (zone, hospital group), calibration deciles, the input report's
counts. The truth comes from each run's private outputs (``<output.dir>``) and is used only to
know which cells are 1 to 10 and which relations hold exactly; the attacker's relations use only
published values. Nothing here imports ``respop.privacy.disclosure`` or ``respop.store.publish``.
"""

from __future__ import annotations

import importlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from respop.config import load_config
from respop.store.db import Store
from tests.attack.solver import AttackerError, Expr, System

ALL = "all"
DEATH, NOT_SEEN = "deces", "non_revu"
INDICATOR_COUNTS = ["cases", "incident_cases", "cases_unstandardised"]
OUTSIDE = "cases_outside"
"""Cases without a residence zone in the population (area rows only, 0 elsewhere): in no level's
cases, so not a sum of zones; each area row's count is a cell of its own."""
CARE_COUNTS = ["people", "stays", "emergency_stays", "bed_days", "readmissions_30d", "deaths"]
ZONE_HIDDEN = {"readmissions_30d", "deaths"}
"""Care-use counts never published per zone."""
EVALUATION_WITHOUT_COUNTS = ("evaluation_design", "evaluation_territories", "evaluation_outcomes", "evaluation_effects",
                             "evaluation_event_study", "evaluation_trajectories", "evaluation_weights", "evaluation_power")
"""Tables of the evaluation of the experiment that publish no count: estimates (effects, intervals,
trajectories, weights, minimum detectable effects; those built on a masked cell are masked by the
publisher, not modelled here as equations), ids and French text. ``evaluation_deprivation``
publishes counts: modelled (:meth:`RunView.deprivation`)."""
POPULATION_OUTCOMES = ("disease_stays", "hospitalised")
"""Evaluation outcomes per inhabitant (their denominator is public); the others are per case."""
RATE_SCALE = 100_000.0
"""Crude prevalence and incidence are per 100,000 inhabitants."""


def protection_width() -> int:
    """P: ``respop.privacy.disclosure.PROTECTION_WIDTH`` when it exists (the only name read from the
    suppression code), else 1 (a masked count must not be determined)."""
    module = importlib.import_module("respop.privacy.disclosure")
    return int(getattr(module, "PROTECTION_WIDTH", 1))


# ---------------------------------------------------------------------------------------------
# the truth of a run (its private outputs)


@dataclass
class Truth:
    out: Path
    indicators: pl.DataFrame | None
    care_use: pl.DataFrame | None
    transitions: pl.DataFrame | None
    km: pl.DataFrame | None
    report: dict | None
    flows: pl.DataFrame | None
    territories: pl.DataFrame | None
    survival: Path
    prediction: Path


def read_truth(out: Path) -> Truth:
    def parquet(rel: str) -> pl.DataFrame | None:
        return pl.read_parquet(out / rel) if (out / rel).is_file() else None

    territories = None
    if (out / "territories" / "territories.parquet").is_file():
        territories = pl.read_parquet(out / "territories" / "territories.parquet", columns=["territory_id", "stays_residents"])
    report_path = out / "input" / "report.json"
    return Truth(
        out=out,
        indicators=parquet("cases/indicators.parquet"),
        care_use=parquet("strata/care_use.parquet"),
        transitions=parquet("strata/transitions.parquet"),
        km=parquet("strata/survival/km.parquet"),
        report=json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else None,
        flows=parquet("territories/flows.parquet"),
        territories=territories,
        survival=out / "strata" / "survival",
        prediction=out / "strata" / "prediction",
    )


def _rows(frame: pl.DataFrame | None, keys: list[str]) -> dict[tuple, dict]:
    if frame is None:
        return {}
    out = {}
    for row in frame.iter_rows(named=True):
        key = tuple(int(row[k]) if k == "year" else row[k] for k in keys)
        if key in out:
            raise AttackerError(f"two rows for {dict(zip(keys, key))}")
        out[key] = row
    return out


def _int(v) -> int:
    return 0 if v is None else int(v)


# ---------------------------------------------------------------------------------------------
# building the system


def attack(store: Store, outputs: dict[int, Path] | None = None, system: System | None = None) -> System:
    """Everything a viewer can derive from the succeeded runs of ``store``. ``outputs``: run id →
    the run's private ``<output.dir>``, and the runs the viewer sees (default: every succeeded
    run, its outputs from its configuration file)."""
    system = system or System()
    runs = sorted((r for r in store.runs() if r["status"] == "succeeded"), key=lambda r: r["run_id"])
    if outputs is not None:
        missing = set(outputs) - {r["run_id"] for r in runs}
        if missing:
            raise AttackerError(f"runs {sorted(missing)} are not succeeded runs of the store")
        runs = [r for r in runs if r["run_id"] in outputs]
    if not runs:
        raise AttackerError("no succeeded run in the store")
    for run in runs:
        run_id = run["run_id"]
        out = outputs[run_id] if outputs is not None else load_config(Path(run["config_path"])).output.dir
        RunView(system, store, run, read_truth(Path(out))).build()
    return system


class RunView:
    """One run's tables as cells and relations of the system."""

    def __init__(self, system: System, store: Store, run: dict, truth: Truth):
        self.s = system
        self.run = run
        self.run_id = run["run_id"]
        self.truth = truth
        self.span = (run["first_year"], run["last_year"])
        self.t = {name: store.read(name, self.run_id) for name in store.tables()}
        zones = self.t["zones"]
        self.territory_of = {z: (None if t is None else str(t)) for z, t in zones.select("zone_code", "territory_id").iter_rows()}
        levels = self.t["strata_levels"]
        self.strata: dict[str, list[str]] = defaultdict(list)
        self.level_of: dict[tuple[str, str], int] = {}
        for d, st, lv in levels.select("disease", "stratum", "stratum_level").iter_rows():
            self.strata[d].append(st)
            self.level_of[(d, st)] = lv
        self.geo: dict[str, dict[tuple, Expr]] = {}
        self.published: dict[str, dict[tuple, int | None]] = {}
        self.geo_rows: dict[str, dict[tuple, dict]] = {}
        self.transition_all: dict[tuple, Expr] = {}
        self.transition: dict[tuple, Expr] = {}
        self.starts: dict[tuple[str, str], Expr] = {}
        self._proportions: list[tuple] = []
        self._shares: list[tuple] = []

    def build(self) -> None:
        if self.truth.indicators is not None and self.t["indicators"].height:
            self.geographic("indicators", self.t["indicators"], self.truth.indicators, "subtype", INDICATOR_COUNTS)
            self.outside()
            self.indicator_rates()
        if self.truth.care_use is not None and self.t["care_use"].height:
            self.geographic("care_use", self.t["care_use"], self.truth.care_use, "stratum", CARE_COUNTS)
            self.care_use_rates()
        self.inequalities()
        if self.truth.transitions is not None and self.t["transitions"].height:
            self.transitions()
            self.survival()
            self.calibration()
        self.ties()
        if self.truth.report is not None and self.t["quality"].height:
            self.quality()
        if self.truth.flows is not None and self.t["flows"].height:
            self.flows()
        if self.t.get("evaluation_deprivation") is not None and self.t["evaluation_deprivation"].height:
            self.deprivation()

    # -- geography ------------------------------------------------------------------------------

    def geographic(self, name: str, published: pl.DataFrame, truth: pl.DataFrame, category: str, columns: list[str]) -> None:
        """Cells of a zone / territory / area table: zone atoms per (column, disease, year,
        category); ``all`` the sum of the categories where that holds; a territory the sum of its
        zones (this run's zones table); the area the sum of every zone."""
        keys = ["level", "unit", "year", "disease", category]
        pub = _rows(published, keys)
        true = _rows(truth.with_columns(pl.col("year").cast(pl.Int64)), keys)
        extra = set(true) - set(pub)
        if extra:
            raise AttackerError(f"{name}: private rows not published: {sorted(extra)[:3]}")
        zones = sorted(set(self.territory_of) | {u for (lv, u, *_rest) in pub if lv == "zone"})
        territories = sorted({t for t in self.territory_of.values() if t is not None} | {u for (lv, u, *_r) in pub if lv == "territory"})
        diseases = sorted({k[3] for k in pub})
        years = sorted({k[2] for k in pub})
        cats: dict[str, list[str]] = {}
        for d in diseases:
            found = {k[4] for k in pub if k[3] == d} | (set(self.strata.get(d, [])) if category == "stratum" else set())
            cats[d] = sorted(found - {ALL}) + [ALL]
        exprs: dict[tuple, Expr] = {}
        values: dict[tuple, int | None] = {}
        for col in columns:
            for d in diseases:
                for y in years:
                    zone_expr: dict[tuple[str, str], Expr] = {}
                    for z in zones:
                        for c in cats[d]:
                            if c != ALL:
                                zone_expr[(z, c)] = self.s.atom((name, col, d, y, c, z), _int(true.get(("zone", z, y, d, c), {}).get(col)))
                        parts = [zone_expr[(z, c)] for c in cats[d] if c != ALL]
                        whole = _int(true.get(("zone", z, y, d, ALL), {}).get(col))
                        total = self.s.add(*parts)
                        if self.s.value(total) != whole:
                            self.s.dropped[f"{name}.{col} categories"] += 1
                            total = self.s.atom((name, col, d, y, ALL, z), whole)
                        zone_expr[(z, ALL)] = total
                    for c in cats[d]:
                        for level, units in (("zone", zones), ("territory", territories), ("area", [ALL])):
                            for u in units:
                                key = (level, u, y, d, c)
                                if level == "zone":
                                    candidates = [zone_expr[(u, c)]]
                                    fallback = (name, col, d, y, c, "zone", u)
                                elif level == "territory":
                                    candidates = [self.s.add(*(zone_expr[(z, c)] for z in zones if self.territory_of.get(z) == u))]
                                    fallback = None  # a territory is this run's
                                else:
                                    candidates = [
                                        self.s.add(*(zone_expr[(z, c)] for z in zones)),
                                        self.s.add(*(zone_expr[(z, c)] for z in zones if self.territory_of.get(z) is not None)),
                                    ]
                                    fallback = (name, col, d, y, c, "area")
                                row = pub.get(key)
                                t = _int(true.get(key, {}).get(col))
                                if row is None:  # no row: nobody in that group, every count 0
                                    status, value = "published", 0
                                    if t != 0:
                                        raise AttackerError(f"{name} {key}: no published row, private {col} = {t}")
                                elif level == "zone" and name == "care_use" and col in ZONE_HIDDEN:
                                    status, value = "hidden", None
                                else:
                                    value = row[col]
                                    status = "masked" if value is None else "published"
                                # a group whose people are masked publishes none of its measures, zeros included
                                floor = 0 if name == "care_use" and col != "people" and row is not None and row["people"] is None else None
                                cell = self.s.cell(self.run_id, name, col, tuple(zip(keys, key)), candidates, t, status, value,
                                                   fallback, floor=floor)
                                exprs[(col, *key)] = cell.expr
                                values[(col, *key)] = value if status == "published" else None
        self.geo[name] = exprs
        self.published[name] = values
        self.geo_rows[name] = pub

    def outside(self) -> None:
        """``cases_outside`` of the area rows: one unknown each (nothing ties it to the zones)."""
        keys = ["level", "unit", "year", "disease", "subtype"]
        true = _rows(self.truth.indicators.with_columns(pl.col("year").cast(pl.Int64)), keys)
        for key, row in _rows(self.t["indicators"], keys).items():
            if key[0] != "area" or OUTSIDE not in row:
                continue
            t = _int(true.get(key, {}).get(OUTSIDE))
            value = row[OUTSIDE]
            self.s.cell(self.run_id, "indicators", OUTSIDE, tuple(zip(keys, key)),
                        [self.s.atom(("indicators", OUTSIDE, *key, self.span), t)], t,
                        "masked" if value is None else "published", value)

    def indicator_rates(self) -> None:
        """Crude prevalence and incidence per 100,000 with the (public) population: a published
        rate gives its count."""
        for key, row in self.geo_rows["indicators"].items():
            for col, rate in (("cases", "prevalence_crude"), ("incident_cases", "incidence_crude")):
                r, pop = row[rate], row["population"]
                if r is None or pop is None or row[col] is not None:
                    continue
                self.s.rate(self.geo["indicators"][(col, *key)], {}, r, RATE_SCALE, f"indicators.{rate}", denominator_value=pop)

    def care_use_rates(self) -> None:
        """Per-person rates of care use: with the people, the count; with the count, the people."""
        exprs, values = self.geo["care_use"], self.published["care_use"]
        for key, row in self.geo_rows["care_use"].items():
            for col in CARE_COUNTS[1:]:
                r = row[f"{col}_per_person"]
                num, den = values.get((col, *key)), values.get(("people", *key))
                if r is None or (num is not None and den is not None):
                    continue
                self.s.rate(exprs[(col, *key)], exprs[("people", *key)], r, 1.0, f"care_use.{col}_per_person",
                            numerator_value=num, denominator_value=den)

    def inequalities(self) -> None:
        """Counts that cannot exceed others, per zone atom, when that holds for every zone of the
        run (a law of the data the attacker can know): incident cases and unstandardised cases
        <= cases; deaths <= people; emergency stays and re-hospitalisations <= stays; people <= stays."""
        pairs = {
            "indicators": [("incident_cases", "cases"), ("cases_unstandardised", "cases")],
            "care_use": [("deaths", "people"), ("emergency_stays", "stays"), ("readmissions_30d", "stays"), ("people", "stays")],
        }
        for name, couples in pairs.items():
            exprs = self.geo.get(name)
            if not exprs:
                continue
            for small, large in couples:
                keys = [k[1:] for k in exprs if k[0] == small and k[1] == "zone" and k[5] != ALL]
                if all(self.s.value(exprs[(small, *k)]) <= self.s.value(exprs[(large, *k)]) for k in keys):
                    for k in keys:
                        self.s.at_most(exprs[(small, *k)], exprs[(large, *k)], f"{name}: {small} <= {large}")
                else:
                    self.s.dropped[f"{name}: {small} <= {large}"] += len(keys)

    # -- transitions, survival, prediction ------------------------------------------------------

    def transitions(self) -> None:
        pub = _rows(self.t["transitions"], ["disease", "year", "from_stratum", "to_stratum"])
        raw = self.truth.transitions.with_columns(pl.col("year").cast(pl.Int64))
        true = {(d, y, f, to): c for d, y, f, to, c in raw.select("disease", "year", "from", "to", "count").iter_rows()}
        years = sorted({k[1] for k in pub} | {k[1] for k in true})
        diseases = sorted({k[0] for k in pub} | {k[0] for k in true})
        keys = ["disease", "year", "from_stratum", "to_stratum"]
        for d in diseases:
            strata = self.strata.get(d) or sorted({k[2] for k in pub if k[0] == d})
            for y in years:
                for f in strata:
                    parts = []
                    for to in [*strata, DEATH, NOT_SEEN, ALL]:
                        key = (d, y, f, to)
                        if to == ALL:
                            t = sum(true.get((d, y, f, x), 0) for x in [*strata, DEATH, NOT_SEEN])
                            candidates = [self.s.add(*parts)]
                        else:
                            t = true.get(key, 0)
                            candidates = [self.s.atom(("transitions", *key), t)]
                        row = pub.get(key)
                        if row is None:
                            if t != 0:
                                raise AttackerError(f"transitions {key}: no published row, private count {t}")
                            status, value = "published", 0
                        else:
                            value = row["count"]
                            status = "masked" if value is None else "published"
                        cell = self.s.cell(self.run_id, "transitions", "count", tuple(zip(keys, key)), candidates, t, status,
                                           value, fallback=("transitions", *key))
                        if to == ALL:
                            self.transition_all[(d, y, f)] = cell.expr
                        else:
                            parts.append(cell.expr)
                            self.transition[key] = cell.expr
                        if row is not None and to != ALL and row["proportion"] is not None:
                            self._proportions.append((key, cell.expr, row["proportion"], value))
        # row proportions: published with a count, they give the row total (and the reverse)
        for (d, y, f, _to), expr, r, value in self._proportions:
            total = pub.get((d, y, f, ALL))
            total_value = None if total is None else total["count"]
            if value is not None and total_value is not None:
                continue
            self.s.rate(expr, self.transition_all[(d, y, f)], r, 1.0, "transitions.proportion",
                        numerator_value=value, denominator_value=total_value)

    def start(self, d: str, st: str) -> Expr:
        """The people at the start of a stratum's survival curve: its row totals over the years."""
        return self.s.add(*(e for (dd, _y, f), e in self.transition_all.items() if dd == d and f == st))

    def survival(self) -> None:
        km = self.truth.km
        if km is None:
            return
        first = km.sort("time").group_by("disease", "stratum", maintain_order=True).agg(pl.col("at_risk").first())
        curves = self.t["survival_curves"]
        shown = {(d, st): n for d, st, n in curves.filter(pl.col("time") == 0).select("disease", "stratum", "at_risk").iter_rows()}
        for d, st, n in first.iter_rows():
            status = "published" if (d, st) in shown else "hidden"
            cell = self.s.cell(self.run_id, "survival_curves", "at_risk", (("disease", d), ("stratum", st), ("time", 0.0)),
                               [self.start(d, st)], n, status, shown.get((d, st)), fallback=("survival start", d, st, self.span))
            self.starts[(d, st)] = cell.expr
        tests = self.t["survival_tests"]
        logrank = pl.read_csv(self.truth.survival / "logrank.csv") if (self.truth.survival / "logrank.csv").is_file() else None
        cox = pl.read_csv(self.truth.survival / "cox.csv") if (self.truth.survival / "cox.csv").is_file() else None
        true_lr = {(r["disease"], f"{r['higher']} vs {r['lower']}"): r for r in logrank.iter_rows(named=True)} if logrank is not None else {}
        true_cox = {r["disease"]: r for r in cox.iter_rows(named=True)} if cox is not None else {}
        cox_done = set()
        for row in tests.iter_rows(named=True):
            d = row["disease"]
            if row["kind"] == "logrank":
                tr = true_lr[(d, row["term"])]
                detail = json.loads(row["detail"])
                parts = []
                for side in ("higher", "lower"):
                    st = detail[side]
                    n = detail[f"n_{side}"]
                    cell = self.s.cell(self.run_id, "survival_tests", f"n_{side}", (("disease", d), ("term", row["term"])),
                                       [self.starts.get((d, st))], tr[f"n_{side}"], "masked" if n is None else "published", n,
                                       fallback=("survival start", d, st, self.span))
                    parts.append(cell.expr)
                self.s.cell(self.run_id, "survival_tests", "n", (("disease", d), ("term", row["term"])), [self.s.add(*parts)],
                            tr["n_higher"] + tr["n_lower"], "masked" if row["n"] is None else "published", row["n"])
            elif row["kind"] == "cox" and d not in cox_done:
                cox_done.add(d)
                tr = true_cox[d]
                everyone = self.s.add(*(e for (dd, _s), e in self.starts.items() if dd == d))
                self.s.cell(self.run_id, "survival_tests", "n", (("disease", d), ("kind", "cox")), [everyone], tr["n"],
                            "masked" if row["n"] is None else "published", row["n"], fallback=("cox n", d, self.span))
                deaths = self.s.add(*(e for (dd, _y, _f, to), e in self.transition.items() if dd == d and to == DEATH))
                self.s.cell(self.run_id, "survival_tests", "events", (("disease", d), ("kind", "cox")), [deaths], tr["events"],
                            "masked" if row["events"] is None else "published", row["events"], fallback=("cox events", d, self.span))

    def calibration(self) -> None:
        """Calibration deciles: n and events (n × observed rate) per target, model and bin; each
        model's bins add up to the test year's person-years and events (the same for both models;
        both targets are asked of the same person-years); the person-years lie between the
        transitions of the test year that stay in a stratum and the same plus the deaths, and the
        main target's events (moving up) between the transitions moving up and the same plus the
        deaths. The second target's events (an emergency stay or a death) have no such bound."""
        cal = self.t["model_calibration"]
        if not cal.height:
            return
        from respop.strata.prediction import MAIN_TARGET

        test_year = self.span[1] - 1
        if "target" not in cal.columns:
            cal = cal.with_columns(pl.lit(MAIN_TARGET).alias("target"))
        for d in sorted(set(cal["disease"])):
            truth = pl.read_csv(self.truth.prediction / d / "calibration.csv")
            if "target" not in truth.columns:
                truth = truth.with_columns(pl.lit(MAIN_TARGET).alias("target"))
            true = {(r["target"], r["model"], r["bin"]): r for r in truth.iter_rows(named=True)}
            mine = cal.filter(pl.col("disease") == d)
            card: dict[str, Expr] = {}
            for target in sorted(set(mine["target"])):
                totals: dict[str, tuple[list[Expr], list[Expr]]] = defaultdict(lambda: ([], []))
                for row in mine.filter(pl.col("target") == target).iter_rows(named=True):
                    m, b = row["model"], row["bin"]
                    tr = true[(target, m, b)]
                    n_true = int(tr["n"])
                    e_true = int(round(n_true * tr["observed_rate"]))
                    key = (("disease", d), ("target", target), ("model", m), ("bin", b))
                    n_cell = self.s.cell(self.run_id, "model_calibration", "n", key,
                                         [self.s.atom(("calibration n", d, target, m, b, self.span), n_true)], n_true,
                                         "masked" if row["n"] is None else "published", row["n"])
                    e_cell = self.s.cell(self.run_id, "model_calibration", "events", key,
                                         [self.s.atom(("calibration events", d, target, m, b, self.span), e_true)], e_true,
                                         "masked" if row["observed_rate"] is None else "hidden")
                    if row["observed_rate"] is not None:
                        self.s.rate(e_cell.expr, n_cell.expr, row["observed_rate"], 1.0, "model_calibration.observed_rate",
                                    denominator_value=row["n"])
                    self.s.at_most(e_cell.expr, n_cell.expr, "model_calibration: events <= n")
                    totals[m][0].append(n_cell.expr)
                    totals[m][1].append(e_cell.expr)
                models = sorted(totals)
                for i, which in enumerate(("n", "events")):
                    sums = [self.s.add(*totals[m][i]) for m in models]
                    for other in sums[1:]:
                        self.s.equal(sums[0], other, f"model_calibration: {which} of the models")
                    if which == "n" and "n" in card and sums:
                        self.s.equal(card["n"], sums[0], "model_calibration: n of the targets")
                    if which == "events" and target != MAIN_TARGET:
                        continue
                    strata = self.strata.get(d, [])
                    if which == "n":
                        low = [e for (dd, y, _f, to), e in self.transition.items() if dd == d and y == test_year and to in strata]
                    else:
                        low = [e for (dd, y, f, to), e in self.transition.items()
                               if dd == d and y == test_year and to in strata and self.level_of.get((d, to), 0) > self.level_of.get((d, f), 0)]
                    dead = [e for (dd, y, _f, to), e in self.transition.items() if dd == d and y == test_year and to == DEATH]
                    if sums:
                        self.s.at_most(self.s.add(*low), sums[0], f"model_calibration: {which} >= transitions")
                        self.s.at_most(sums[0], self.s.add(*low, *dead), f"model_calibration: {which} <= transitions + deaths")
                if models and target == MAIN_TARGET:
                    card = {which: self.s.add(*totals[models[0]][i]) for i, which in enumerate(("n", "events"))}
                elif models and "n" not in card:
                    card = {"n": self.s.add(*totals[models[0]][0])}
            if "events" in card:
                self.model_card(d, card, test_year)

    def model_card(self, d: str, sums: dict[str, Expr], test_year: int) -> None:
        """The model card's counts (French text, ``model_cards``): the test year's person-years
        and those who moved up are the calibration's totals; the training years' and those no
        longer seen lie between transitions (into a stratum; moving up; not seen) and the same plus
        the deaths. A masked training count is left out (its true value is not in the outputs)."""
        cards = self.t["model_cards"].filter(pl.col("disease") == d)["markdown"].to_list()
        if not cards:
            return
        text = cards[0]
        number = r"([\d\u202f]+|s|< 11)"  # "s": masked (the boards' symbol); "< 11" in runs before it
        found = re.search(rf"- {number} personnes-années d'apprentissage \({number} passées.*?; {number} personnes-années de test \({number},", text)
        not_seen = re.search(rf"- {number} personnes-années de ces années", text)
        if found is None:
            raise AttackerError(f"model card of {d}: the counts of the training and test years are not found")

        def value(text: str) -> int | None:
            return None if text == "s" or text.startswith("<") else int(text.replace("\u202f", ""))

        n_train, pos_train, n_test, pos_test = (value(g) for g in found.groups())
        for column, expr, shown in (("n_test", sums["n"], n_test), ("positives_test", sums["events"], pos_test)):
            truth = int(round(self.s.value(expr)))
            self.s.cell(self.run_id, "model_cards", column, (("disease", d),), [expr], truth,
                        "masked" if shown is None else "published", shown)
        strata = self.strata.get(d, [])
        train = [y for (dd, y, _f, _t) in self.transition if dd == d and y <= test_year - 1]

        def transitions(years, to=None, up=False) -> Expr:
            return self.s.add(*(e for (dd, y, f, t), e in self.transition.items() if dd == d and y in years and (
                (to is None and t in strata and (not up or self.level_of.get((d, t), 0) > self.level_of.get((d, f), 0))) or t == to)))

        years = set(train)
        bounds = [("n_train", n_train, transitions(years)), ("positives_train", pos_train, transitions(years, up=True))]
        if not_seen is not None:
            bounds.append(("not_seen_next_year", value(not_seen.group(1)), transitions(years | {test_year}, to=NOT_SEEN)))
        for column, shown, low in bounds:
            if shown is None:
                continue
            cell = self.s.cell(self.run_id, "model_cards", column, (("disease", d),), [], shown, "published", shown,
                               fallback=("model card", column, d, self.span))
            last = years | {test_year} if column == "not_seen_next_year" else years
            self.s.at_most(low, cell.expr, f"model_cards: {column} >= transitions")
            self.s.at_most(cell.expr, self.s.add(low, transitions(last, to=DEATH)), f"model_cards: {column} <= transitions + deaths")

    # -- ties between tables --------------------------------------------------------------------

    def ties(self) -> None:
        ind, use = self.geo.get("indicators"), self.geo.get("care_use")
        if ind and use:
            for key, e in ind.items():
                col, level, unit, y, d, sub = key
                if col == "cases" and sub == ALL and ("people", level, unit, y, d, ALL) in use:
                    self.s.equal(e, use[("people", level, unit, y, d, ALL)], "cases = people (all)")
        if use and self.transition_all:
            for (d, y, f), followed in self.transition_all.items():
                people, deaths = use.get(("people", "area", ALL, y, d, f)), use.get(("deaths", "area", ALL, y, d, f))
                if people is not None and deaths is not None:
                    self.s.equal(people, self.s.add(followed, deaths), "people = followed + deaths (area)")

    # -- input report ---------------------------------------------------------------------------

    def quality(self) -> None:
        report = self.truth.report
        pub = _rows(self.t["quality"], ["section", "item", "measure", "detail"])
        for t in report.get("tables", []):
            label = t["label"]
            loaded = self.s.atom(("quality", label, "loaded"), t["rows_loaded"])
            reasons = {r: self.s.atom(("quality", label, "reason", r), n) for r, n in t.get("reasons", {}).items()}
            quarantined = self.s.add(*reasons.values()) if reasons else None
            q = self._quality_cell(pub, ("file", label, "quarantined", None), t["rows_quarantined"],
                                   [quarantined], ("quality", label, "quarantined"))
            self._quality_cell(pub, ("file", label, "loaded", None), t["rows_loaded"], [loaded], ("quality", label, "loaded"))
            self._quality_cell(pub, ("file", label, "read", None), t["rows_read"], [self.s.add(loaded, q)], ("quality", label, "read"))
            for r, n in t.get("reasons", {}).items():
                self._quality_cell(pub, ("reason", label, "rows", r), n, [reasons[r]], ("quality", label, "reason", r))
        kept = self._quality_cell(pub, ("stays", "stays", "kept", None), report.get("stays_kept"), [], ("quality", "kept", self.span))
        sessions = self._quality_cell(pub, ("stays", "stays", "sessions", None), report.get("sessions_kept"), [],
                                      ("quality", "sessions", self.span))
        excluded = []
        for f in report.get("filters", []):
            excluded.append(self._quality_cell(pub, ("filter", f["name"], "excluded", f.get("title")), f["excluded"], [],
                                               ("quality", "filter", f["name"], self.span)))
        self._quality_cell(pub, ("stays", "stays", "loaded", None), report.get("stays_loaded"),
                           [self.s.add(kept, sessions, *excluded)], ("quality", "loaded", self.span))

    def _quality_cell(self, pub: dict, key: tuple, truth, candidates: list, fallback: tuple) -> Expr:
        row = pub.get(key)
        if row is None or truth is None:
            raise AttackerError(f"quality {key}: not published or not in the report")
        value = row["rows"]
        cell = self.s.cell(self.run_id, "quality", "rows", tuple(zip(("section", "item", "measure", "detail"), key)),
                           candidates, int(truth), "masked" if value is None else "published", value, fallback=fallback)
        return cell.expr

    # -- flows ----------------------------------------------------------------------------------

    def flows(self) -> None:
        """Stays of a territory's residents per hospital group: atoms per zone and group, a
        territory the sum of its zones, ``all`` the sum of the groups; the share gives the count
        or the total; the territories table's resident stays are the ``all`` row."""
        raw = self.truth.flows
        true = defaultdict(int)
        for z, g, n in raw.select("zone_code", "group", "stays").iter_rows():
            true[(z, str(g))] += int(n)
        pub = _rows(self.t["flows"].with_columns(pl.col("territory_id").cast(pl.String)), ["territory_id", "hospital_group"])
        groups = sorted({g for (_t, g) in pub if g != ALL} | {g for (_z, g) in true})
        territories = sorted({t for t in self.territory_of.values() if t is not None})
        keys = ("territory_id", "hospital_group")
        totals: dict[str, Expr] = {}
        for t in territories:
            zones = [z for z, tt in self.territory_of.items() if tt == t]
            parts = []
            for g in [*groups, ALL]:
                if g == ALL:
                    candidates, truth = [self.s.add(*parts)], sum(true[(z, gg)] for z in zones for gg in groups)
                else:
                    candidates = [self.s.add(*(self.s.atom(("flows", z, g), true[(z, g)]) for z in zones))]
                    truth = sum(true[(z, g)] for z in zones)
                row = pub.get((t, g))
                if row is None:
                    if truth != 0:
                        raise AttackerError(f"flows {(t, g)}: no published row, private stays {truth}")
                    status, value = "published", 0
                else:
                    value = row["stays"]
                    status = "masked" if value is None else "published"
                cell = self.s.cell(self.run_id, "flows", "stays", tuple(zip(keys, (t, g))), candidates, truth, status, value)
                if g == ALL:
                    totals[t] = cell.expr
                else:
                    parts.append(cell.expr)
                    if row is not None and row["share"] is not None and (value is None or pub.get((t, ALL), {}).get("stays") is None):
                        self._shares.append((t, cell.expr, row["share"], value))
        for t, expr, share, value in self._shares:
            total = pub.get((t, ALL))
            self.s.rate(expr, totals[t], share, 1.0, "flows.share", numerator_value=value,
                        denominator_value=None if total is None else total["stays"])
        if self.truth.territories is not None:
            true_res = {str(t): n for t, n in self.truth.territories.iter_rows()}
            for row in self.t["territories"].iter_rows(named=True):
                t = str(row["territory_id"])
                value = row["stays_residents"]
                self.s.cell(self.run_id, "territories", "stays_residents", (("territory_id", t),), [totals.get(t)],
                            true_res[t], "masked" if value is None else "published", value)

    # -- evaluation: outcomes by deprivation quintile -------------------------------------------

    def deprivation(self) -> None:
        """Events per year, disease, outcome and deprivation quintile (one unknown each), the area
        row their sum; for a per-case outcome the quintile's cases (its denominator), one unknown
        per year, disease and quintile shared by every per-case outcome, the area its sum. The
        events of a per-case row are measures of its cases' group (at least 0 when those are
        masked). Truth: ``<output.dir>/evaluation/by_deprivation.parquet``."""
        path = self.truth.out / "evaluation" / "by_deprivation.parquet"
        truth = pl.read_parquet(path)
        true = {(int(r["year"]), r["disease"], r["outcome"], int(r["quintile"])): r for r in truth.iter_rows(named=True)}
        pub = self.t["evaluation_deprivation"]
        keys = ("year", "disease", "outcome", "quintile")
        for (y, d, o), group in pub.group_by("year", "disease", "outcome", maintain_order=True):
            per_case = o not in POPULATION_OUTCOMES
            rows = {r["quintile"]: r for r in group.iter_rows(named=True)}
            quintiles = sorted(q for q in rows if q is not None)
            for column in ("events", *(("denominator",) if per_case else ())):
                parts = []
                for q in [*quintiles, None]:
                    row = rows[q]
                    if q is None:
                        value = sum(int(round(true[(y, d, o, k)][column])) for k in quintiles)
                        candidates = [self.s.add(*parts)]
                    else:
                        value = int(round(true[(y, d, o, q)][column]))
                        key = ("deprivation cases", d, y, q) if column == "denominator" else ("deprivation", o, d, y, q)
                        candidates = [self.s.atom(key, value)]
                    shown = row[column]
                    floor = 0 if column == "events" and per_case and row["denominator"] is None else None
                    cell = self.s.cell(self.run_id, "evaluation_deprivation", column, tuple(zip(keys, (y, d, o, q))), candidates,
                                       value, "masked" if shown is None else "published",
                                       None if shown is None else int(round(shown)), floor=floor)
                    if q is not None:
                        parts.append(cell.expr)
