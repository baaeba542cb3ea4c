"""The planted intervention of a synthetic world (issue 20: evaluation of the experiment).

A profile's ``[intervention]`` (:class:`respop.synth.profiles.InterventionProfile`, none by default)
names pilot planted territories, the year each starts and a relative effect on the stays of each
disease. From its start year, each stay of that disease's kind (``heart_failure``, ``diabetes``,
``copd`` in ``truth/stays``) of a person living that year in a pilot territory is

- avoided with probability −effect when the effect is negative: the decompensation happens and is
  managed without a stay (the disease course, its stage, the vulnerable phase after a stay and
  death are those of the world without the intervention);
- followed by one more stay (a re-hospitalisation later in the year, or earlier when the year has
  no room after it) with probability effect when it is positive.

So the pilots' expected stays of that kind are exactly (1 + effect) × what they would have been.
The decisions draw from a random stream of their own (:data:`INTERVENTION_STREAM`), and the stays
are removed (or added) after every other draw of the year: the world, its other stays and every
territory that is not a pilot are exactly those of the same seed without the intervention.

Truth: ``truth/intervention.parquet`` (territory_id, territory_name, start_year, disease, effect)
and ``truth/intervention_stays.parquet`` (territory_id, year, disease, counterfactual, observed,
avoided, terminal; every planted territory, year and disease; ``avoided`` is negative for added
stays). Stays are counted once per stay (the copies of the planted ``duplicate_stays`` fault are
not), by the territory of the person's zone that year.

``terminal``: the in-hospital deaths caused by the disease (``death`` stays whose principal
diagnosis is the disease's, e.g. I50.0: about a fifth of the stays with a heart-failure principal
diagnosis). The intervention leaves them (deaths are unchanged), so an outcome that counts every
stay coded for the disease moves by effect × counterfactual / (counterfactual + terminal), not by
effect: e.g. about −12% for −15% on heart failure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from respop.synth.geography import World
from respop.synth.profiles import INTERVENTION_KINDS, InterventionProfile

INTERVENTION_STREAM = 3
"""The intervention's random stream: (seed, chunk, INTERVENTION_STREAM)."""
STAYS_FILE = "intervention_stays.parquet"
FILE = "intervention.parquet"


