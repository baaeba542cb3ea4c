"""Benchmark: issue 21's acceptance of hospital mode, on the demo world, for its university hospital.

    .venv/bin/python benchmarks/hospital.py                 # demo, seed 1
    .venv/bin/python benchmarks/hospital.py --seeds 1-3 --profile demo

For each seed, ``respop synth --profile <profile> --seed <seed> --years 2019-2023 --format both``
(SNDS tables in pmsi/, the same world as ATIH files in atih/) under
``benchmarks/out/hospital/worlds/``; the hospital is the one of kind CHU in
``reference/hospitals.parquet``. Three runs of the same specs:

- **H-national**: hospital mode (``[hospital] finess``) on the whole SNDS folder (a national user's
  folder: the other FINESS are left out and counted);
- **H-ATIH**: hospital mode on the hospital's own ATIH files (its ``<FINESS>.<YYYY>.12.rsa/.ano``
  copied to a folder of their own), as its DIM holds them;
- **P**: the population pipeline's code path (no ``[hospital]``: steps input, cases, strata) on the
  SNDS tables filtered to the hospital's FINESS (B, C, D, UM rows of its ETA_NUM), the independent
  path.

``respop liste`` is run for every index year of H-national and H-ATIH. Each listed stay (FINESS,
PMSI year, RSA number) is mapped back to its truth person through ``truth/stays.parquet`` (as a DIM
would through its own information system; the list holds no patient key), then, per year:

(a) every listed stay is a stay of the hospital; every stay of a listed person at the hospital over
    the period (séances apart) is listed, except the stays the quality filters exclude (counted by
    their planted fault);
(b) the persons of each disease and stratum equal those of P's person_strata (whose patient keys are
    the truth's person keys) — and H-ATIH's lists equal H-national's row for row;
(c) precision of the listed persons against the truth's disease status in the year
    (``truth/diseases.json`` → the severity column > 0 in ``truth/severity.parquet``), with the false
    positives who had died before the year (hospital mode reads no death referential: a person who
    died out of the hospital's sight stays a case) and the precision among the persons alive, and
    sensitivity against the persons with the disease in the year whom the hospital saw (a non-séance
    stay at the hospital in the algorithm's window), against those of them with a stay of the
    disease there (the truth's stay kind: what the algorithm can see), and against every person
    with the disease in the world.

Results go to ``benchmarks/out/hospital/results.json`` and are printed. Nothing is asserted here:
tests/hospital/test_demo_acceptance.py (slow) asserts (a) and (b) on seed 1.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out" / "hospital"
YEARS = [2019, 2020, 2021, 2022, 2023]
EXCLUDING_FAULTS = ("linkage", "duplicate_stays", "error_ghm")
"""Planted faults whose stays the quality filters exclude (docs/pmsi.md): such a stay cannot be listed."""


def world(profile: str, seed: int) -> Path:
    """The world, generated once per profile and seed (SNDS tables and ATIH files)."""
    from respop.synth import generate, load_profile

    folder = OUT / "worlds" / f"{profile}-s{seed}"
    if not (folder / ".complete").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        generate(load_profile(profile), seed=seed, out=folder, years=YEARS, fmt="both")
        (folder / ".complete").write_text("ok")
    return folder


def university_hospital(folder: Path) -> str:
    hospitals = pl.read_parquet(folder / "reference" / "hospitals.parquet")
    chu = hospitals.filter(pl.col("kind") == "CHU")["hospital_id"].to_list()
    if len(chu) != 1:
        raise SystemExit(f"{folder}: {len(chu)} hospitals of kind CHU, expected one")
    return chu[0]


def own_atih_files(folder: Path, finess: str, target: Path) -> Path:
    """The hospital's own ATIH files (as its DIM holds them), copied to a folder of their own."""
    files = sorted(p for p in (folder / "atih").iterdir() if p.name.startswith(f"{finess}."))
    if not files:
        raise SystemExit(f"no ATIH file of {finess} in {folder / 'atih'}")
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for path in files:
        shutil.copy2(path, target / path.name)
    return target


