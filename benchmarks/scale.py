"""Benchmark: the whole pipeline at national scale on one machine (1, 2 and 5 years), and Spark's growth.

    .venv/bin/python benchmarks/scale.py                           # 1, 2 and 5 national years, polars; then Spark
    .venv/bin/python benchmarks/scale.py --sizes 1 --no-spark      # one year, polars only
    .venv/bin/python benchmarks/scale.py --no-polars --spark       # Spark only (1×, 2×, 4× data)
    .venv/bin/python benchmarks/scale.py --json benchmarks/out/scale/mine.json

Data: the national synthetic world of benchmarks/case_finding.py (``respop synth --profile national
--seed 1``, 2019-2023, ~19 million stays a year) in ``--data`` (``benchmarks/out/cases/national``);
it is never generated here. A size of N years is the last N years of the data (1 = 2023,
2 = 2022-2023, 5 = 2019-2023).

For each size, a configuration like benchmarks/national.toml is written to
``benchmarks/out/scale/<N>y/config.toml`` (``[input] years``, territories on the last year, output
folder and SQLite store in the same folder, the store emptied first), then, each in a fresh
process measured from outside (wall-clock seconds; peak memory = the highest sum of the resident
memory of the process and all its children, polled every 0.2 s, so that Spark's JVM counts):

- ``floor``: one polars streaming pass over the same raw files: every column respop uses, of every
  B/C/D/UM file of those years, read once (a few aggregates per column, ``engine="streaming"``);
  then, in the same process, the validating floor (benchmarks/pmsi_read.py ``validating_floor``:
  respop's own checks of every validated column in one pass, no joins, no writes), timed apart;
- ``pipeline``: ``respop run CONFIG --engine polars`` (all steps), cold: the staged input of an
  earlier benchmark (``<output.dir>/staged-input``, docs/pmsi.md "Staged input") is removed first,
  so the run validates and stages the raw files. Seconds per stage come from
  ``<output.dir>/timings.json`` when respop writes it (with the details of the strata step), else
  from the per-step seconds ``respop run`` prints;
- ``warm`` (``--warm``, default): the same ``respop run`` again, from the input the pipeline run
  staged (nothing validated again; ``details.staged_input.reused`` of timings.json says so).

The goal (issue of national scale): the pipeline within 5× the floor, the pipeline total being
input (read, validation, filters) + territories + cases + strata's features, care use and
transitions. Survival and prediction (model fitting) and the store are reported in their own
columns, outside the goal. When respop gives no details of the strata step, the whole strata step
counts (marked).

Spark (``--spark``): ``respop run CONFIG --engine spark --steps input,cases,strata`` on 1×, 2× and
4× data (``--spark-sizes``, in national years: 2023; 2022-2023; 2020-2023), local master
(``--spark-master``, default ``local[2]``), and how the seconds grow with the size: time(2×) /
time(1×) and time(4×) / time(1×) per stage (1.0 and 2.0 / 4.0 would be constant / linear).

Logs of every run: ``benchmarks/out/scale/<N>y/*.log``; results: ``benchmarks/out/scale/results.json``
(and ``--json``). Nothing is asserted (benchmarks/README.md). Run one national benchmark at a time:
5 years take a large part of the machine's memory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT / "benchmarks" / "out" / "cases" / "national"
OUT = ROOT / "benchmarks" / "out" / "scale"
GOAL = 5.0
"""The pipeline total within 5 times the floor."""
POLL_SECONDS = 0.2
SPARK_CONF = {"spark.driver.memory": "12g", "spark.driver.maxResultSize": "4g", "spark.sql.shuffle.partitions": "32"}
"""Spark in local mode runs in the driver's JVM: respop's default 4 GB is small for national years;
the person-years of 4 national years come back to Python as 1.04 GB of Arrow batches, over Spark's
default limit of the results a job may return (1 GB: the run fails)."""

STEPS = ("input", "territories", "cases", "strata", "store")
STRATA_DETAILS = ("features", "events", "care_use", "transitions", "survival", "prediction")
"""Parts of the strata step in timings.json (``events``: the survival events and the death years
the transitions use; ``read`` is the shared canonical PMSI, already there)."""
IN_GOAL = ("input", "territories", "cases", "features", "events", "care_use", "transitions")
"""Stages the 5× goal counts (survival, prediction and the store are outside it)."""
MODELS_MIN_YEARS = 3
"""Survival needs two years and prediction three (respop.periods): on fewer years ``respop run`` leaves
them out itself and publishes the rest; the table shows them as n/a."""

FLOOR_CHILD = r"""
import json, sys, time
from pathlib import Path
import polars as pl
from respop.pmsi.files import discover
from respop.pmsi.schema import USED_COLUMNS