class Planting:
    """The intervention of one world: which zones are in a pilot, from which year."""

    def __init__(self, intervention: InterventionProfile | None, world: World, terminal: dict[str, list[str]] | None = None) -> None:
        """``terminal``: disease → the principal diagnoses (prefixes) of the in-hospital deaths it
        causes (``generate.TRUTH_DISEASES``), counted apart: the intervention leaves them."""
        self.intervention = intervention
        self.terminal = {k: v for k, v in (terminal or {}).items() if v}
        codes = world.zones["zone_code"].to_numpy().astype(str)
        territory = world.zones["territory_id"].to_numpy().astype(np.int64)
        self.zone_territory = dict(zip(codes.tolist(), territory.tolist()))
        self.start = {}
        if intervention is not None:
            self.start = dict(zip(intervention.pilots, intervention.start_years))

    def truth(self, world: World) -> pl.DataFrame:
        """``truth/intervention.parquet``: one row per pilot × disease (no row without one)."""
        rows = []
        names = dict(world.territories.select("territory_id", "name").iter_rows())
        if self.intervention is not None:
            for pilot, start in self.start.items():
                for disease, effect in self.intervention.effects.items():
                    rows.append((pilot, names.get(pilot), start, disease, effect))
        return pl.DataFrame(
            rows, orient="row",
            schema={"territory_id": pl.Int64, "territory_name": pl.String, "start_year": pl.Int64,
                    "disease": pl.String, "effect": pl.Float64},
        )

    def apply(
        self, rng: np.random.Generator, stays: pl.DataFrame, diagnoses: pl.DataFrame, death_date: np.ndarray,
        year: int, n_frame: int,
    ) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        """The year's numbered stays (one row per written row, columns of ``generate._to_snds``:
        stay, person, kind, true_zone, hospital_id, rsa_num, fault, entry_date, exit_date, …) with the
        intervention's stays removed or added, the diagnoses (stay, code, position) of the added
        ones appended, and the counts: territory_id, disease, counterfactual, observed.
        ``death_date``: the persons' death dates (an added stay ends before the death).

        ``n_frame``: the number of stays the year's frame had (stay ids 0 … n_frame − 1): one
        uniform is drawn for each, so that the decisions of a year do not depend on the others."""
        stays = stays.with_columns(
            pl.col("true_zone").replace_strict(self.zone_territory, default=0, return_dtype=pl.Int64).alias("_territory")
        )
        before = _counts(stays)
        terminal = self._terminal(stays)
        if self.intervention is None:
            counts = before.rename({"stays": "counterfactual"}).with_columns(pl.col("counterfactual").alias("observed"))
            return stays.drop("_territory"), diagnoses, _with_terminal(counts, terminal)
        u = rng.random(n_frame)
        started = [p for p, start in self.start.items() if year >= start]
        drop_ids: list[np.ndarray] = []
        add_ids: list[np.ndarray] = []
        once = stays.filter(_not_a_copy())  # one row per stay
        for disease, effect in self.intervention.effects.items():
            targeted = once.filter((pl.col("kind") == disease) & pl.col("_territory").is_in(started))["stay"].to_numpy()
            chosen = targeted[u[targeted] < abs(effect)]
            (drop_ids if effect < 0 else add_ids).append(chosen)
        dropped = np.concatenate(drop_ids) if drop_ids else np.array([], dtype=np.int64)
        # the added stays are numbered after each hospital's last number (removed stays' included)
        last_number = stays.group_by("hospital_id").agg(pl.col("rsa_num").cast(pl.Int64).max().alias("_n"))
        stays = stays.filter(~pl.col("stay").is_in(dropped))
        added = np.concatenate(add_ids) if add_ids else np.array([], dtype=np.int64)
        if len(added):
            stays, diagnoses = _add_stays(rng, stays, diagnoses, death_date, np.sort(added), year, n_frame, last_number)
        after = _counts(stays)
        counts = (
            before.rename({"stays": "counterfactual"})
            .join(after.rename({"stays": "observed"}), on=["territory_id", "disease"], how="full", coalesce=True)
            .with_columns(pl.col("counterfactual", "observed").fill_null(0))
        )
        return stays.drop("_territory"), diagnoses, _with_terminal(counts, terminal)

    def _terminal(self, stays: pl.DataFrame) -> pl.DataFrame:
        """In-hospital deaths (``death`` stays) whose principal diagnosis is the disease's."""
        frames = [
            stays.filter(_not_a_copy() & (pl.col("kind") == "death")
                         & pl.any_horizontal(pl.col("principal_diagnosis").str.starts_with(p) for p in prefixes))
            .group_by(pl.col("_territory").alias("territory_id")).agg(pl.len().cast(pl.Int64).alias("terminal"))
            .with_columns(pl.lit(disease).alias("disease"))
            for disease, prefixes in self.terminal.items()
        ]
        schema = {"territory_id": pl.Int64, "terminal": pl.Int64, "disease": pl.String}
        return pl.concat([f.select(list(schema)) for f in frames]) if frames else pl.DataFrame(schema=schema)


def _with_terminal(counts: pl.DataFrame, terminal: pl.DataFrame) -> pl.DataFrame:
    return (
        counts.join(terminal, on=["territory_id", "disease"], how="full", coalesce=True)
        .with_columns(pl.col("counterfactual", "observed", "terminal").fill_null(0))
        .select("territory_id", "disease", "counterfactual", "observed", "terminal")
    )


def _not_a_copy() -> pl.Expr:
    return pl.col("fault").ne("duplicate_stays").fill_null(True)


def _counts(stays: pl.DataFrame) -> pl.DataFrame:
    return (
        stays.filter(_not_a_copy() & pl.col("kind").is_in(INTERVENTION_KINDS))
        .group_by(pl.col("_territory").alias("territory_id"), pl.col("kind").alias("disease"))
        .agg(pl.len().cast(pl.Int64).alias("stays"))
    )


