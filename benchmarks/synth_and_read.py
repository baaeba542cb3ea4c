"""Benchmark: generate synthetic PMSI data (``respop synth``) and read it back (``respop.pmsi``).

    .venv/bin/python benchmarks/synth_and_read.py                   # demo (5 years) and national (1 year)
    .venv/bin/python benchmarks/synth_and_read.py --cases demo

For each case, two steps run in fresh Python processes (so that peak memory is the step's own):
``generate`` (the world, persons, stays, SNDS tables and truth) and ``read`` (``read_pmsi(...)
.report()``: validation, canonical model, quality filters, counts). The table gives rows written /
read per second and the peak resident memory (VmHWM, interpreter and imports included). The
baseline of ``read`` is one plain polars pass over the same files (``pmsi_read.py`` describes it);
generation has no baseline. Nothing is asserted: see benchmarks/README.md.
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
OUT = ROOT / "benchmarks" / "out" / "synth"
CASES = {"demo": ("demo", None), "national": ("national", [2023])}

CHILD = r"""
import json, sys, time
from pathlib import Path
step, profile, years, out = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), Path(sys.argv[4])
import polars as pl
t0 = time.perf_counter()
if step == "generate":
    from respop.synth import generate, load_profile
    r = generate(load_profile(profile), seed=1, out=out, years=years)
    rows = sum(pl.scan_parquet(p if p.is_file() else str(p / "*.parquet")).select(pl.len()).collect().item()
               for p in (out / "pmsi").iterdir())
    extra = {"persons": r.persons, "stays": sum(r.stays.values())}
elif step == "baseline":
    rows = 0
    for p in sorted((out / "pmsi").iterdir()):
        lf = pl.scan_parquet(p if p.is_file() else str(p / "*.parquet"))
        rows += lf.select(pl.len(), *[pl.col(c).cast(pl.String).str.len_bytes().sum() for c in lf.collect_schema().names()]).collect(engine="streaming")[0, 0]
    extra = {}
else:
    from respop.pmsi import read_pmsi
    data = read_pmsi(out / "pmsi")
    report = data.report()
    rows = sum(t.rows_read for t in report.tables)
    extra = {"stays_kept": report.stays_kept, "balanced": report.balanced}
seconds = time.perf_counter() - t0
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024
print(json.dumps({"seconds": seconds, "rows": rows, "peak_mb": peak, **extra}))
"""


def run(step: str, profile: str, years: list[int] | None, out: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, step, profile, json.dumps(years), str(out)],
        capture_output=True, text=True, cwd=ROOT,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{step} {profile} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="demo,national", help="comma-separated: demo, national")
    args = parser.parse_args()
    console = Console(width=160)
    table = Table(title="Synthetic data: generate, then read with respop.pmsi", title_justify="left")
    for col in ("case", "step", "rows", "seconds", "rows/s", "peak RSS MB", "× baseline", "notes"):
        table.add_column(col, justify="left" if col in ("case", "step", "notes") else "right")
    for case in args.cases.split(","):
        profile, years = CASES[case]
        out = OUT / case
        results = {}
        for step in ("generate", "baseline", "read"):
            console.print(f"{case}: {step}…")
            results[step] = run(step, profile, years, out)
        base = results["baseline"]["seconds"]
        for step, r in results.items():
            notes = ""
            if step == "generate":
                notes = f"{r['persons']:,} persons, {r['stays']:,} stays"
            elif step == "read":
                notes = f"{r['stays_kept']:,} stays kept, {'balanced' if r['balanced'] else 'NOT balanced'}"
            ratio = "" if step == "generate" else f"{r['seconds'] / base:.1f}"
            table.add_row(case, step, f"{r['rows']:,}", f"{r['seconds']:.1f}", f"{r['rows'] / r['seconds']:,.0f}",
                          f"{r['peak_mb']:,.0f}", ratio, notes)
    console.print(table)
    console.print("rows: rows of the four SNDS tables (B, C, D, UM) of all years generated.")


if __name__ == "__main__":
    main()
