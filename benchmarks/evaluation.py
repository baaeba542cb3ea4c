"""Benchmark: issue 20's acceptance 1, the evaluation methods against a planted effect.

    .venv/bin/python benchmarks/evaluation.py                 # seeds 1-20
    .venv/bin/python benchmarks/evaluation.py --seeds 1-3     # fewer worlds
    .venv/bin/python benchmarks/evaluation.py --report-only   # print the tables from the cached results
    .venv/bin/python benchmarks/evaluation.py --national      # the methods' seconds at national scale

For each seed, the generator makes the ``evaluation`` world (about 24 planted territories of
20,000 to 60,000 inhabitants, 2018–2023) with the intervention of
``synthetic_data/intervention-example.toml``: in two planted pilot territories, from 2021 and 2022
(staggered), 15 % of the heart-failure stays are avoided (``truth/intervention.parquet``).
respop then runs ``input, territories, cases, strata`` (``--no-models``; the territories with the
planted count as ``target_count``), and the evaluation step twice:

- **planted**: the built territories that hold most of each planted pilot's population, with
  their start years. The heart-failure stays per 100,000 adults (``heart_failure.disease_stays``)
  have the planted effect, −15 % (exact in expectation); the diabetes outcomes have none.
- **placebo**: two other territories drawn with the seed, with the same start years, the real
  pilots left out of the donors: no effect on any outcome.

It prints, per method: the coverage of the planted effect by the 95 % intervals (goal ≥ 90 % of
seeds), the share of significant effects at 5 % where there is none (goal ≤ 10 %), the detection
rate of the planted effect beside the power table's smallest detectable effect for the pilots'
population, and the seconds and peak memory per world (generation, pipeline, evaluation). Nothing
is asserted (benchmarks/README.md). Worlds and results are cached under
``benchmarks/out/evaluation/`` (keyed by seed and the generator's code: delete the folder after a
generator change).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out" / "evaluation"
PYTHON = sys.executable
INTERVENTION = ROOT / "synthetic_data" / "intervention-example.toml"
PROFILE = "evaluation"
PLANTED_OUTCOME = ("heart_failure", "disease_stays")
NULL_OUTCOMES = (("diabetes", "disease_stays"), ("diabetes", "hospitalised"))
METHODS = ("did", "synthetic_control")
ALPHA = 0.05

sys.path.insert(0, str(ROOT))


def parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            seeds.extend(range(int(a), int(b) + 1))
        else:
            seeds.append(int(part))
    return seeds


def config_text(world: Path, run: Path, territories: int) -> str:
    """territories/demo.toml pointed at the world, with the planted count as target."""
    text = (ROOT / "territories" / "demo.toml").read_text(encoding="utf-8")
    text = (text.replace("../output/demo/data", str(world)).replace("../output/demo/run", str(run))
            .replace("sqlite:///../output/demo/respop.sqlite", f"sqlite:///{run}.sqlite"))
    text = text.replace("target_count = 5", f"target_count = {territories}").replace("min_population = 30000", "min_population = 10000")
    text = text.replace("years = [2023]                  # flows of the last year", "years = [2019]                  # flows of a year before the pilots")
    return text


def evaluation_section(pilots: dict[int, int], donors: list[int] | None, outcomes: list[str]) -> str:
    lines = ["", "[evaluation]", "pilots = { " + ", ".join(f'"{t}" = {s}' for t, s in pilots.items()) + " }"]
    if donors is not None:
        lines.append("donors = [" + ", ".join(f'"{d}"' for d in donors) + "]")
    lines.append("outcomes = [" + ", ".join(f'"{o}"' for o in outcomes) + "]")
    return "\n".join(lines) + "\n"


def peak_children_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def generate(seed: int) -> None:
    """Generate the world of ``seed`` (cached)."""
    folder = OUT / "worlds" / f"seed-{seed}"
    generated = folder / "generated.json"
    if generated.is_file():
        return
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    subprocess.run([PYTHON, "-m", "respop", "synth", "--profile", PROFILE, "--seed", str(seed),
                    "--intervention", str(INTERVENTION), "--out", str(folder / "data")], check=True, stdout=subprocess.DEVNULL)
    generated.write_text(json.dumps({"generate_s": round(time.perf_counter() - t0, 1)}))


def world(seed: int) -> dict:
    """Generate the world and run the pipeline up to the strata (cached)."""
    import polars as pl

    folder = OUT / "worlds" / f"seed-{seed}"
    done = folder / "pipeline.json"
    if done.is_file():
        return json.loads(done.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    generate(seed)
    generate_s = json.loads((folder / "generated.json").read_text())["generate_s"]
    t1 = time.perf_counter()
    planted = pl.read_parquet(folder / "data" / "truth" / "zone_territory.parquet")
    n_planted = planted["territory_id"].n_unique() if "territory_id" in planted.columns else planted[:, 1].n_unique()
    config = folder / "base.toml"
    config.write_text(config_text(folder / "data", folder / "run", n_planted), encoding="utf-8")
    subprocess.run([PYTHON, "-m", "respop", "run", str(config), "--steps", "input,territories,cases,strata", "--no-models"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t2 = time.perf_counter()
    info = {"seed": seed, "generate_s": generate_s, "pipeline_s": round(t2 - t1, 1), "planted_territories": n_planted,
            "peak_mb": round(peak_children_mb())}
    done.write_text(json.dumps(info))
    return info


def built_pilots(seed: int) -> tuple[dict[int, int], dict[int, float], list[int]]:
    """The built territory holding most of each planted pilot's population, with its start year;
    its share of the pilot's population; every built territory."""
    import polars as pl

    folder = OUT / "worlds" / f"seed-{seed}"
    truth = pl.read_parquet(folder / "data" / "truth" / "intervention.parquet")
    planted = pl.read_parquet(folder / "data" / "truth" / "zone_territory.parquet")
    planted_col = "territory_id"
    built = pl.read_parquet(folder / "run" / "territories" / "zone_territory.parquet")
    pop = pl.read_parquet(folder / "data" / "reference" / "population.parquet").group_by("zone_code").agg(pl.col("population").sum())
    starts = {int(r["territory_id"]): int(r["start_year"]) for r in truth.unique("territory_id").iter_rows(named=True)}
    z = planted.rename({planted_col: "planted"}).join(built.select("zone_code", "territory_id"), on="zone_code").join(pop, on="zone_code")
    pilots, share = {}, {}
    for p, start in starts.items():
        mine = z.filter(pl.col("planted") == p).group_by("territory_id").agg(pl.col("population").sum()).sort("population", descending=True)
        t = int(mine["territory_id"][0])
        pilots[t] = start
        share[t] = float(mine["population"][0] / mine["population"].sum())
    return pilots, share, sorted(int(t) for t in built["territory_id"].unique())