folder, years = Path(sys.argv[1]), json.loads(sys.argv[2])
files = discover(folder, years)
t0 = time.perf_counter()
frames, labels = [], []
for year, tables in sorted(files.items()):
    for table, tf in tables.items():
        if tf.format == "csv":
            lf = pl.scan_csv(tf.path, separator=";", infer_schema=False)
        else:
            lf = pl.scan_parquet(tf.path / "*.parquet" if tf.path.is_dir() else tf.path)
        schema = lf.collect_schema()
        columns = [name for name, _required, _value in USED_COLUMNS[table] if name in schema]
        aggregates = [pl.len().alias("_rows")]
        for c in columns:
            if schema[c] == pl.String:
                aggregates += [pl.col(c).str.len_bytes().sum().alias(c + "_bytes"), pl.col(c).max().alias(c + "_max")]
            else:
                aggregates += [pl.col(c).to_physical().cast(pl.Float64).sum().alias(c + "_sum")]
        frames.append(lf.select(aggregates))
        labels.append((year, table))
results = pl.collect_all(frames, engine="streaming")
seconds = time.perf_counter() - t0
rows = {}
for (year, table), df in zip(labels, results):
    rows[table] = rows.get(table, 0) + int(df["_rows"][0])
# the validating floor (benchmarks/pmsi_read.py): respop's own checks of every validated column
from benchmarks.pmsi_read import validating_floor
t0 = time.perf_counter()
validating_floor(files)
print(json.dumps({"seconds": seconds, "rows": rows, "validating_seconds": time.perf_counter() - t0}))
"""


# --------------------------------------------------------------------------------------------
# Measuring a child process
# --------------------------------------------------------------------------------------------


def measure(cmd: list[str], log: Path, env: dict | None = None) -> dict:
    """Run ``cmd`` (cwd = the repository), its output to ``log``; wall seconds and the peak of the
    summed resident memory of the process and its children (polled every 0.2 s)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    peak = 0
    timeline: list[tuple[float, float]] = []  # (seconds since start, GB), at most one point a second
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    with log.open("w") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            total = 0
            try:
                members = [root, *root.children(recursive=True)]
            except psutil.Error:
                members = []
            for p in members:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            peak = max(peak, total)
            now = time.perf_counter() - started
            if not timeline or now - timeline[-1][0] >= 1 or total / 2**30 > timeline[-1][1] + 0.5:
                timeline.append((round(now, 1), round(total / 2**30, 2)))
            time.sleep(POLL_SECONDS)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime
    return {"returncode": proc.returncode, "wall_seconds": round(seconds, 2), "cpu_seconds": round(cpu, 1),
            "peak_gb": round(peak / 2**30, 2), "load": [round(load, 2), round(os.getloadavg()[0], 2)],
            "timeline": timeline, "output": log.read_text(errors="replace")}


def floor(data: Path, years: list[int], folder: Path, repeat: int = 3) -> dict:
    """The floor, ``repeat`` times in fresh processes; the fastest is kept (a short pass is the most
    sensitive to other processes on the machine)."""
    best = None
    for _ in range(repeat):
        r = measure([sys.executable, "-c", FLOOR_CHILD, str(data / "pmsi"), json.dumps(years)], folder / "floor.log")
        if r["returncode"] != 0:
            raise SystemExit(f"floor failed (see {folder / 'floor.log'}):\n{r['output'][-3000:]}")
        child = json.loads(r["output"].strip().splitlines()[-1])
        got = {"seconds": round(child["seconds"], 2), "wall_seconds": r["wall_seconds"], "cpu_seconds": r["cpu_seconds"],
               "peak_gb": r["peak_gb"], "load": r["load"], "rows": child["rows"],
               "validating_seconds": round(child["validating_seconds"], 2)}
        fastest_validating = min(got["validating_seconds"], best["validating_seconds"]) if best else got["validating_seconds"]
        if best is None or got["seconds"] < best["seconds"]:
            best = got
        best["validating_seconds"] = fastest_validating
    best["repeat"] = repeat
    return best


