"""The synthetic world's calibration figures on several seeds, beside the published ones.

    .venv/bin/python benchmarks/calibration.py                    # demo, seeds 1-5, every year
    .venv/bin/python benchmarks/calibration.py --seeds 1,2 --profile tiny --years 2023

For each seed, generates the profile's world into ``benchmarks/out/calibration/<profile>-<seed>``
(replaced each run) and prints ``respop.synth.calibration.calibration`` for each year: the figure,
its relative difference to the published one (../shared/reference/published-figures.md), and a
mark when it is outside the goal (heart-failure hospitalisation: ±5%, the others: ±10%).
Figures of a seed differ with its draws: a figure checked on one seed is not checked.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from respop.synth import generate, load_profile
from respop.synth.calibration import PUBLISHED, calibration

OUT = Path(__file__).resolve().parent / "out" / "calibration"
GOALS = {"hf_hospitalised_per_100k_adults": 0.05}
"""Relative tolerance per figure (issue 18); the others: :data:`DEFAULT_GOAL`."""
DEFAULT_GOAL = 0.10
SHORT = {
    "stays_per_inhabitant": "stays/inh",
    "hf_hospitalised_per_100k_adults": "HF hosp/100k adults",
    "hf_prevalence_adults": "HF prev adults",
    "diabetes_prevalence": "diabetes prev",
    "copd_prevalence_40plus": "COPD prev 40+",
    "copd_admissions_per_100k_25plus": "COPD adm/100k 25+",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--years", default=None, help="comma-separated (default: every year of the profile)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"where the worlds are generated (default {OUT})")
    args = parser.parse_args()
    profile = load_profile(args.profile)
    seeds = [int(s) for s in args.seeds.split(",")]
    years = [int(y) for y in args.years.split(",")] if args.years else list(profile.years)
    names = list(PUBLISHED)
    print(f"profile {profile.name}; published: " + ", ".join(f"{SHORT[n]} {PUBLISHED[n][0]:g}" for n in names))
    header = f"{'seed':>4} {'year':>4} " + " ".join(f"{SHORT[n]:>20}" for n in names)
    print(header)
    worst: dict[str, float] = {n: 0.0 for n in names}
    outside = 0
    for seed in seeds:
        out = args.out / f"{profile.name}-{seed}"
        started = time.perf_counter()
        generate(profile, seed, out)
        seconds = time.perf_counter() - started
        for year in years:
            cells = []
            for f in calibration(out, year):
                goal = GOALS.get(f.name, DEFAULT_GOAL)
                bad = abs(f.relative_difference) > goal
                outside += bad
                if abs(f.relative_difference) > abs(worst[f.name]):
                    worst[f.name] = f.relative_difference
                value = f"{f.generated:.4g} ({f.relative_difference:+.1%}){'!' if bad else ' '}"
                cells.append(f"{value:>20}")
            print(f"{seed:>4} {year:>4} " + " ".join(cells), flush=True)
        print(f"     (seed {seed} generated in {seconds:.0f} s)", flush=True)
    print("largest difference: " + ", ".join(f"{SHORT[n]} {worst[n]:+.1%}" for n in names))
    print(f"figures outside their goal ('!': HF hospitalisation ±5%, others ±10%): {outside}")


if __name__ == "__main__":
    main()