def planted_effect(seed: int) -> float:
    """The effect planted on ``heart_failure.disease_stays``, pooled over the pilots' years from
    their start: −15 % of the decompensation stays, the in-hospital death stays coded I50
    (``terminal``) untouched, so −0.15 × counterfactual / (counterfactual + terminal)."""
    import polars as pl

    data = OUT / "worlds" / f"seed-{seed}" / "data" / "truth"
    truth = pl.read_parquet(data / "intervention.parquet")
    stays = pl.read_parquet(data / "intervention_stays.parquet").filter(pl.col("disease") == PLANTED_OUTCOME[0])
    post = stays.join(truth.select("territory_id", "start_year", "effect").filter(pl.col("effect") != 0), on="territory_id").filter(
        pl.col("year") >= pl.col("start_year"))
    cf, terminal = post["counterfactual"].sum(), post["terminal"].sum()
    return float(truth["effect"][0]) * cf / (cf + terminal)


def evaluate(seed: int) -> dict:
    """Both scenarios on one world (cached)."""
    from respop.config import load_config
    from respop.evaluation.run import run_evaluation

    folder = OUT / "worlds" / f"seed-{seed}"
    result_file = OUT / "results" / f"seed-{seed}.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())
    info = world(seed)
    pilots, share, territories = built_pilots(seed)
    rng = random.Random(seed)
    others = [t for t in territories if t not in pilots]
    fakes = rng.sample(others, 2)
    starts = sorted(pilots.values())
    placebo = dict(zip(fakes, starts))
    outcomes = [".".join(PLANTED_OUTCOME), *(".".join(o) for o in NULL_OUTCOMES)]
    rows = []
    planted = planted_effect(seed)
    t0 = time.perf_counter()
    for scenario, chosen, donors in (("planted", pilots, None), ("placebo", placebo, [t for t in others if t not in fakes])):
        path = folder / f"{scenario}.toml"
        path.write_text((folder / "base.toml").read_text() + evaluation_section(chosen, donors, outcomes), encoding="utf-8")
        result = run_evaluation(load_config(path))
        effects = result.effects
        power = __import__("polars").read_parquet(result.out / "power.parquet")
        for r in effects.iter_rows(named=True):
            key = (r["disease"], r["outcome"])
            truth = planted if scenario == "planted" and key == PLANTED_OUTCOME else 0.0
            rows.append({"scenario": scenario, **{k: r[k] for k in ("method", "disease", "outcome", "territory_id", "effect",
                                                                     "ci_lower", "ci_upper", "p_value", "note")}, "truth": truth})
        if scenario == "planted":
            p = power.filter((power["disease"] == PLANTED_OUTCOME[0]) & (power["outcome"] == PLANTED_OUTCOME[1]))
            power_rows = p.to_dicts()
    seconds = round(time.perf_counter() - t0, 1)
    out = {**info, "planted_effect": planted, "pilots": pilots, "pilot_share": share, "placebo": placebo, "evaluation_s": seconds,
           "peak_mb": info.get("peak_mb"), "rows": rows, "power": power_rows}
    result_file.parent.mkdir(parents=True, exist_ok=True)
    result_file.write_text(json.dumps(out, default=str))
    return out


