"""How well can anyone predict "moves up a stratum or dies next year" on a synthetic world?

The prediction of ``respop strata run`` (issue 6) aims at AUC ≥ 0.75 on the held-out year. This
script measures the ceiling the synthetic world allows: the same labels and the same temporal split
(train on N ≤ last − 2, test on N = last − 1), the same gradient-boosting settings, once with the
features respop observes and once with the world's **true latent severity of year N** added (heart
failure stage, diabetes complications, from ``truth/severity.parquet``), which no real pipeline can
see. If the oracle stays below 0.75, the goal cannot be reached from this year's data on this world.

    .venv/bin/python benchmarks/prediction_ceiling.py [--data output/demo/data] [--run output/demo/run]

Needs ``respop strata run`` on the world first (``make demo`` does it for the demo).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from respop.strata.prediction import default_features, labelled

TRUE_SEVERITY = ["hf_stage", "complication_kidney", "complication_eye", "complication_foot", "complication_cardiovascular"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("output/demo/data"))
    parser.add_argument("--run", type=Path, default=Path("output/demo/run"))
    args = parser.parse_args()
    ps = pl.read_parquet(args.run / "strata" / "person_strata.parquet")
    severity = pl.read_parquet(args.data / "truth" / "severity.parquet").rename({"person_key": "patient_key"})
    severity = severity.with_columns(pl.col("year").cast(pl.Int16))
    last = int(ps["year"].max())
    print(f"{'disease':<15} {'features':<32} {'test person-years':>18} {'AUC':>6}")
    for disease in sorted(ps["disease"].unique()):
        rows = ps.filter(pl.col("disease") == disease)
        features = default_features(rows.columns)
        lab = (
            labelled(rows, last)
            .join(severity, on=["patient_key", "year"], how="left")
            .with_columns(pl.col(pl.Boolean).cast(pl.Float64))
            .with_columns(pl.col(TRUE_SEVERITY).cast(pl.Float64), (pl.col("sex") == 2).cast(pl.Float64).alias("female"))
        )
        train, test = lab.filter(pl.col("year") <= last - 2), lab.filter(pl.col("year") == last - 1)
        for name, cols in (("observed (respop)", features), ("observed + true severity of N", features + TRUE_SEVERITY)):
            model = HistGradientBoostingClassifier(
                learning_rate=0.05, max_iter=300, max_leaf_nodes=15, min_samples_leaf=40, random_state=0
            ).fit(train.select(cols).fill_null(-1).to_numpy(), train["label"].to_numpy())
            auc = roc_auc_score(test["label"].to_numpy(), model.predict_proba(test.select(cols).fill_null(-1).to_numpy())[:, 1])
            print(f"{disease:<15} {name:<32} {test.height:>18,} {auc:>6.3f}")


if __name__ == "__main__":
    main()
