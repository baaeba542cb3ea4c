"""Prediction against the ceiling of the synthetic world, and the strata order, over several seeds.

For each world (``respop synth --profile demo|peripheral --seed N``, then ``respop run`` up to the
strata step), each disease and each target of ``respop.strata.prediction`` (``upstratum``: a higher
stratum or an in-hospital death next year, the FHF's question; ``emergency_or_death``: an
emergency stay or an in-hospital death next year), this prints the held-out AUC of respop's models
beside the **oracle**'s (:func:`respop.strata.validation.oracle_metrics`: the same split and
gradient boosting given in addition the world's true latent severity of year N, which no pipeline
sees), the calibration slope and intercept with their 95 % intervals, the Brier skill score, and
the log-rank p-values between adjacent strata (``survival/logrank.csv``). Goals (issue 18): AUC
within 0.03 of the oracle, calibration slope in [0.8, 1.2], Brier skill > 0, every adjacent pair of
strata ordered with p < 0.001.

    .venv/bin/python benchmarks/prediction.py --seeds 1,2,3,4,5 [--profiles demo,peripheral] [--work benchmarks/out/pred] [--build]
    .venv/bin/python benchmarks/prediction.py --seeds 1 --no-recalibrate   # the models without recalibration

``--build`` generates the worlds and runs the pipeline (``input,territories,cases,strata``, no
models) for the seeds whose run is missing (about 2 minutes a world on 2 cores), in
``WORK/<profile>-s<seed>``; the territories step keeps the demo configuration's settings but its
territory count and minimum population (the peripheral world has its own). ``--csv FILE`` writes
the rows. ``--no-history``: the gradient boosting without the history features
(``respop.strata.prediction.HISTORY_FEATURES``), to measure what they bring.
"""

from __future__ import annotations

import argparse
import functools
import re
import subprocess
import sys
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def build(folder: Path, seed: int, profile: str = "demo") -> None:
    """The ``profile`` world of ``seed`` and its run up to the strata step, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    config = (ROOT / "territories" / "demo.toml").read_text(encoding="utf-8")
    config = (config.replace("../output/demo/data", "data").replace("../output/demo/run", "run")
              .replace("sqlite:///../output/demo/respop.sqlite", "sqlite:///respop.sqlite"))
    config = re.sub(r"^(target_count|min_population)\s*=.*\n", "", config, flags=re.M)
    (folder / "demo.toml").write_text(config, encoding="utf-8")
    if not (folder / "data" / "truth").is_dir():
        subprocess.run([BIN / "respop", "synth", "--profile", profile, "--seed", str(seed), "--out", folder / "data"], check=True)
    subprocess.run([BIN / "respop", "run", folder / "demo.toml", "--steps", "input,territories,cases,strata", "--no-models"],
                   check=True)


def main() -> None:
    import respop.strata.prediction as prediction
    from respop.strata.validation import prediction_vs_oracle

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--profiles", default="demo", help="comma-separated world shapes (demo, peripheral)")
    parser.add_argument("--no-history", dest="history", action="store_false")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "pred")
    parser.add_argument("--build", action="store_true")
    parser.add_argument("--no-recalibrate", dest="recalibrate", action="store_false")
    parser.add_argument("--diseases", default=None, help="comma-separated (default: every disease of the run)")
    parser.add_argument("--csv", type=Path, default=None)
    args = parser.parse_args()
    if not args.history:
        prediction.evaluate = functools.partial(prediction.evaluate, history=False)
    seeds = [int(s) for s in args.seeds.split(",")]
    worlds = [(profile, seed) for profile in args.profiles.split(",") for seed in seeds]
    rows, orders = [], []
    for profile, seed in worlds:
        folder = args.work / f"{profile}-s{seed}"
        if not (folder / "run" / "strata" / "person_strata.parquet").is_file():
            if not args.build:
                raise SystemExit(f"no run for {profile} seed {seed} in {folder} (--build makes it)")
            build(folder, seed, profile)
        strata = folder / "run" / "strata"
        ps = pl.read_parquet(strata / "person_strata.parquet")
        diseases = args.diseases.split(",") if args.diseases else sorted(ps["disease"].unique().to_list())
        for disease in diseases:
            table = prediction_vs_oracle(ps, folder / "data" / "truth", disease, recalibrate=args.recalibrate)
            rows.append(table.with_columns(pl.lit(profile).alias("profile"), pl.lit(seed).alias("seed")))
            print(f"{profile} seed {seed} {disease}: done", file=sys.stderr)
        logrank_path = strata / "survival" / "logrank.csv"
        if logrank_path.is_file():  # written when the run fitted the models
            logrank = pl.read_csv(logrank_path)
            orders.append(logrank.select(pl.lit(profile).alias("profile"), pl.lit(seed).alias("seed"), "disease", "higher",
                                         "lower", "ordered", "p_value"))
    table = pl.concat(rows).select("profile", "seed", pl.exclude("profile", "seed"))
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=250, float_precision=3, tbl_hide_dataframe_shape=True):
        print(table.select(
            "profile", "seed", "disease", "target", "model", "auc", "oracle_auc", "auc_gap", "calibration_slope",
            "calibration_slope_lower", "calibration_slope_upper", "calibration_intercept", "brier_skill", "goals",
        ))
        if orders:
            print(pl.concat(orders))
        gb = table.filter(pl.col("model") == "gradient_boosting")
        low, high = 0.8, 1.2
        print(gb.group_by("disease", "target", maintain_order=True).agg(
            pl.len().alias("worlds"),
            (pl.col("auc_gap") <= 0.03).sum().alias("gap_ok"),
            pl.col("calibration_slope").is_between(low, high).sum().alias("slope_ok"),
            (pl.col("brier_skill") > 0).sum().alias("skill_ok"),
            pl.col("goals").sum().alias("all_goals"),
        ))
    if args.csv:
        table.write_csv(args.csv)


if __name__ == "__main__":
    main()