def _add_stays(
    rng: np.random.Generator, stays: pl.DataFrame, diagnoses: pl.DataFrame, death_date: np.ndarray, ids: np.ndarray,
    year: int, n_frame: int, last_number: pl.DataFrame,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One more stay after each stay of ``ids`` (same person, hospital, codes and length), a
    re-hospitalisation at a date drawn after it in the year (before it when there is no room
    after; neither: none is added), clean of faults, numbered after the hospital's stays
    (``last_number``: hospital_id, _n, the last number before any was removed)."""
    originals = stays.filter(pl.col("stay").is_in(ids) & _not_a_copy()).sort("stay")
    jan1, dec31 = np.datetime64(f"{year}-01-01"), np.datetime64(f"{year}-12-31")
    entry = originals["entry_date"].to_numpy().astype("datetime64[D]")
    exit_ = originals["exit_date"].to_numpy().astype("datetime64[D]")
    los = (exit_ - entry).astype(np.int64)
    death = death_date[originals["person"].to_numpy()].astype("datetime64[D]")
    last = np.where(np.isnat(death), dec31, np.minimum(death - np.timedelta64(1, "D"), dec31))
    after_lo = exit_ + np.timedelta64(1, "D") + los.astype("timedelta64[D]")  # the new exit date, at the earliest
    room_after = (last - after_lo).astype(np.int64) + 1
    before_hi = entry - np.timedelta64(1, "D")  # … or at the latest, before the original
    room_before = (before_hi - jan1).astype(np.int64) + 1
    u = rng.random(len(originals))
    new_exit = np.where(
        room_after > 0,
        after_lo + (u * np.maximum(room_after, 1)).astype(np.int64).astype("timedelta64[D]"),
        jan1 + (u * np.maximum(room_before, 1)).astype(np.int64).astype("timedelta64[D]"),
    )
    keep = (room_after > 0) | (room_before > 0)
    new_ids = n_frame + np.arange(len(originals))
    copies = (
        originals.with_columns(
            pl.Series("stay", new_ids),
            pl.Series("exit_date", new_exit).cast(pl.Date),
            pl.Series("_keep", keep),
        )
        .filter(pl.col("_keep"))
        .drop("_keep")
        .with_columns((pl.col("exit_date") - pl.duration(days=pl.col("length_of_stay"))).alias("entry_date"), pl.lit(None, pl.String).alias("fault"))
        .join(last_number, on="hospital_id", how="left")
        .with_columns(
            (pl.col("_n") + pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("hospital_id"))
            .cast(pl.String).str.zfill(10).alias("rsa_num")
        )
        .drop("_n")
    )
    old_to_new = dict(zip(originals["stay"].to_list(), new_ids.tolist()))
    kept = set(copies["stay"].to_list())
    extra = (
        diagnoses.filter(pl.col("stay").is_in(originals["stay"].to_list()))
        .with_columns(pl.col("stay").replace_strict(old_to_new, return_dtype=diagnoses.schema["stay"]))
        .filter(pl.col("stay").is_in(list(kept)))
    )
    # in hospital and number order, as the stays were numbered (the added ones last in their hospital)
    return pl.concat([stays, copies.select(stays.columns)]).sort("hospital_id", "rsa_num"), pl.concat([diagnoses, extra])


def write_truth(planting: Planting, world: World, counts: list[pl.DataFrame], years: list[int], folder: Path) -> None:
    """``intervention.parquet`` and ``intervention_stays.parquet`` (every planted territory × year ×
    disease, zeros included) under ``folder``."""
    folder = Path(folder)
    planting.truth(world).write_parquet(folder / FILE)
    territories = sorted(set(planting.zone_territory.values()))
    grid = pl.DataFrame(
        {"territory_id": territories}, schema={"territory_id": pl.Int64}
    ).join(pl.DataFrame({"year": years}, schema={"year": pl.Int64}), how="cross").join(
        pl.DataFrame({"disease": list(INTERVENTION_KINDS)}), how="cross"
    )
    total = (
        pl.concat(counts).group_by("territory_id", "year", "disease").agg(pl.col("counterfactual", "observed", "terminal").sum())
        if counts else pl.DataFrame(schema={"territory_id": pl.Int64, "year": pl.Int64, "disease": pl.String,
                                            "counterfactual": pl.Int64, "observed": pl.Int64, "terminal": pl.Int64})
    )
    (
        grid.join(total, on=["territory_id", "year", "disease"], how="left")
        .with_columns(pl.col("counterfactual", "observed", "terminal").fill_null(0).cast(pl.Int64))
        .with_columns((pl.col("counterfactual") - pl.col("observed")).alias("avoided"))
        .select("territory_id", "year", "disease", "counterfactual", "observed", "avoided", "terminal")
        .sort("territory_id", "year", "disease")
        .write_parquet(folder / STAYS_FILE)
    )
