"""Benchmark: health territories (``respop.delineation``) on synthetic worlds, against the planted truth.

    .venv/bin/python benchmarks/territories.py                    # demo and national
    .venv/bin/python benchmarks/territories.py --cases demo
    .venv/bin/python benchmarks/territories.py --cases national --rebuild   # recount the national flows
    .venv/bin/python benchmarks/territories.py --shapes --seeds 1,2,3        # the default on 5 world shapes
    .venv/bin/python benchmarks/territories.py --shapes --seeds 1,2,3,4,5 --shape-names coast

For each case the flow problem (zone → hospital stays of 2023, zones with population, rook
contiguity, hospital groups by establishment) is built once in a child process and cached as
Parquet under ``benchmarks/out/territories/<case>/problem/``; it is rebuilt when the data or
``respop/delineation/flows.py`` change, or with ``--rebuild`` (use it after changing ``respop.pmsi``). Then each method is fitted in a
fresh child that only loads the cached problem, so that its seconds (``fit`` alone) and its peak
memory (VmHWM of the child) are its own. The table gives, per method, the number of territories,
the mean and minimum localization index, the mean market share index, the adjusted Rand index
against the planted territories (``truth/zone_territory.parquet``), the mean compactness, seconds
and peak memory. Nothing is asserted: see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out" / "territories"
YEARS = [2023]
DATA = {
    # demo: generated here (seed 1, 2023 only); national: the world of synth_and_read.py when it exists
    "demo": OUT / "demo",
    "national": ROOT / "benchmarks" / "out" / "synth" / "national",
}
MIN_POPULATION = {"demo": 30_000, "national": 100_000}
"""The minimum population of the 'plurality, min' method: demo as territories/demo.toml; national a
round figure (override with --min-population)."""

CHILD = r"""
import json, sys, time
from pathlib import Path
step, case, data, problem_dir, args = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), json.loads(sys.argv[5])
import polars as pl


def vmhwm_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


result = {}
t0 = time.perf_counter()
if step == "generate":
    from respop.synth import generate, load_profile
    r = generate(load_profile(args.get("profile", case)), seed=args.get("seed", 1), out=data, years=args["years"])
    result = {"persons": r.persons, "stays": sum(r.stays.values())}
