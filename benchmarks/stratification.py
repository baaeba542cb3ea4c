"""Benchmark: risk stratification (``respop.strata``) on national synthetic data.

    .venv/bin/python benchmarks/stratification.py                 # all cases of 2023, five years of history
    .venv/bin/python benchmarks/stratification.py --full          # also every index year: transitions, survival, prediction

Data: the national data and staged canonical tables of benchmarks/case_finding.py (run it first,
or let this script prepare them the same way). Each step runs in a fresh Python process (peak
memory is the step's own VmHWM):

- ``floor``: one polars pass over the same files;
- ``strata``: cases of the last year for both diseases (five years of history), residence,
  features, strata, care use per zone/territory/area;
- ``full`` (``--full``): cases of every year, strata, transitions, survival (Kaplan–Meier,
  log-rank, Cox) and prediction (gradient boosting and logistic, temporal validation).

Nothing is asserted (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from case_finding import DEFAULT_DATA, prepare  # noqa: E402
from case_finding import run as run_child  # noqa: E402

CHILD = r"""
import datetime as dt, json, sys, time
from pathlib import Path
step, data, years = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
import polars as pl
stays_files = [str(data / f"staged-{y}" / "staged" / "stays.parquet") for y in years]
dx_files = [str(data / f"staged-{y}" / "staged" / "diagnoses.parquet") for y in years]
t0 = time.perf_counter()
timings, counts = {}, {}
def lap(name):
    global t0
    now = time.perf_counter(); timings[name] = now - t0; t0 = now
if step == "floor":
    s = pl.scan_parquet(stays_files)
    d = pl.scan_parquet(dx_files).select("stay_id", "code", "position")
    s.select(pl.len(), pl.col("patient_key").str.len_bytes().sum(), pl.col("residence_zone").str.len_bytes().sum(),
             pl.col("exit_date").max(), pl.col("entry_date").max(), pl.col("age").sum(), pl.col("died").sum(),
             pl.col("via_emergency").sum(), pl.col("length_of_stay").sum()).collect(engine="streaming")
    d.select(pl.len(), pl.col("code").str.len_bytes().sum(), pl.col("stay_id").sum()).collect(engine="streaming")
    lap("floor")
else:
    from respop.case_finding import attach_residence, find_cases, load_spec
    from respop.spec.loaders import spec_path
    from respop.strata.engine import assign, care_use, death_years, outcome_events, transitions
    from respop.strata.features import compute_features, load_features, model_features
    stays, dx = pl.scan_parquet(stays_files), pl.scan_parquet(dx_files)
    specs = [load_spec(spec_path(d)) for d in ("diabetes", "heart_failure")]
    index = [years[-1]] if step == "strata" else years
    frames = []
    for spec in specs:
        c = find_cases(spec, stays, dx, index, years[0]).collect(engine="streaming")
        frames.append(attach_residence(c, stays, spec.window.lookback_years).collect(engine="streaming"))
    cases = pl.concat(frames)
    counts["case_years"] = int(cases["is_case"].sum())
    lap("cases + residence")
    feats = load_features()
    ps = pl.concat([assign(s, compute_features(s, cases.lazy(), stays, dx, feats)).collect(engine="streaming") for s in specs],
                   how="vertical_relaxed")
    counts["person_years"] = ps.height
    lap("features + strata")
    use = care_use(ps)
    counts["care_use_rows"] = use.height
    lap("care use")
    if step == "full":
        from respop.strata.prediction import evaluate
        from respop.strata.survival import follow_up, survival
        deaths = death_years(stays).collect(engine="streaming")
        order = {s.disease: [lv.name for lv in s.strata.levels] for s in specs}
        transitions(ps, deaths, years[-1], order)
        lap("transitions")
        events = pl.concat([outcome_events(s, stays, dx).collect(engine="streaming") for s in specs])
        fu = follow_up(ps, events, dt.date(years[-1], 12, 31))
        survival(fu, ["ckd", "copd", "other_disease"])
        counts["followed"] = fu.height
        lap("survival")
        for s in specs:
            r = evaluate(ps, s.disease, years[-1], features=["female", "stratum_level", *model_features(feats)])
            counts[f"auc_{s.disease}"] = round(float(r.metrics.filter((pl.col("model") == "gradient_boosting") & (pl.col("target") == r.main_target))["auc"].item()), 3)
        lap("prediction")
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024
print(json.dumps({"timings": timings, "peak_mb": peak, **counts}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--profile", default="national")
    parser.add_argument("--full", action="store_true", help="also every index year: transitions, survival, prediction")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    console = Console(width=150)
    years = prepare(args.data, args.profile, console)
    results = {}
    for step in ["floor", "strata", *(["full"] if args.full else [])]:
        console.print(f"{step}…")
        results[step] = run_child(step, args.data, years, CHILD)
    floor = results["floor"]["timings"]["floor"]
    table = Table(title=f"Stratification, {args.profile} data {years[0]}–{years[-1]}", title_justify="left")
    for col in ("run", "stage", "seconds", "× floor", "peak RSS MB (run)", "notes"):
        table.add_column(col, justify="left" if col in ("run", "stage", "notes") else "right")
    for step, r in results.items():
        notes = ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in r.items() if k not in ("timings", "peak_mb"))
        total = sum(r["timings"].values())
        for i, (stage, seconds) in enumerate(r["timings"].items()):
            table.add_row(step if i == 0 else "", stage, f"{seconds:.1f}", f"{seconds / floor:.1f}", f"{r['peak_mb']:,.0f}" if i == 0 else "", notes if i == 0 else "")
        if len(r["timings"]) > 1:
            table.add_row("", "total", f"{total:.1f}", f"{total / floor:.1f}", "", "")
    console.print(table)
    console.print("strata: all cases of the last year with five years of history; full: every index year. "
                  "× floor: seconds over one polars pass over the same files.")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