def report(results: list[dict]) -> None:
    print(f"\nEvaluation on {len(results)} worlds (profile {PROFILE}, seeds {', '.join(str(r['seed']) for r in results)})\n")
    print("planted effect on heart-failure stays per seed (−15 % of decompensations, in-hospital death stays untouched): "
          + ", ".join(f"{r['planted_effect']:+.3f}" for r in results))
    print(f"{'method':<18} {'coverage of it':>18} {'detected':>9} {'false pos. (null outcomes)':>27} {'false pos. (placebo pilots)':>28}")
    for method in METHODS:
        planted = [x for r in results for x in r["rows"] if x["scenario"] == "planted" and x["method"] == method
                   and (x["disease"], x["outcome"]) == PLANTED_OUTCOME and x["territory_id"] is None and x["effect"] is not None]
        cover = sum(x["ci_lower"] <= x["truth"] <= x["ci_upper"] for x in planted)
        detect = sum(x["p_value"] < ALPHA for x in planted)
        null_out = [x for r in results for x in r["rows"] if x["scenario"] == "planted" and x["method"] == method
                    and (x["disease"], x["outcome"]) != PLANTED_OUTCOME and x["territory_id"] is None and x["effect"] is not None]
        null_pl = [x for r in results for x in r["rows"] if x["scenario"] == "placebo" and x["method"] == method
                   and x["territory_id"] is None and x["effect"] is not None]
        fp_o = sum(x["p_value"] < ALPHA for x in null_out)
        fp_p = sum(x["p_value"] < ALPHA for x in null_pl)
        print(f"{method:<18} {cover:>9}/{len(planted):<3} ({cover / max(len(planted), 1):>4.0%}) {detect:>3}/{len(planted):<3}"
              f" {fp_o:>14}/{len(null_out):<3} ({fp_o / max(len(null_out), 1):>4.0%}) {fp_p:>15}/{len(null_pl):<3} ({fp_p / max(len(null_pl), 1):>4.0%})")
    print("\nPlanted effect, pooled estimates per seed (DiD | synthetic control):")
    for r in results:
        cells = []
        for method in METHODS:
            x = next((x for x in r["rows"] if x["scenario"] == "planted" and x["method"] == method and x["territory_id"] is None
                      and (x["disease"], x["outcome"]) == PLANTED_OUTCOME), None)
            cells.append("–" if x is None or x["effect"] is None else f"{x['effect']:+.3f} [{x['ci_lower']:+.3f}, {x['ci_upper']:+.3f}] p={x['p_value']:.3f}")
        print(f"  seed {r['seed']:>2}: " + " | ".join(cells) + f"   pilots {r['pilots']} (share of the planted pilot {', '.join(f'{v:.0%}' for v in r['pilot_share'].values())})")
    print("\nPower table (heart-failure stays, DiD, power 0.8 at 5 %), seed 1 beside the detection rate above:")
    for row in results[0]["power"]:
        print(f"  population {row['population']:>9,}  years {row['years_pre']} + {row['years_post']}: smallest detectable effect {row['mde']:.1%}")
    print(f"\n{'seed':>4} {'generate s':>11} {'pipeline s':>11} {'evaluation s':>13} {'peak MB':>8}  (peak: the pipeline's processes)")
    for r in results:
        print(f"{r['seed']:>4} {r['generate_s']:>11} {r['pipeline_s']:>11} {r['evaluation_s']:>13} {r['peak_mb']:>8}")