elif step == "problem":
    import shutil
    import geopandas as gpd
    from respop.delineation.flows import build_problem
    from respop.pmsi import read_pmsi
    ref = data / "reference"
    pmsi = read_pmsi(data / "pmsi")
    try:
        problem = build_problem(pmsi.stays, gpd.read_parquet(ref / "zones.parquet"),
                                pl.read_parquet(ref / "population.parquet"),
                                pl.read_parquet(ref / "hospitals.parquet"), years=args["years"])
    finally:
        pmsi.close()
    tmp = problem_dir.with_name(problem_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ("flows", "zones", "adjacency", "groups"):
        getattr(problem, name).write_parquet(tmp / f"{name}.parquet")
    result = {"zones": problem.zones.height, "flows": problem.flows.height, "groups": problem.groups.height,
              "stays": int(problem.flows["stays"].sum()), "adjacent_pairs": problem.adjacency.height // 2}
    result["seconds"] = time.perf_counter() - t0
    result["peak_mb"] = vmhwm_mb()
    (tmp / "meta.json").write_text(json.dumps({**args["meta"], "build": result}, indent=2))
    shutil.rmtree(problem_dir, ignore_errors=True)
    tmp.rename(problem_dir)
else:  # a method
    import geopandas as gpd
    from respop.delineation.base import FlowProblem
    from respop.delineation.metrics import adjusted_rand, overall_metrics
    problem = FlowProblem(**{name: pl.read_parquet(problem_dir / f"{name}.parquet")
                             for name in ("flows", "zones", "adjacency", "groups")})
    truth = pl.read_parquet(data / "truth" / "zone_territory.parquet").select("zone_code", "territory_id")
    zones = gpd.read_parquet(data / "reference" / "zones.parquet")
    zones = zones[zones["zone_code"].isin(problem.zone_codes)]
    load_mb = vmhwm_mb()
    if step == "truth":
        assignment, seconds, notes = truth, None, "the planted territories"
        # the flow ceiling: each zone with stays given to the planted territory whose hospital groups
        # (located in its zones) receive most of its residents' stays, as refine_borders would
        import numpy as np
        from scipy import sparse
        from respop.delineation.graph import from_labels, labels_from_values, problem_index, to_labels
        idx = problem_index(problem)
        planted = to_labels(truth, idx)
        loc = idx.located
        to_terr = sparse.csr_matrix((np.ones(len(loc)), (loc, planted.lab[idx.group_zone[loc]])),
                                    shape=(idx.flows.shape[1], len(planted.values)))
        use = (idx.flows @ to_terr).toarray()
        plurality = np.where(idx.has_flow, use.argmax(axis=1), planted.lab)
        result["flow_ceiling_ari"] = adjusted_rand(from_labels(labels_from_values(plurality, planted.values), idx), truth)
        result["flow_inconsistent_zones"] = int((plurality != planted.lab).sum())
    else:
        if step == "default":
            from respop.delineation.leiden import Leiden
            method = Leiden()  # the default: no count given
        elif step == "leiden":
            from respop.delineation.leiden import Leiden
            method = Leiden(target_count=args["target_count"])
        else:
            from respop.delineation.plurality import Plurality
            method = Plurality(min_population=args["min_population"])
        start = time.perf_counter()
        method.fit(problem)
        seconds = time.perf_counter() - start
        assignment = method.assignment_
        if step == "default":
            notes = ", ".join(f"{k} {v}" for k, v in method.count_.items())
        elif step == "leiden":
            fits = len(method.search_)
            notes = (f"resolution {method.resolution_:.3g}, {fits} fit{'s' if fits > 1 else ''} "
                     f"(resolution → territories: {', '.join(f'{x:.3g} → {n}' for x, n in method.search_)})")
        else:
            notes = f"{len(method.surviving_groups_):,} hospital groups keep the plurality of their own zone"
    fit_mb = vmhwm_mb()
    overall = overall_metrics(assignment, problem, zones)
    result.update({**overall, "ari": adjusted_rand(assignment, truth), "seconds": seconds, "notes": notes,
                   "load_peak_mb": load_mb, "fit_peak_mb": fit_mb})
result.setdefault("seconds", time.perf_counter() - t0)
result["peak_mb"] = vmhwm_mb()
print(json.dumps(result))
"""


def run(step: str, case: str, data: Path, problem_dir: Path, args: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, step, case, str(data), str(problem_dir), json.dumps(args)],
        capture_output=True, text=True, cwd=ROOT,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{step} {case} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fingerprint(data: Path) -> str:
    """Changes when the input tables or the code that counts the flows change."""
    h = hashlib.sha256()
    for sub in ("pmsi", "reference"):
        for path in sorted((data / sub).rglob("*")):
            if path.is_file():
                st = path.stat()
                h.update(f"{path.relative_to(data)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    h.update((ROOT / "respop" / "delineation" / "flows.py").read_bytes())
    return h.hexdigest()[:16]


def commit() -> str:
    """The commit measured, with +dirty when respop/ has uncommitted changes."""
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    head = git("rev-parse", "--short", "HEAD") or "unknown commit"
    return head + ("+dirty" if git("status", "--porcelain", "--", "respop") else "")


def is_world(data: Path) -> bool:
    return all((data / p).exists() for p in ("pmsi", "reference/zones.parquet", "truth/zone_territory.parquet"))


def prepare(case: str, rebuild: bool, console: Console, data: Path | None = None, problem_dir: Path | None = None,
            generate: dict | None = None) -> tuple[Path, Path, list[str]]:
    """The world's folder, the cached problem's folder, and notes to print."""
    data = data or DATA[case]
    generate = generate or {}
    notes = []
    if not is_world(data):
        console.print(f"{case}: generating the world (seed {generate.get('seed', 1)}, {YEARS}) into {data}…")
        r = run("generate", case, data, data, {"years": YEARS, **generate})
        notes.append(f"{case}: world generated in {r['seconds']:.0f} s ({r['persons']:,} persons, {r['stays']:,} stays), "
                     f"peak {r['peak_mb']:,.0f} MB")
    problem_dir = problem_dir or OUT / case / "problem"
    key = fingerprint(data)
    meta_path = problem_dir / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if rebuild or meta.get("fingerprint") != key:
        console.print(f"{case}: counting the flows and building the problem (cached in {problem_dir})…")
        run("problem", case, data, problem_dir, {"years": YEARS, "meta": {"data": str(data), "years": YEARS,
                                                                            "fingerprint": key}})
        meta = json.loads(meta_path.read_text())
        how = "built"
    else:
        how = "read from the cache, built earlier"
    b = meta["build"]
    notes.append(f"{case}: {b['zones']:,} zones, {b['groups']:,} hospital groups, {b['flows']:,} zone–group flows, "
                 f"{b['stays']:,} stays of {', '.join(map(str, YEARS))}; flow problem {how} in {b['seconds']:.0f} s, "
                 f"peak {b['peak_mb']:,.0f} MB ({data.relative_to(ROOT)})")
    return data, problem_dir, notes


SHAPES = ("demo", "peripheral", "metropole", "coast", "border")
"""World shapes scored with no count given: the plain demo region and the shape profiles of
synthetic_data/ (small peripheral territories, a metropole with three CHU, a coast, a border)."""


def generator_version(shape: str) -> str:
    """A hash of the generator's code, the profile and the years: part of a shape world's folder name, so that a
    change of the generator draws new worlds instead of reusing those of the previous one."""
    import respop.synth
    from respop.resources import synthetic_profiles_dir

    h = hashlib.sha256(json.dumps(YEARS).encode())
    for path in sorted(Path(respop.synth.__file__).parent.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    h.update((synthetic_profiles_dir() / f"{shape}.toml").read_bytes())
    return h.hexdigest()[:12]


def shapes_main(seeds: list[int], rebuild: bool, console: Console, json_path: Path | None,
                shapes: tuple[str, ...] = SHAPES) -> None:
    """The default (no count given) on every shape and seed: planted and found counts, ARI, LI."""
    table = Table(title="Health territories with no count given (Leiden's automatic count), against the planted "
                        "territories", title_justify="left")
    for col in ("world shape", "seed", "planted", "found", "ARI", "flow ceiling", "mean LI", "min LI",
                "planted mean LI", "seconds", "peak MB"):
        table.add_column(col, justify="left" if col == "world shape" else "right")
    results, notes = [], []
    for shape in shapes:
        version = generator_version(shape)
        for seed in seeds:
            folder = OUT / "shapes" / f"{shape}-{seed}-{version}"
            data, problem_dir, case_notes = prepare(f"{shape} seed {seed}", rebuild, console, folder / "world",
                                                    folder / "problem", {"profile": shape, "seed": seed})
            planted = run("truth", shape, data, problem_dir, {})
            r = run("default", shape, data, problem_dir, {})
            results.append({"shape": shape, "seed": seed, "planted": planted, "default": r})
            table.add_row(shape, str(seed), str(planted["territories"]), str(r["territories"]), f"{r['ari']:.3f}",
                          f"{planted['flow_ceiling_ari']:.3f} ({planted['flow_inconsistent_zones']})", f"{r['mean_li']:.3f}", f"{r['min_li']:.3f}", f"{planted['mean_li']:.3f}",
                          f"{r['seconds']:.2f}", f"{r['fit_peak_mb']:,.0f}")
            notes.append(f"{shape} seed {seed}: {r['notes']}")
    console.print(table)
    aris = [x["default"]["ari"] for x in results]
    console.print(f"ARI: min {min(aris):.3f}, mean {sum(aris) / len(aris):.3f}; worlds with ARI >= 0.90: "
                  f"{sum(a >= 0.9 for a in aris)} of {len(aris)}")
    for line in notes:
        console.print(line)
    console.print("flow ceiling: ARI of the planted territories with each zone given to the planted territory whose "
                  "hospital groups receive most of its stays (in brackets: the zones that move), what a partition "
                  "with the planted hospital groups and every zone in the territory it uses most scores.")
    console.print("seconds: Delineation.fit alone; peak MB: the fitting process's VmHWM just after the fit. count: "
                  "service areas → merged (the first target) → Leiden → merged again and grown → after the borders.")
    console.print(f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores; other work on them slows the fits)")
    if json_path:
        json_path.write_text(json.dumps(results, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", action="store_true",
                        help="score the default (no count given) on the world shapes instead: " + ", ".join(SHAPES))
    parser.add_argument("--seeds", default="1,2,3", help="--shapes: comma-separated seeds")
    parser.add_argument("--shape-names", default=",".join(SHAPES), help="--shapes: comma-separated world shapes")
    parser.add_argument("--cases", default="demo,national", help="comma-separated: demo, national")
    parser.add_argument("--min-population", type=int, default=None,
                        help="minimum population of 'plurality, min' (default: 30,000 demo, 100,000 national)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached flow problems")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    if args.shapes:
        console = Console(width=160)
        console.print(f"respop {commit()}")
        shapes = tuple(s.strip() for s in args.shape_names.split(",") if s.strip())
        if unknown := [s for s in shapes if s not in SHAPES]:
            parser.error(f"--shape-names: unknown {', '.join(unknown)} (known: {', '.join(SHAPES)})")
        shapes_main([int(s) for s in args.seeds.split(",")], args.rebuild, console, args.json, shapes)
        return
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in DATA]
    if unknown:
        parser.error(f"--cases: unknown {', '.join(unknown)} (known: {', '.join(DATA)})")
    console = Console(width=160)
    console.print(f"respop {commit()}")
    table = Table(title="Health territories: methods on the same flows, against the planted territories",
                  title_justify="left")
    for col in ("case", "method", "territories", "min pop", "mean LI", "min LI", "mean MSI", "ARI vs truth",
                "compactness", "seconds", "peak MB fit", "peak MB all"):
        table.add_column(col, justify="left" if col in ("case", "method") else "right")
    notes: list[str] = []
    results: dict = {}
    for case in cases:
        data, problem_dir, case_notes = prepare(case, args.rebuild, console)
        notes += case_notes
        planted = run("truth", case, data, problem_dir, {})
        k = planted["territories"]
        min_pop = args.min_population if args.min_population is not None else MIN_POPULATION[case]
        methods = [
            ("plurality", "plurality", {"min_population": 0}),
            (f"plurality, min {min_pop:,}", "plurality", {"min_population": min_pop}),
            (f"leiden, target {k}", "leiden", {"target_count": k}),
        ]
        rows = [("planted (truth)", planted)]
        for label, step, kwargs in methods:
            console.print(f"{case}: {label}…")
            rows.append((label, run(step, case, data, problem_dir, kwargs)))
        results[case] = {label: r for label, r in rows}
        for label, r in rows:
            table.add_row(
                case, label, f"{r['territories']:,}", f"{r['min_population']:,}", f"{r['mean_li']:.3f}",
                f"{r['min_li']:.3f}", f"{r['mean_msi']:.3f}", f"{r['ari']:.3f}", f"{r['mean_compactness']:.2f}",
                "" if r["seconds"] is None else f"{r['seconds']:.{2 if r['seconds'] < 10 else 1}f}",
                f"{r['fit_peak_mb']:,.0f}", f"{r['peak_mb']:,.0f}",
            )
            if label != "planted (truth)":
                notes.append(f"{case}, {label}: {r['notes']}")
    console.print(table)
    for line in notes:
        console.print(line)
    console.print("min pop: population of the smallest territory. seconds: Delineation.fit alone (guarantees checked, "
                  "ids numbered), in a fresh process that loads the cached problem. peak MB: that process's VmHWM, "
                  "interpreter and imports included, just after the fit (fit) and at its end, metrics included (all).")
    console.print(f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores; other work on them slows the fits)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