# --------------------------------------------------------------------------------------------
# respop run
# --------------------------------------------------------------------------------------------


def write_config(data: Path, years: list[int], folder: Path, name: str, spark_conf: dict[str, str] | None = None) -> Path:
    """A configuration like benchmarks/national.toml over ``years``, outputs under ``folder``
    (with ``[engine] spark_conf`` when given)."""
    folder.mkdir(parents=True, exist_ok=True)
    store = folder / "store.sqlite"
    for suffix in ("", "-shm", "-wal", "-journal"):  # one run per store: the benchmark's own
        Path(str(store) + suffix).unlink(missing_ok=True)
    config = folder / "config.toml"
    config.write_text(
        f"""# Written by benchmarks/scale.py: the national world, {years[0]}-{years[-1]}.
name = "{name}"
description = "France entière (données synthétiques), {len(years)} an(s)"

[input]
pmsi_dir = "{data / 'pmsi'}"
reference_dir = "{data / 'reference'}"
years = {json.dumps(years)}

[quality]
zones_file = "{data / 'reference' / 'zones.parquet'}"

[territories]
method = "plurality"
min_population = 100000
years = [{years[-1]}]

[output]
dir = "{folder / 'run'}"

[store]
url = "sqlite:///{store}"
""" + (f"""
[engine]
spark_conf = {{ {", ".join(f'"{k}" = "{v}"' for k, v in spark_conf.items())} }}
""" if spark_conf else ""),
        encoding="utf-8",
    )
    return config