def national(outcomes: int = 24, pilots: int = 9) -> None:
    """The methods' seconds and peak memory at national scale: 132 territories (pilots + donors),
    2019–2023, one panel per outcome (Poisson counts of territories of 15,000 to 300,000 ×…, the
    simulation of tests/evaluation/test_did.py), ``pilots`` pilots starting 2021 and 2022, the
    estimators and the power table as the evaluation step calls them."""
    import tracemalloc

    import numpy as np
    import polars as pl

    from respop.evaluation import did, power, synthetic_control
    from tests.evaluation.test_did import simulate_panel

    rng = np.random.default_rng(1)
    starts = {i: (2021 if i % 2 else 2022) for i in range(1, pilots + 1)}
    donors = list(range(pilots + 1, 133))
    covariates = pl.DataFrame({"territory_id": list(range(1, 133)), "deprivation": rng.normal(size=132),
                               "share_75_plus": rng.uniform(0.06, 0.14, 132)})
    panels = [simulate_panel(rng, -0.1, starts, n=132, years=range(2019, 2024)) for _ in range(outcomes)]
    rows = []
    for name, call in (
        ("difference-in-differences", lambda p: did.estimate(p, starts, donors)),
        ("synthetic control", lambda p: synthetic_control.estimate(p, starts, donors, covariates=covariates)),
        ("power table", lambda p: power.power_table(p, [50_000, 100_000, 200_000, 500_000], 2, [1, 2, 3], donors=donors)),
    ):
        tracemalloc.start()
        t0 = time.perf_counter()
        for p in panels:
            call(p)
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        rows.append((name, seconds, peak))
    print(f"\nNational scale: 132 territories ({pilots} pilots, {len(donors)} donors), 5 years, {outcomes} outcomes")
    print(f"{'method':<28} {'seconds':>9} {'s / outcome':>12} {'peak MB (Python)':>17}")
    for name, seconds, peak in rows:
        print(f"{name:<28} {seconds:>9.1f} {seconds / outcomes:>12.2f} {peak:>17.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1-20")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--generate-only", action="store_true", help="only generate the worlds (cached)")
    parser.add_argument("--national", action="store_true", help="only time the methods at national scale (132 territories)")
    args = parser.parse_args()
    if args.national:
        national()
        return
    results = []
    for seed in parse_seeds(args.seeds):
        file = OUT / "results" / f"seed-{seed}.json"
        if args.report_only:
            if file.is_file():
                results.append(json.loads(file.read_text()))
            continue
        start = time.perf_counter()
        if args.generate_only:
            generate(seed)
            print(f"seed {seed} generated: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
            continue
        results.append(evaluate(seed))
        print(f"seed {seed}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    if results:
        report(results)


if __name__ == "__main__":
    main()