def filtered_snds(folder: Path, finess: str, target: Path) -> Path:
    """The SNDS tables B, C, D, UM of every year restricted to the hospital's ETA_NUM (no referential)."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for path in sorted((folder / "pmsi").glob("T_MCO*.parquet")):
        table = pl.read_parquet(path)
        eta = pl.col("ETA_NUM").cast(pl.String).str.zfill(9)
        table.filter(eta == finess).write_parquet(target / path.name)
    return target


def write_config(path: Path, name: str, pmsi: Path, reference: Path, output: Path, finess: str | None) -> Path:
    text = (f'name = "{name}"\n[input]\npmsi_dir = "{pmsi}"\nreference_dir = "{reference}"\ndeaths = "ignore"\n'
            f'[quality]\nzones_file = "{reference / "zones.parquet"}"\n[output]\ndir = "{output}"\n'
            f'[store]\nurl = "sqlite:///{output}.sqlite"\n')
    if finess is not None:
        text += f'[hospital]\nfiness = "{finess}"\n'
    path.write_text(text, encoding="utf-8")
    return path


def run_pipeline(config: Path, steps: tuple[str, ...]) -> float:
    from respop.pipeline import run

    start = time.perf_counter()
    run(config, steps=steps, models=False)
    return round(time.perf_counter() - start, 1)


def lists(config: Path) -> dict[int, pl.DataFrame]:
    """respop liste for every index year: year → the lists of every disease (a ``disease`` column added)."""
    from respop.config import load_config
    from respop.hospital import write_lists

    cfg = load_config(config)
    person_strata = pl.scan_parquet(cfg.output.dir / "strata" / "person_strata.parquet")
    years = sorted(person_strata.select(pl.col("year").unique()).collect()["year"].to_list())
    out = {}
    for year in years:
        result = write_lists(cfg, f"benchmarks/hospital.py --annee {year}", config, year)
        out[year] = pl.concat([
            pl.read_parquet(cfg.hospital.lists_dir / str(year) / f"{d}.parquet").with_columns(pl.lit(d).alias("disease"))
            for d in cfg.diseases
        ])
        assert result.year == year
    return out


def check(folder: Path, finess: str, listed: dict[int, pl.DataFrame], population_dir: Path, specs) -> dict:
    """(a), (b), (c) for every year (module docstring)."""
    truth = folder / "truth"
    stays = pl.read_parquet(truth / "stays.parquet").with_columns(pl.col("year").cast(pl.Int16))
    at_hospital = stays.filter((pl.col("hospital_id") == finess) & (pl.col("kind") != "session"))
    severity = pl.read_parquet(truth / "severity.parquet")
    deaths = pl.read_parquet(truth / "persons.parquet", columns=["person_key", "death_date"]).rename({"person_key": "patient_key"})
    described = json.loads((truth / "diseases.json").read_text(encoding="utf-8"))
    person_strata = pl.read_parquet(population_dir / "strata" / "person_strata.parquet")
    results = {}
    for year, frame in listed.items():
        mapped = frame.join(
            stays.select(pl.col("hospital_id").alias("finess"), pl.col("year").alias("annee_pmsi"),
                         pl.col("rsa_num").alias("numero_rsa"), "patient_key", "fault", "kind"),
            on=["finess", "annee_pmsi", "numero_rsa"], how="left",
        )
        per_disease = {}
        for spec in specs:
            d = spec.disease
            mine = mapped.filter(pl.col("disease") == d)
            # (a) the listed stays
            unmapped = mine.filter(pl.col("patient_key").is_null()).height
            foreign = mine.filter(pl.col("finess") != finess).height
            persons = mine.select("personne", "patient_key").unique()
            one_key_per_person = persons.height == mine["personne"].n_unique() == mine["patient_key"].n_unique()
            people = mine.select("patient_key").unique()
            expected = at_hospital.join(people, on="patient_key", how="semi")
            got = mine.select(pl.col("numero_rsa").alias("rsa_num"), pl.col("annee_pmsi").alias("year"))
            missing = expected.join(got, on=["rsa_num", "year"], how="anti")
            missing_clean = missing.filter(~pl.col("fault").is_in(EXCLUDING_FAULTS).fill_null(False))
            listed_faulted = mine.filter(pl.col("fault").is_in(EXCLUDING_FAULTS).fill_null(False)).height
            # (b) persons per stratum against P
            ours = mine.select(pl.col("strate").alias("stratum"), "patient_key").unique()
            theirs = person_strata.filter((pl.col("disease") == d) & (pl.col("year") == year)).select("stratum", "patient_key")
            strata = {}
            for level in spec.strata.levels:
                a = set(ours.filter(pl.col("stratum") == level.name)["patient_key"].to_list())
                b = set(theirs.filter(pl.col("stratum") == level.name)["patient_key"].to_list())
                strata[level.name] = {"listed": len(a), "population_path": len(b), "only_listed": len(a - b),
                                      "only_population_path": len(b - a)}
            # (c) against the truth's disease status in the year
            column = described[d]["severity_column"]
            diseased = severity.filter((pl.col("year") == year) & (pl.col(column) > 0)).select(pl.col("person_key").alias("patient_key"))
            lookback = spec.window.lookback_years
            seen = (at_hospital.filter(pl.col("year").is_between(year - lookback, year)).select("patient_key").unique()
                    .join(diseased, on="patient_key", how="semi"))
            with_disease_stay = (
                at_hospital.filter(pl.col("year").is_between(year - lookback, year) & (pl.col("kind") == described[d]["stay_kind"]))
                .select("patient_key").unique().join(diseased, on="patient_key", how="semi")
            )
            true_listed = people.join(diseased, on="patient_key", how="semi").height
            # the false positives: dead before the year (out of the hospital's sight: no death referential)
            wrong = people.join(diseased, on="patient_key", how="anti").join(deaths, on="patient_key", how="left")
            dead_before = wrong.filter(pl.col("death_date") < pl.date(year, 1, 1)).height
            alive = people.join(deaths.filter(pl.col("death_date") < pl.date(year, 1, 1)), on="patient_key", how="anti").height
            per_disease[d] = {
                "persons": people.height, "stays": mine.height, "unmapped_stays": unmapped, "stays_of_other_finess": foreign,
                "one_truth_person_per_listed_person": one_key_per_person,
                "stays_of_listed_persons_at_hospital": expected.height,
                "not_listed": missing.height, "not_listed_without_excluding_fault": missing_clean.height,
                "not_listed_by_fault": dict(missing.group_by("fault").len().iter_rows()),
                "listed_with_excluding_fault": listed_faulted,
                "strata": strata,
                "strata_equal": all(s["only_listed"] == s["only_population_path"] == 0 for s in strata.values()),
                "precision": true_listed / people.height if people.height else None,
                "false_positives": people.height - true_listed, "false_positives_dead_before_year": dead_before,
                "precision_alive": true_listed / alive if alive else None,
                "diseased_seen_at_hospital": seen.height,
                "sensitivity_seen": people.join(seen, on="patient_key", how="semi").height / seen.height if seen.height else None,
                "diseased_with_disease_stay": with_disease_stay.height,
                "sensitivity_disease_stay": people.join(with_disease_stay, on="patient_key", how="semi").height / with_disease_stay.height
                if with_disease_stay.height else None,
                "diseased_in_population": diseased.height,
                "sensitivity_population": true_listed / diseased.height if diseased.height else None,
            }
        results[year] = per_disease
    return results


def same_lists(a: dict[int, pl.DataFrame], b: dict[int, pl.DataFrame]) -> dict[int, bool]:
    return {y: y in b and a[y].sort(pl.all()).equals(b[y].sort(pl.all())) for y in a}


def one(profile: str, seed: int) -> dict:
    from respop.config import load_config
    from respop.spec.catalogue import run_catalogue

    folder = world(profile, seed)
    finess = university_hospital(folder)
    work = OUT / "runs" / f"{profile}-s{seed}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    reference = folder / "reference"
    seconds = {}
    national = write_config(work / "h-national.toml", "chu", folder / "pmsi", reference, work / "h-national", finess)
    seconds["h_national_run"] = run_pipeline(national, ("input", "cases", "strata", "store"))
    start = time.perf_counter()
    listed = lists(national)
    seconds["h_national_liste"] = round(time.perf_counter() - start, 1)
    atih = write_config(work / "h-atih.toml", "chu", own_atih_files(folder, finess, work / "atih"), reference, work / "h-atih", finess)
    seconds["h_atih_run"] = run_pipeline(atih, ("input", "cases", "strata"))
    listed_atih = lists(atih)
    population = write_config(work / "p.toml", "p", filtered_snds(folder, finess, work / "snds"), reference, work / "p", None)
    seconds["p_run"] = run_pipeline(population, ("input", "cases", "strata"))
    cfg = load_config(national)
    specs = run_catalogue(cfg).specs
    report = json.loads((cfg.output.dir / "input" / "report.json").read_text(encoding="utf-8"))
    return {
        "profile": profile, "seed": seed, "finess": finess, "hospital": report["hospital"],
        "store_written": (work / "h-national.sqlite").exists(),
        "atih_lists_equal_national": same_lists(listed, listed_atih),
        "national": check(folder, finess, listed, load_config(population).output.dir, specs),
        "atih": check(folder, finess, listed_atih, load_config(population).output.dir, specs),
        "seconds": seconds,
    }


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def show(result: dict) -> None:
    print(f"\n{result['profile']} seed {result['seed']}: CHU {result['finess']}, stays kept "
          f"{result['hospital']['stays_kept']}, other FINESS left out {result['hospital']['stays_other_finess']:,} "
          f"({result['hospital']['other_finess']} FINESS); store written: {result['store_written']}; "
          f"ATIH lists = national lists: {result['atih_lists_equal_national']}; seconds {result['seconds']}")
    for path in ("national", "atih"):
        for year, diseases in result[path].items():
            for d, r in diseases.items():
                strata = ", ".join(f"{k} {v['listed']}/{v['population_path']}" for k, v in r["strata"].items())
                print(f"  {path:<8} {year} {d:<14} persons {r['persons']:>5} stays {r['stays']:>6} | (a) unmapped "
                      f"{r['unmapped_stays']} other FINESS {r['stays_of_other_finess']} not listed {r['not_listed']} "
                      f"(without excluding fault {r['not_listed_without_excluding_fault']}; {r['not_listed_by_fault']}) | "
                      f"(b) equal {r['strata_equal']} [{strata}] | (c) precision {_pct(r['precision'])} (false positives {r['false_positives']}, dead before the year "
                      f"{r['false_positives_dead_before_year']}; alive {_pct(r['precision_alive'])}) sensitivity seen "
                      f"{_pct(r['sensitivity_seen'])} (of {r['diseased_seen_at_hospital']}) with a disease stay there "
                      f"{_pct(r['sensitivity_disease_stay'])} (of {r['diseased_with_disease_stay']}) population "
                      f"{_pct(r['sensitivity_population'])} (of {r['diseased_in_population']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--seeds", default="1")
    args = parser.parse_args()
    from respop.config import parse_ranges

    results = [one(args.profile, seed) for seed in parse_ranges(args.seeds, "--seeds", "1-3")]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    for result in results:
        show(result)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