def run_options() -> set[str]:
    """The options ``respop run`` accepts (``--engine``, ``--spark-master`` once they exist)."""
    proc = subprocess.run([sys.executable, "-m", "respop", "run", "--help"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"})
    return set(re.findall(r"--[a-z][a-z-]+", proc.stdout))


STEP_LINE = re.compile(r"^\s+([a-z_]+)\s+([0-9.]+) s\s*$")


def respop_run(config: Path, log: Path, engine: str, steps: list[str] | None = None, master: str | None = None,
               options: set[str] | None = None, models: bool = True) -> dict:
    """``respop run CONFIG [--engine E] [--steps …] [--spark-master M] [--no-models]``: measured, with its
    stage seconds."""
    options = run_options() if options is None else options
    cmd = [sys.executable, "-m", "respop", "run", str(config)]
    if "--engine" in options:
        cmd += ["--engine", engine]
    elif engine != "polars":
        return {"error": "respop run has no --engine option yet (the Spark engine has not landed)"}
    if steps:
        cmd += ["--steps", ",".join(steps)]
    if master and "--spark-master" in options:
        cmd += ["--spark-master", master]
    if not models and "--no-models" in options:
        cmd += ["--no-models"]
    out_dir = config.parent / "run"
    timings_file = out_dir / "timings.json"
    timings_file.unlink(missing_ok=True)
    r = measure(cmd, log, env={**os.environ, "COLUMNS": "200"})
    result = {"command": " ".join(cmd[1:]), "returncode": r["returncode"], "wall_seconds": r["wall_seconds"],
              "cpu_seconds": r["cpu_seconds"], "peak_gb": r["peak_gb"], "load": r["load"], "memory_timeline": r["timeline"]}
    if timings_file.is_file():
        timings = json.loads(timings_file.read_text())
        result["source"] = "timings.json"
        result["engine"] = timings.get("engine", engine)
        result["steps"] = {k: float(v) for k, v in timings.get("steps", {}).items()}
        result["details"] = timings.get("details", {})
    else:
        result["source"] = "stdout"
        result["engine"] = engine
        result["steps"] = {m.group(1): float(m.group(2)) for m in map(STEP_LINE.match, r["output"].splitlines()) if m}
        result["details"] = {}
    result["peak_gb_by_step"] = peak_by_step(result["steps"], r["timeline"], r["wall_seconds"])
    if r["returncode"] != 0:
        result["error"] = f"exit status {r['returncode']} (see {log})"
        result["tail"] = r["output"][-2000:]
    report = out_dir / "input" / "report.json"
    if report.is_file() and report.stat().st_mtime >= time.time() - r["wall_seconds"] - 5:
        rep = json.loads(report.read_text())
        result["stays"] = rep.get("stays_kept")
        dx = rep.get("diagnoses")
        result["diagnoses"] = sum(dx.values()) if isinstance(dx, dict) else dx
    return result


STAGED_INPUT = "staged-input"
"""The staged input's folder in ``<output.dir>`` (respop.pmsi.stage.DEFAULT_NAME)."""


def unstage(config: Path) -> None:
    """Remove the staged input of a benchmark configuration (``<output.dir>/staged-input``), so that
    the next ``respop run`` is cold: it validates and stages the raw files."""
    shutil.rmtree(config.parent / "run" / STAGED_INPUT, ignore_errors=True)


def warm_run(config: Path, folder: Path, options: set[str], models: bool, steps: list[str] | None) -> dict:
    """``respop run`` from the staged input (the one the pipeline run, or ``respop pmsi stage``,
    left): measured as :func:`respop_run`, with ``reused`` (whether respop reused the staged input,
    from timings.json; False means it was staged again and this is not a warm run)."""
    r = respop_run(config, folder / "warm.log", "polars", steps=steps, options=options, models=models)
    staged = r.get("details", {}).get("staged_input") or {}
    r["reused"] = staged.get("reused")
    if staged and not staged.get("reused"):
        r["error"] = r.get("error") or f"the staged input was rebuilt ({'; '.join(staged.get('reasons', []))})"
    return r


def warm_seconds(result: dict) -> float | None:
    """The warm run's seconds over its steps (the table's ``warm`` column); None when it did not run or failed."""
    warm = result.get("warm")
    if not warm or warm.get("error") or not warm.get("steps"):
        return None
    return sum(warm["steps"].values())


def peak_by_step(steps: dict[str, float], timeline: list[tuple[float, float]], wall: float) -> dict[str, float]:
    """Peak memory (GB) of each step, approximately: the steps are laid end to end from the start of
    the process, after the imports (the wall time the steps do not account for is split between
    start-up and the end)."""
    offset = max(wall - sum(steps.values()), 0) / 2
    out, start = {}, offset
    for name, seconds in steps.items():
        inside = [gb for t, gb in timeline if start <= t <= start + seconds]
        out[name] = max(inside) if inside else None
        start += seconds
    return out


def details_line(result: dict) -> str:
    """The parts of the input and cases steps, and the peak memory of each step."""
    parts = []
    for step in ("input", "cases"):
        d = result.get("details", {}).get(step)
        if d:
            parts.append(f"{step} = " + " + ".join(f"{k} {fmt(v)}" for k, v in d.items()))
    by_step = result.get("peak_gb_by_step") or {}
    if by_step:
        parts.append("peak GB by step (approximate) " + ", ".join(f"{k} {fmt(v, 1)}" for k, v in by_step.items()))
    return "; ".join(parts)


def stages(result: dict) -> dict[str, float | None]:
    """Seconds per stage: the steps, and strata split into its details when given."""
    steps, strata = result.get("steps", {}), result.get("details", {}).get("strata", {})
    out: dict[str, float | None] = {s: steps.get(s) for s in ("input", "territories", "cases")}
    for d in STRATA_DETAILS:
        out[d] = strata.get(d)
    out["strata"] = steps.get("strata")
    out["store"] = steps.get("store")
    return out


def goal_total(result: dict) -> tuple[float | None, bool]:
    """The pipeline total of the goal, and whether the strata step was split (False: all of it counted)."""
    st = stages(result)
    if any(st[s] is None for s in ("input", "territories", "cases")) or st["strata"] is None:
        return None, False
    parts = [d for d in IN_GOAL if d in STRATA_DETAILS]
    split = all(st[d] is not None for d in parts)
    strata = sum(st[d] for d in parts) if split else st["strata"]
    return st["input"] + st["territories"] + st["cases"] + strata, split


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def fmt(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def validation_ratio(pipeline: dict, floor: dict) -> float | None:
    """The input step's typing and checking of every value of every file (``validate`` in
    timings.json: no filter, join of the tables or canonical table yet) over the validating floor
    (respop's own checks in one pass: benchmarks/pmsi_read.py validating_floor), or over the
    plain floor for results recorded before it was measured."""
    seconds = pipeline.get("details", {}).get("input", {}).get("validate")
    base = floor.get("validating_seconds") or floor.get("seconds")
    return seconds / base if seconds is not None and base else None


def input_ratio(pipeline: dict, floor: dict) -> float | None:
    """The whole input step (cold: validation, filters, the staged tables, quarantine, report) over
    the validating floor; the goal of issue 22 is 2."""
    seconds = stages(pipeline)["input"]
    base = floor.get("validating_seconds")
    return seconds / base if seconds is not None and base else None


def polars_table(results: list[dict]) -> Table:
    table = Table(title="respop run --engine polars, national data: seconds per stage, peak memory, ratio to the floor",
                  title_justify="left")
    cols = ["years", "stays", "diagnoses", "floor s", "vfloor s", "input", "territories", "cases", "features", "events", "care use",
            "transitions", "total (goal)", "× floor", f"≤ {GOAL:.0f}×", "validation × vfloor", "input × vfloor", "survival", "prediction", "store", "peak GB",
            "CPU s run / floor", "load", "warm s"]
    for c in cols:
        table.add_column(c, justify="left" if c in ("years", f"≤ {GOAL:.0f}×") else "right")
    for r in results:
        p, f = r["pipeline"], r["floor"]
        st = stages(p)
        total, split = goal_total(p)
        ratio = total / f["seconds"] if total is not None else None
        met = "–" if ratio is None else ("yes" if ratio <= GOAL else "no")
        if ratio is not None and not split:
            met += " (strata whole)"
        if p.get("error"):
            met = "FAILED"
        years = r["years"]
        skipped = "n/a" if (not r.get("models", True) or len(r["years"]) < MODELS_MIN_YEARS) else "–"
        table.add_row(
            f"{years[0]}–{years[-1]}" if len(years) > 1 else str(years[0]),
            fmt(p.get("stays") or f["rows"].get("B"), 0), fmt(p.get("diagnoses"), 0), fmt(f["seconds"]),
            fmt(f.get("validating_seconds")), fmt(st["input"]), fmt(st["territories"]), fmt(st["cases"]),
            fmt(st["features"]) if split else f"strata {fmt(st['strata'])}", fmt(st["events"]), fmt(st["care_use"]),
            fmt(st["transitions"]), fmt(total), fmt(ratio), met, fmt(validation_ratio(p, f)), fmt(input_ratio(p, f)),
            fmt(st["survival"]) if st["survival"] is not None else skipped,
            fmt(st["prediction"]) if st["prediction"] is not None else skipped,
            fmt(st["store"]) if st["store"] is not None else skipped,
            fmt(p.get("peak_gb"), 2),
            f"{fmt(p.get('cpu_seconds'), 0)} / {fmt(f.get('cpu_seconds'), 0)}",
            fmt(sum(p["load"]) / 2, 1) if p.get("load") else "–",
            fmt(warm_seconds(r)),
        )
    return table


def spark_table(results: list[dict]) -> Table:
    table = Table(title="respop run --engine spark (local): seconds per stage and growth with the data size", title_justify="left")
    base = results[0]
    names = [s for s in ("input", "territories", "cases", "strata") if any(s in r["run"].get("steps", {}) for r in results)]
    for c in ["data", "years", *names, "total", "peak GB", "× time(1×)", "status"]:
        table.add_column(c, justify="left" if c in ("data", "years", "status") else "right")
    base_total = sum(base["run"].get("steps", {}).get(s, 0) for s in names) or None
    for r in results:
        steps = r["run"].get("steps", {})
        total = sum(steps.get(s, 0) for s in names) if steps else None
        cells = []
        for s in names:
            v, b = steps.get(s), base["run"].get("steps", {}).get(s)
            cells.append(fmt(v) + (f" ({v / b:.1f}×)" if v is not None and b and r is not base else ""))
        table.add_row(f"{r['factor']}×", f"{r['years'][0]}–{r['years'][-1]}" if len(r["years"]) > 1 else str(r["years"][0]),
                      *cells, fmt(total), fmt(r["run"].get("peak_gb"), 2),
                      fmt(total / base_total, 2) if total is not None and base_total else "–",
                      r["run"].get("error", "ok"))
    return table


def code_version() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "respop"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def data_years(data: Path) -> list[int]:
    folder = data / "pmsi"
    if not folder.is_dir():
        raise SystemExit(f"{folder} not found: generate the national data first (benchmarks/case_finding.py prepares it)")
    return sorted({2000 + int(p.name[5:7]) for p in folder.iterdir() if p.name.startswith("T_MCO") and p.name[5:7].isdigit()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sizes", default="1,2,5", help="numbers of years, the last N of the data (default 1,2,5)")
    parser.add_argument("--polars", action=argparse.BooleanOptionalAction, default=True, help="run the polars pipeline (default)")
    parser.add_argument("--spark", action=argparse.BooleanOptionalAction, default=True, help="run the Spark growth part (default)")
    parser.add_argument("--spark-sizes", default="1,2,4", help="data sizes of the Spark part, in national years (default 1,2,4)")
    parser.add_argument("--spark-steps", default="input,cases,strata")
    parser.add_argument("--spark-master", default="local[2]")
    parser.add_argument("--spark-conf", default=",".join(f"{k}={v}" for k, v in SPARK_CONF.items()),
                        help="Spark settings key=value,… (default: %(default)s)")
    parser.add_argument("--warm", action=argparse.BooleanOptionalAction, default=True,
                        help="after each pipeline run, run it again from the staged input (default)")
    parser.add_argument("--floor-repeat", type=int, default=3, help="runs of the floor, the fastest kept (default 3)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    console = Console(width=220)
    all_years = data_years(args.data)
    options = run_options()
    header = {"respop": code_version(), "started": dt.datetime.now().isoformat(timespec="seconds"),
              "cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
              "load_before": os.getloadavg()[0], "run_options": sorted(options),
              # the models' sums depend on the thread counts, and the store's results_sha256 with them
              "threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "POLARS_MAX_THREADS")}}
    threads = ", ".join(f"{k}={v}" for k, v in header["threads"].items() if v is not None) or "thread variables unset (one thread per CPU)"
    console.print(f"respop {header['respop']}, {header['cpus']} CPUs, {header['memory_gb']} GB, load {header['load_before']:.2f}, {threads}; "
                  f"respop run options: {' '.join(sorted(options))}")
    results: dict = {"header": header, "polars": [], "spark": []}
    previous = OUT / "results.json"
    if previous.is_file() and not (args.polars and args.spark):
        # the part not run now is carried over from the last results, with the header it was measured under
        old = json.loads(previous.read_text())
        for part, run_now in (("polars", args.polars), ("spark", args.spark)):
            if not run_now and old.get(part):
                results[part] = old[part]
                results[f"{part}_header"] = old.get(f"{part}_header", old.get("header"))
    for part, run_now in (("polars", args.polars), ("spark", args.spark)):
        if run_now:
            results[f"{part}_header"] = header

    def save() -> None:
        OUT.mkdir(parents=True, exist_ok=True)
        text = json.dumps(results, indent=2)
        (OUT / "results.json").write_text(text)
        if args.json:
            args.json.write_text(text)

    if args.polars:
        for n in (int(s) for s in args.sizes.split(",")):
            if n > len(all_years):
                console.print(f"[yellow]{n} years asked, the data has {len(all_years)}: skipped[/]")
                continue
            years = all_years[-n:]
            folder = OUT / f"{n}y"
            config = write_config(args.data, years, folder, f"national-{n}y")
            console.print(f"{n} year(s) {years}: floor…")
            fl = floor(args.data, years, folder, args.floor_repeat)
            console.print(f"  floor {fl['seconds']:.1f} s, peak {fl['peak_gb']:.2f} GB; pipeline (log: {folder / 'pipeline.log'})…")
            # every size runs every step with the models and the store: the run itself leaves out
            # what its period does not allow (respop.periods: survival on 1 year, prediction on 1-2)
            models, steps = True, None
            unstage(config)
            pipe = respop_run(config, folder / "pipeline.log", "polars", options=options, models=models, steps=steps)
            total, split = goal_total(pipe)
            console.print(f"  pipeline: {pipe.get('error', 'ok')}, {pipe['wall_seconds']:.0f} s wall, peak {pipe['peak_gb']:.2f} GB, "
                          f"stages {pipe.get('steps')}, peak GB by step {pipe.get('peak_gb_by_step')}")
            warm = warm_run(config, folder, options, models, steps) if args.warm and not pipe.get("error") else None
            if warm is not None:
                console.print(f"  warm: {warm.get('error', 'ok')}, {warm['wall_seconds']:.0f} s wall, peak {warm['peak_gb']:.2f} GB, "
                              f"stages {warm.get('steps')}")
            results["polars"].append({"years": years, "models": models, "floor": fl, "pipeline": pipe, "warm": warm,
                                      "goal_total": total, "strata_split": split,
                                      "ratio": round(total / fl["seconds"], 2) if total else None})
            save()
        if results["polars"]:
            console.print(polars_table(results["polars"]))
            for r in results["polars"]:
                console.print(f"{r['years'][0]}–{r['years'][-1]}: " + details_line(r["pipeline"]))
            console.print(f"total (goal) = input (read, validation, filters, canonical tables) + territories + cases + strata's "
                          f"features, events (survival events, death years), care use and transitions; survival, prediction and "
                          f"store are outside the goal (n/a: left out by the run, its period is too short: respop.periods). × floor: "
                          f"total over the floor's seconds (the fastest of {args.floor_repeat} floor runs); goal ≤ {GOAL:.0f}×. Vfloor s: the validating "
                          f"floor (respop's own checks of every validated column in one pass, no joins, no writes: "
                          f"benchmarks/pmsi_read.py validating_floor; the fastest of the floor runs). Validation × vfloor: the input "
                          f"step's typing and checking of every value of every file alone (before the filters and the canonical "
                          f"tables) over it; input × vfloor: the whole input step over it (goal ≤ 2×). Peak GB: the run's "
                          f"process tree, polled every {POLL_SECONDS} s. CPU s: user + system seconds of the whole run's processes "
                          f"(all steps) and of the floor's; load: the machine's 1-minute load average at the start and end of the "
                          f"run (2 cores: above 2, other processes took part of the CPU). Warm s: the same run again from the "
                          f"input the first one staged (no validation), its steps' seconds.")

    if args.spark:
        if "--engine" not in options:
            console.print("[yellow]Spark part skipped: `respop run` has no --engine option yet (the Spark engine has not landed)[/]")
            results["spark"] = [{"skipped": "respop run has no --engine option"}]
        else:
            for factor in (int(s) for s in args.spark_sizes.split(",")):
                years = all_years[-factor:]
                folder = OUT / f"spark-{factor}x"
                conf = dict(kv.split("=", 1) for kv in args.spark_conf.split(",") if kv)
                config = write_config(args.data, years, folder, f"national-spark-{factor}x", conf)
                unstage(config)  # cold, as the polars pipeline run
                console.print(f"Spark {factor}× ({years}): (log: {folder / 'spark.log'})…")
                r = respop_run(config, folder / "spark.log", "spark", [s.strip() for s in args.spark_steps.split(",")],
                               args.spark_master, options, models=False)
                console.print(f"  {r.get('error', 'ok')}, {r.get('wall_seconds', 0):.0f} s wall, stages {r.get('steps')}")
                results["spark"].append({"factor": factor, "years": years, "run": r})
                save()
            if results["spark"]:
                console.print(spark_table(results["spark"]))
                for r in results["spark"]:
                    if "run" in r:
                        console.print(f"{r['factor']}×: " + details_line(r["run"]) + "; strata = " + ", ".join(
                            f"{k} {fmt(v)}" for k, v in r["run"].get("details", {}).get("strata", {}).items()))
                console.print("(k×): the stage's seconds over its seconds on 1× data; 2× and 4× would be linear growth.")
    header["load_after"] = os.getloadavg()[0]
    save()
    console.print(f"results: {OUT / 'results.json'}")


if __name__ == "__main__":
    main()
