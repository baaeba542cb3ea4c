"""Benchmark: case finding (``respop.case_finding``) on national synthetic data, 1 and 5 years.

    .venv/bin/python benchmarks/case_finding.py                      # 1 and 5 years of national data
    .venv/bin/python benchmarks/case_finding.py --sizes 1 --steps floor,respop
    .venv/bin/python benchmarks/case_finding.py --data benchmarks/out/cases/demo --profile demo

Data: ``respop synth --profile national --seed 1`` (2019–2023) in ``--data`` (generated when
absent: about 12 minutes and 10 GB), then each year's PMSI staged once into the canonical stays and
diagnoses (``read_pmsi(...).write``; cached in ``<data>/staged-<year>/``). Case finding reads those
canonical Parquet files, as ``respop cases run`` does after staging.

Steps, each in a fresh Python process (peak memory is the step's own VmHWM):

- ``floor``: one polars pass over the same files (every column the engine reads, streaming);
- ``respop``: both specs, :func:`find_cases` + :func:`attach_residence`, index year = the last year;
- ``pandas``: a naive pandas implementation of the same rules (read each year, filter the codes,
  merge, group by), written the way an analyst would in pandas; its case counts are checked
  against respop's.

Nothing is asserted (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT / "benchmarks" / "out" / "cases" / "national"
YEARS = [2019, 2020, 2021, 2022, 2023]

CHILD = r"""
import json, sys, time
from pathlib import Path
step, data, years = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
import polars as pl
stays_files = [str(data / f"staged-{y}" / "staged" / "stays.parquet") for y in years]
dx_files = [str(data / f"staged-{y}" / "staged" / "diagnoses.parquet") for y in years]
STAY_COLS = ["stay_id", "patient_key", "exit_date", "age", "sex", "died", "residence_zone"]
t0 = time.perf_counter()
counts = {}
if step == "floor":
    s = pl.scan_parquet(stays_files).select(STAY_COLS)
    d = pl.scan_parquet(dx_files).select("stay_id", "code", "position")
    a = s.select(pl.len(), pl.col("patient_key").str.len_bytes().sum(), pl.col("residence_zone").str.len_bytes().sum(),
                 pl.col("exit_date").max(), pl.col("age").sum(), pl.col("died").sum()).collect(engine="streaming")
    b = d.select(pl.len(), pl.col("code").str.len_bytes().sum(), pl.col("stay_id").sum(),
                 pl.col("position").to_physical().sum()).collect(engine="streaming")
    counts = {"stays": int(a[0, 0]), "diagnoses": int(b[0, 0])}
elif step == "respop":
    from respop.case_finding import attach_residence, find_cases, load_spec
    from respop.spec.loaders import spec_path
    stays, dx = pl.scan_parquet(stays_files), pl.scan_parquet(dx_files)
    for disease in ("diabetes", "heart_failure"):
        spec = load_spec(spec_path(disease))
        cases = attach_residence(find_cases(spec, stays, dx, [years[-1]], years[0]), stays, spec.window.lookback_years)
        df = cases.collect(engine="streaming")
        counts[disease] = int(df["is_case"].sum())
        counts[disease + "_zones"] = int(df["residence_zone"].n_unique())
else:
    sys.path.insert(0, str(Path.cwd() / "benchmarks"))
    from naive_pandas import naive_cases
    from respop.case_finding import load_spec
    from respop.spec.loaders import spec_path
    for disease in ("diabetes", "heart_failure"):
        df = naive_cases(load_spec(spec_path(disease)), stays_files, dx_files, years[-1], years[0])
        counts[disease] = int(df["is_case"].sum())
        counts[disease + "_zones"] = int(df["residence_zone"].nunique())
seconds = time.perf_counter() - t0
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak, **counts}))
"""


def prepare(data: Path, profile: str, console: Console) -> list[int]:
    """Generate the data if absent, and stage each year's PMSI once (cached)."""
    if not (data / "pmsi").is_dir():
        console.print(f"generating {profile} data in {data} (long)…")
        subprocess.run([str(ROOT / ".venv" / "bin" / "respop"), "synth", "--profile", profile, "--seed", "1", "--out", str(data)],
                       check=True, cwd=ROOT)
    years = sorted({int("20" + p.name[5:7]) for p in (data / "pmsi").iterdir() if p.name.startswith("T_MCO")})
    for year in years:
        out = data / f"staged-{year}"
        if (out / "report.json").is_file():
            continue
        console.print(f"staging {year}…")
        code = (
            "from respop.pmsi import read_pmsi; from respop.config import InputConfig; import sys; "
            f"read_pmsi(sys.argv[1], InputConfig(years=[{year}])).write(sys.argv[2])"
        )
        subprocess.run([sys.executable, "-c", code, str(data / "pmsi"), str(out)], check=True, cwd=ROOT)
    return years


def run(step: str, data: Path, years: list[int], child: str = CHILD) -> dict:
    """Run one step of ``child`` (a script taking step, data folder, years) in a fresh process."""
    proc = subprocess.run([sys.executable, "-c", child, step, str(data), json.dumps(years)], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{step} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--profile", default="national")
    parser.add_argument("--sizes", default="1,5", help="numbers of years (the last N years of the data)")
    parser.add_argument("--steps", default="floor,respop,pandas")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    console = Console(width=170)
    all_years = prepare(args.data, args.profile, console)
    steps = [s.strip() for s in args.steps.split(",")]
    if "floor" not in steps:
        steps.insert(0, "floor")
    table = Table(title=f"Case finding, {args.profile} data: diabetes + heart failure, index year {all_years[-1]}", title_justify="left")
    for col in ("years", "stays", "diagnoses", "step", "seconds", "peak RSS MB", "× floor", "× respop", "cases (diabetes / HF)", "agrees"):
        table.add_column(col, justify="left" if col in ("step", "agrees") else "right")
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        years = all_years[-size:]
        got = {}
        for step in steps:
            console.print(f"{size} year(s): {step}…")
            got[step] = run(step, args.data, years)
        floor, mine = got["floor"], got.get("respop")
        for step, r in got.items():
            cases = "" if step == "floor" else f"{r['diabetes']:,} / {r['heart_failure']:,}"
            agrees = ""
            if step == "pandas" and mine:
                agrees = "yes" if all(r[k] == mine[k] for k in ("diabetes", "heart_failure", "diabetes_zones", "heart_failure_zones")) else "NO"
            table.add_row(f"{years[0]}–{years[-1]}" if size > 1 else str(years[0]), f"{floor['stays']:,}", f"{floor['diagnoses']:,}", step,
                          f"{r['seconds']:.1f}", f"{r['peak_mb']:,.0f}", f"{r['seconds'] / floor['seconds']:.1f}",
                          f"{r['seconds'] / mine['seconds']:.1f}" if mine else "", cases, agrees)
            results.append({"years": years, "step": step, **r})
    console.print(table)
    console.print("× floor: seconds over one polars pass over the same files; × respop: the step's seconds over respop's "
                  "(pandas: how many times slower the naive pandas implementation is).")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
