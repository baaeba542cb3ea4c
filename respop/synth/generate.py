"""``respop synth``: generate a synthetic PMSI-shaped world with its ground truth.

Writes, under the output folder:

- ``pmsi/T_MCO{yy}B|C|D|UM.parquet`` (or ``.csv``) per exit year, as the SNDS delivers them; for
  worlds simulated in several chunks, each table is a folder of Parquet parts; or, with the format
  ``atih``, the same PMSI as the ATIH's RSA and ANO files (``both``: those in ``atih/``, see
  :data:`FORMATS`);
- ``reference/``: zones (GeoParquet), population, hospitals, towns, the population of each
  simulated year (``population_by_year.parquet``: zone × sex × age band × year, the shape of
  INSEE's yearly estimates, counted from the simulated people: :func:`population_by_year`), and a
  zone deprivation index correlated with the diseases (:mod:`respop.synth.deprivation`);
- ``truth/``: what the pipeline must recover and never reads: planted territories, persons
  (disease status and onset, death), residence per year, severity per year, moves, and one row
  per emitted stay with the data-quality fault planted in it, if any; ``diseases.json`` says, for
  each simulated disease (by the identifier of its algorithm spec), where the truth holds it
  (:data:`TRUTH_DISEASES`); ``intervention.parquet`` and ``intervention_stays.parquet``: the
  planted intervention of the profile (none by default) and the disease stays per planted
  territory with and without it (:mod:`respop.synth.intervention`).

Persons are simulated in chunks of zones (``profile.chunk_persons``) so that memory stays bounded
at national scale; moves stay within a chunk.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from respop.errors import RespopError
from respop.fsutil import atomic_folder
from respop.pmsi.canonical import DEATH_EXIT_MODE, EMERGENCY_PROVENANCE
from respop.pmsi.quality import UNKNOWN_ZONE
from respop.pmsi.schema import RETURN_CODES
from respop.synth import deprivation
from respop.synth import intervention as planted
from respop.synth.geography import World, hospital_choice, make_world, write_reference, write_truth
from respop.synth.people import COMPLICATIONS, People, advance, beneficiaries_referential, births, concat, initial_people
from respop.synth.profiles import AGE_BANDS, Profile
from respop.synth.stays import StayFrame, make_stays

Progress = Callable[[str], None]

FAULTS = {
    "linkage": 0.02,
    "error_ghm": 0.002,
    "invalid_residence": 0.003,
    "residence_abroad": 0.0015,
    "inter_hospital_services": 0.003,
    "duplicate_stays": 0.002,
}
"""Share of stays given each data-quality fault, one fault per stay at most (the foundation's
quality filters of the same names must catch them)."""
TRUTH_DISEASES = {
    "diabetes": {
        "severity_column": "diabetes_type",
        "onset_column": "diabetes_onset",
        "stay_kind": "diabetes",
        "death_principal_diagnoses": [],
        "subtypes": {"by": "column", "column": "diabetes_type", "values": {"1": "type_1", "2": "type_2"}},
    },
    "heart_failure": {
        "severity_column": "hf_stage",
        "onset_column": "hf_onset",
        "stay_kind": "heart_failure",
        "death_principal_diagnoses": ["I50"],
        "subtypes": {"by": "timing"},
    },
    "copd": {
        "severity_column": "copd_stage",
        "onset_column": "copd_onset",
        "stay_kind": "copd",
        "death_principal_diagnoses": ["J44"],
        "subtypes": {"by": "timing"},
    },
}
"""The simulated diseases, keyed by the identifier of their algorithm spec (algorithms/<id>.toml),
written to ``truth/diseases.json``: a person has the disease in a year when ``severity_column`` of
that year's ``severity`` row is above 0; ``onset_column`` of ``persons`` is its onset; the stays it
causes have ``kind == stay_kind`` in ``truth/stays``, and an in-hospital death is caused by it when
its principal diagnosis starts with one of ``death_principal_diagnoses``. ``subtypes``: ``timing``
(the type of the index year is a stay of that kind in the year) or a column of ``severity`` whose
values name the spec's sub-types. A disease absent from this file has no truth to validate."""
COPD_STREAM = 1
"""COPD's persons are drawn from their own random stream (seed, chunk, COPD_STREAM): it came after
diabetes and heart failure, and their draws stayed where they were (their yearly figures still
move with COPD's deaths and stays)."""
MARKER = ".respop-synth"
"""File marking a folder as a ``respop synth`` output, which a new run may replace."""
ABROAD_CODES = np.array(["99134", "99109", "99131", "99127", "99350"])
"""Residence abroad: 99 + INSEE country code (Spain, Germany, Belgium, Italy, Morocco)."""


@dataclass
class SynthResult:
    out: Path
    years: list[int]
    persons: int
    stays: dict[int, int]


def generate(
    profile: Profile,
    seed: int,
    out: str | Path,
    years: list[int] | None = None,
    fmt: str = "parquet",
    progress: Progress | None = None,
) -> SynthResult:
    """Generate the world of ``profile`` for ``years`` (default: the profile's) under ``out``.

    Fewer than :data:`CALIBRATED_YEARS` years are the last years of a simulation that starts
    earlier (the warm-up years are simulated, not written), so that the last year is calibrated.

    ``out`` must be absent, empty, or an earlier ``respop synth`` output (it holds the marker file
    ``.respop-synth``); it is replaced only once everything is written.
    """
    step = progress or (lambda _label: None)
    years = sorted(years or profile.years)
    if len(set(years)) != len(years) or years != list(range(years[0], years[0] + len(years))):
        raise RespopError(f"years must be consecutive and distinct, got {years}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).is_file())):
        raise RespopError(f"{out} exists and is not a respop synth output; choose another --out")
    rng = np.random.default_rng(seed)
    step("building the geography")
    world = make_world(profile.geography, rng)
    chunks = _zone_chunks(world, profile.chunk_persons)
    if fmt not in FORMATS:
        raise RespopError(f"unknown output format {fmt!r} (choose among {', '.join(FORMATS)})")
    if fmt == "csv" and len(chunks) > 1:
        raise RespopError(
            f"the {profile.name} world is simulated in {len(chunks)} chunks and written as Parquet parts; "
            "CSV output is for worlds of one chunk (tiny, demo)"
        )
    if profile.intervention is not None:
        try:
            profile.intervention.check_world(profile.geography.territories, years)
        except ValueError as exc:
            raise RespopError(f"intervention: {exc}") from None
    simulated = list(range(years[-1] - max(len(years), CALIBRATED_YEARS) + 1, years[-1] + 1))
    with atomic_folder(out) as tmp:
        result = _simulate(profile, seed, world, chunks, years, simulated, tmp, "csv" if fmt == "csv" else "parquet", step)
        if fmt in ("atih", "both"):
            step("writing the ATIH files")
            _write_atih(tmp, seed, replace=fmt == "atih")
        (tmp / MARKER).write_text(f"respop synth --profile {profile.name} --seed {seed}\n", encoding="utf-8")
    return SynthResult(out=out, years=years, persons=result[0], stays=result[1])


FORMATS = ("parquet", "csv", "atih", "both")
"""Output formats: SNDS tables in Parquet or CSV; ``atih``: the same world as the ATIH's RSA and
ANO files (one of each per hospital and exit year, :mod:`respop.synth.atih`) in ``pmsi/`` instead;
``both``: SNDS tables (Parquet) in ``pmsi/`` and the ATIH files in ``atih/``. The referential
``IR_BEN_R`` is beside the PMSI files in each folder."""
ATIH_FOLDER = "atih"
"""With ``both``: the folder of the ATIH files, beside ``pmsi/``."""


def _write_atih(out: Path, seed: int, replace: bool) -> None:
    """The SNDS tables of ``out/pmsi`` written as ATIH files (drawn zones seeded by the world's
    ``seed``) to ``out/atih``, with a copy of the referential; with ``replace``, ``out/pmsi`` then
    holds the ATIH files and the referential only."""
    import shutil

    from respop.synth import atih

    target = out / ATIH_FOLDER
    atih.write_folder(out / "pmsi", target, seed)
    for entry in (out / "pmsi").iterdir():
        if entry.name.startswith(REFERENTIAL):
            (shutil.copytree if entry.is_dir() else shutil.copy2)(entry, target / entry.name)
    if replace:
        shutil.rmtree(out / "pmsi")
        target.rename(out / "pmsi")


CALIBRATED_YEARS = 5
"""The generator's rates are calibrated on the fifth simulated year (2023 of ``demo``'s 2019-2023;
issue 18): the simulated world is not at a steady state (its stage mixes drift from the published
ones of the first year, synthetic_data/README.md), and a world asked for fewer years is simulated
from earlier, the first years simulated but not written (warm-up), so that its last year is the
fifth. A world of 5 years or more starts in its first year."""


def _simulate(profile, seed, world, chunks, years, simulated, out, fmt, step) -> tuple[int, dict[int, int]]:
    """Simulate the ``simulated`` years (consecutive, ending with ``years``), writing ``years``."""
    choice = hospital_choice(world, profile.geography)
    cum_choice = np.cumsum(choice, axis=1)
    for sub in ("pmsi", "reference", "truth"):
        (out / sub).mkdir(parents=True)
    write_reference(world, out / "reference")
    write_truth(world, out / "truth")
    (out / "truth" / "diseases.json").write_text(json.dumps(TRUTH_DISEASES, indent=2) + "\n", encoding="utf-8")
    index = deprivation.deprivation_index(world, seed)
    deprivation.write_deprivation(world, index, out / "reference")
    risk = deprivation.risk_factors(index, world.zones["population"].to_numpy().astype(float))
    planting = planted.Planting(profile.intervention, world, {k: v["death_principal_diagnoses"] for k, v in TRUTH_DISEASES.items()})
    intervention_counts: list[pl.DataFrame] = []

    zone_codes = world.zones["zone_code"].to_numpy()
    zone_index = {z: i for i, z in enumerate(zone_codes)}
    stays_per_year: dict[int, int] = {y: 0 for y in years}
    persons = 0
    yearly_population: dict[int, np.ndarray] = {}  # chunks hold disjoint zones: their counts add up
    for c, chunk_zones in enumerate(chunks):
        crng = np.random.default_rng([seed, c])
        copd_rng = np.random.default_rng([seed, c, COPD_STREAM])
        intervention_rng = np.random.default_rng([seed, c, planted.INTERVENTION_STREAM])
        pop = world.population.filter(pl.col("zone_code").is_in(zone_codes[chunk_zones].tolist()))
        people = initial_people(crng, pop, zone_index, simulated[0], copd_rng, risk)
        neighbours = _neighbours(world, zone_index, set(chunk_zones.tolist()))
        weights = np.zeros(len(zone_codes))
        weights[chunk_zones] = world.zones["population"].to_numpy()[chunk_zones]
        weights /= weights.sum()
        truth_rows: dict[str, list[pl.DataFrame]] = {"residence": [], "severity": [], "moves": [], "stays": []}
        hf_stay = np.zeros(len(people), dtype=np.int64)
        copd_stay = np.zeros(len(people), dtype=np.int64)
        for year in simulated:
            written = year in stays_per_year
            step(f"simulating {year}{'' if written else ' (warm-up, not written)'} (chunk {c + 1}/{len(chunks)})")
            if year != simulated[0]:  # the first year's infants are in the starting population
                people = concat(people, births(crng, people, len(zone_codes), year))
                hf_stay = np.concatenate([hf_stay, np.zeros(len(people) - len(hf_stay), dtype=np.int64)])
                copd_stay = np.concatenate([copd_stay, np.zeros(len(people) - len(copd_stay), dtype=np.int64)])
            alive_at_start = people.alive.copy()
            if written:
                counted = population_by_year(people, alive_at_start, len(zone_codes), year)
                yearly_population[year] = yearly_population.get(year, 0) + counted
            events = advance(crng, people, year, neighbours, weights, hf_stay, copd_stay, copd_rng, risk)
            frame = make_stays(crng, people, year, alive_at_start, events.new_hf, events.new_copd, hf_stay, copd_stay)
            # each person's stays of the year (the vulnerable phase of the next: people.after_stay)
            hf_stay = np.bincount(frame.table.filter(pl.col("kind") == "heart_failure")["person"].to_numpy(), minlength=len(people))
            copd_stay = np.bincount(frame.table.filter(pl.col("kind") == "copd")["person"].to_numpy(), minlength=len(people))
            if not written:
                continue
            tables, truth_stays, counts = _to_snds(crng, frame, people, world, cum_choice, year, c, planting, intervention_rng)
            intervention_counts.append(counts.with_columns(pl.lit(year, pl.Int64).alias("year")))
            _write_tables(tables, out / "pmsi", year, c, len(chunks) > 1, fmt)
            stays_per_year[year] += truth_stays.height
            truth_rows["stays"].append(truth_stays)
            truth_rows["residence"].append(_residence(people, alive_at_start, zone_codes, year))
            truth_rows["severity"].append(_severity(people, alive_at_start, year))
            truth_rows["moves"].append(
                pl.DataFrame({"person_key": people.key[events.moved], "year": year,
                              "from_zone": zone_codes[events.moved_from], "to_zone": zone_codes[people.zone[events.moved]]},
                             schema={"person_key": pl.String, "year": pl.Int16, "from_zone": pl.String, "to_zone": pl.String})
            )
        persons += len(people)
        suffix = f"-{c:03d}" if len(chunks) > 1 else ""
        for name, frames in truth_rows.items():
            pl.concat(frames).write_parquet(out / "truth" / f"{name}{suffix}.parquet")
        _persons(people).write_parquet(out / "truth" / f"persons{suffix}.parquet")
        _write_referential(np.random.default_rng([seed, c, REFERENTIAL_STREAM]), people, out, c, len(chunks) > 1, fmt)
    _write_population_by_year(yearly_population, zone_codes, out / "reference")
    planted.write_truth(planting, world, intervention_counts, years, out / "truth")
    if simulated[0] != years[0]:
        _write_start_population(yearly_population[years[0]], zone_codes, out / "reference")
    return persons, stays_per_year


POPULATION_BY_YEAR = "population_by_year.parquet"
"""The yearly populations in ``reference/`` (the denominators of each year's rates)."""


def population_by_year(people: People, alive: np.ndarray, n_zones: int, year: int) -> np.ndarray:
    """The people living in each zone at the start of ``year`` (that year's newborns included, as
    in the first year's population), counted by zone × sex × age band (age = ``year`` − birth
    year, the age band convention of the world's population): an array (zone, sex, band)."""
    n_bands = len(AGE_BANDS)
    band = np.minimum(people.age(year)[alive] // 5, n_bands - 1).astype(np.int64)
    sex = people.sex[alive].astype(np.int64) - 1
    cell = (people.zone[alive].astype(np.int64) * 2 + sex) * n_bands + band
    return np.bincount(cell, minlength=n_zones * 2 * n_bands).reshape(n_zones, 2, n_bands)


def _write_start_population(counts: np.ndarray, zone_codes: np.ndarray, folder: Path) -> None:
    """``population.parquet`` of a world with warm-up years: the people living in each zone at the
    start of its first written year (the census-like population without a year, as the first
    year's population of a world without warm-up), instead of the warm-up's starting population."""
    n_zones, n_sexes, n_bands = counts.shape
    pl.DataFrame(
        {
            "zone_code": np.repeat(zone_codes.astype(str), n_sexes * n_bands),
            "sex": np.tile(np.repeat(np.array([1, 2], dtype=np.int8), n_bands), n_zones),
            "age_band": np.tile(np.array(AGE_BANDS), n_zones * n_sexes),
            "population": counts.reshape(-1).astype(np.int64),
        },
        schema={"zone_code": pl.String, "sex": pl.Int8, "age_band": pl.String, "population": pl.Int64},
    ).write_parquet(folder / "population.parquet")


def _write_population_by_year(total: dict[int, np.ndarray], zone_codes: np.ndarray, folder: Path) -> None:
    """``population_by_year.parquet``: zone_code, year, sex, age_band, population, every cell of
    every simulated year (zeros included); ``total``: year → the arrays of :func:`population_by_year`."""
    years = sorted(total)
    n_zones, n_sexes, n_bands = total[years[0]].shape
    cells = n_zones * n_sexes * n_bands
    pl.DataFrame(
        {
            "zone_code": np.tile(np.repeat(zone_codes.astype(str), n_sexes * n_bands), len(years)),
            "year": np.repeat(np.array(years, dtype=np.int16), cells),
            "sex": np.tile(np.repeat(np.array([1, 2], dtype=np.int8), n_bands), n_zones * len(years)),
            "age_band": np.tile(np.array(AGE_BANDS), n_zones * n_sexes * len(years)),
            "population": np.concatenate([total[year].reshape(-1) for year in years]).astype(np.int64),
        },
        schema={"zone_code": pl.String, "year": pl.Int16, "sex": pl.Int8, "age_band": pl.String, "population": pl.Int64},
    ).sort("zone_code", "year", "sex", "age_band").write_parquet(folder / POPULATION_BY_YEAR)


REFERENTIAL = "IR_BEN_R"
REFERENTIAL_STREAM = 2
"""The referential's random stream (seed, chunk, REFERENTIAL_STREAM): it came after the rest, whose
draws stayed where they were."""


def _write_referential(rng: np.random.Generator, people: People, out: Path, chunk: int, parts: bool, fmt: str) -> None:
    """The beneficiaries' referential ``IR_BEN_R`` of the chunk's people, written beside the PMSI
    tables (``pmsi/``: it comes with the same SNDS extraction, patient-level, and respop reads it
    from there with no further setting), and the truth of its rows (``truth/referential``)."""
    table, truth = beneficiaries_referential(rng, people)
    if parts:
        target = out / "pmsi" / REFERENTIAL
        target.mkdir(exist_ok=True)
        table.write_parquet(target / f"part-{chunk:03d}.parquet")
        truth.write_parquet(out / "truth" / f"referential-{chunk:03d}.parquet")
        return
    if fmt == "csv":
        table.write_csv(out / "pmsi" / f"{REFERENTIAL}.csv", separator=";")
    else:
        table.write_parquet(out / "pmsi" / f"{REFERENTIAL}.parquet")
    truth.write_parquet(out / "truth" / "referential.parquet")


def _zone_chunks(world: World, chunk_persons: int) -> list[np.ndarray]:
    """Groups of consecutive zones (by code, so by département) of about ``chunk_persons`` people."""
    pops = world.zones["population"].to_numpy()
    order = np.argsort(world.zones["zone_code"].to_numpy())
    chunks, current, total = [], [], 0
    for i in order:
        current.append(i)
        total += pops[i]
        if total >= chunk_persons:
            chunks.append(np.array(current))
            current, total = [], 0
    if current:
        chunks.append(np.array(current))
    return chunks


def _neighbours(world: World, zone_index: dict[str, int], allowed: set[int]) -> list[np.ndarray]:
    out: list[list[int]] = [[] for _ in zone_index]
    for a, b in world.adjacency.select("zone_code", "neighbour_code").iter_rows():
        i, j = zone_index[a], zone_index[b]
        if i in allowed and j in allowed:
            out[i].append(j)
    return [np.array(v, dtype=np.int64) for v in out]


def _sample_hospitals(rng: np.random.Generator, cum_choice: np.ndarray, zones: np.ndarray) -> np.ndarray:
    u = rng.random(len(zones))
    hospital = np.empty(len(zones), dtype=np.int64)
    order = np.argsort(zones, kind="stable")
    bounds = np.flatnonzero(np.diff(zones[order])) + 1
    for group in np.split(order, bounds):
        if len(group):
            row = cum_choice[zones[group[0]]]
            hospital[group] = np.minimum(np.searchsorted(row, u[group] * row[-1]), len(row) - 1)
    return hospital


def _sas(dates: pl.Expr) -> pl.Expr:
    """SAS datetime text, as SNDS exports give it: 02JAN2022:00:00:00."""
    return dates.dt.strftime("%d%b%Y:00:00:00").str.to_uppercase()


def _to_snds(
    rng: np.random.Generator, frame: StayFrame, people: People, world: World, cum_choice: np.ndarray, year: int, chunk: int,
    planting: planted.Planting | None = None, intervention_rng: np.random.Generator | None = None,
) -> tuple[dict[str, pl.DataFrame], pl.DataFrame, pl.DataFrame]:
    """SNDS tables B, C, D, UM of one year's stays, with planted faults, and the truth per row;
    and the disease stays per planted territory with and without the planted intervention
    (:mod:`respop.synth.intervention`: its stays are removed or added after every draw of ``rng``,
    so that the rest of the world is that of the same seed without it)."""
    t = frame.table
    n = t.height
    person = t["person"].to_numpy()
    zone = people.zone[person]
    hospital = _sample_hospitals(rng, cum_choice, zone)
    hospitals = world.hospitals
    # two stays of one person in one hospital with the same dates and GHM would be duplicates in
    # the PMSI's sense: keep the first (rare: séances on the same day)
    keep = (
        t.with_columns(pl.Series("h", hospital))
        .with_row_index("i")
        .unique(subset=["person", "h", "entry_date", "exit_date", "ghm"], keep="first", maintain_order=True)["i"]
        .to_numpy()
    )
    t, person, zone, hospital = t[keep], person[keep], zone[keep], hospital[keep]
    n = t.height
    emergency_ok = hospitals["has_emergency"].to_numpy()[hospital]
    zone_code = world.zones["zone_code"].to_numpy()[zone]

    # one fault per stay at most
    fault = np.full(n, None, dtype=object)
    u = rng.random(n)
    edge = 0.0
    for name, share in FAULTS.items():
        fault[(u >= edge) & (u < edge + share)] = name
        edge += share
    residence = zone_code.astype(object)
    bad_res = fault == "invalid_residence"
    residence[bad_res] = rng.choice(np.array([None, UNKNOWN_ZONE, "1X"], dtype=object), size=int(bad_res.sum()))
    abroad = fault == "residence_abroad"
    residence[abroad] = rng.choice(ABROAD_CODES, size=int(abroad.sum()))
    ghm = np.where(fault == "error_ghm", "90Z00Z", t["ghm"].to_numpy())
    sej_typ = np.where(fault == "inter_hospital_services", "B", None).astype(object)
    ret_col = rng.integers(0, len(RETURN_CODES), size=n)

    stays = t.with_columns(
        pl.Series("hospital_id", hospitals["hospital_id"].to_numpy()[hospital]),
        pl.Series("patient_key", people.key[person]),
        pl.Series("sex", people.sex[person]),
        pl.Series("residence_zone", residence.tolist(), dtype=pl.String),
        pl.Series("true_zone", zone_code),
        pl.Series("ghm_written", ghm),
        pl.Series("stay_type", sej_typ.tolist(), dtype=pl.String),
        pl.Series("provenance", np.where(t["via_emergency"].to_numpy() & emergency_ok, EMERGENCY_PROVENANCE, None).tolist(), dtype=pl.String),
        pl.Series("fault", fault.tolist(), dtype=pl.String),
        pl.Series("ret_col", ret_col),
    )
    # duplicated stays: the stay drawn for the fault is written twice; the original is clean, the
    # copy (under another RSA number, later in the file) carries the fault
    copies = stays.filter(pl.col("fault") == "duplicate_stays")
    originals = stays.with_columns(
        pl.when(pl.col("fault") != "duplicate_stays").then(pl.col("fault")).alias("fault")
    )
    stays = pl.concat([originals, copies])
    # number and write the stays in hospital and exit-date order, ties at random, so that the row
    # order says nothing of the kind of stay or of the planted faults
    stays = stays.with_columns(pl.Series("_shuffle", rng.random(stays.height))).sort("hospital_id", "exit_date", "_shuffle").drop("_shuffle")
    stays = stays.with_columns(
        (pl.lit(chunk * 100_000_000, pl.Int64) + pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("hospital_id"))
        .cast(pl.String).str.zfill(10).alias("rsa_num"),
        pl.col("ghm_written").alias("ghm"),
    )
    # of the two copies of a duplicated stay, the one later in the file is the duplicate
    pair = pl.col("stay").is_duplicated()
    stays = stays.with_columns(
        pl.when(pair)
        .then(pl.when(pl.col("rsa_num") == pl.col("rsa_num").max().over("stay")).then(pl.lit("duplicate_stays")))
        .otherwise(pl.col("fault"))
        .alias("fault")
    )
    diagnoses = frame.diagnoses
    counts = pl.DataFrame(schema={"territory_id": pl.Int64, "disease": pl.String, "counterfactual": pl.Int64, "observed": pl.Int64})
    if planting is not None:
        stays, diagnoses, counts = planting.apply(intervention_rng, stays, diagnoses, people.death_date, year, frame.table.height)
    dx = diagnoses.join(stays.select("stay", "hospital_id", "rsa_num"), on="stay", maintain_order="right")
    dr = dx.filter(pl.col("position") == "DR").group_by("stay").agg(pl.col("code").first().alias("related_diagnosis"))
    stays = stays.join(dr, on="stay", how="left", maintain_order="left")

    b = stays.select(
        pl.col("hospital_id").alias("ETA_NUM"),
        pl.col("rsa_num").alias("RSA_NUM"),
        pl.col("age").cast(pl.String).alias("AGE_ANN"),
        pl.col("sex").cast(pl.String).alias("COD_SEX"),
        pl.col("residence_zone").alias("BDI_COD"),
        pl.col("residence_zone").str.slice(0, 2).alias("BDI_DEP"),
        pl.col("principal_diagnosis").alias("DGN_PAL"),
        pl.col("related_diagnosis").alias("DGN_REL"),
        pl.lit("8").alias("ENT_MOD"),
        pl.col("provenance").alias("ENT_PRV"),
        pl.col("exit_mode").alias("SOR_MOD"),
        pl.when(pl.col("kind") != "session").then(pl.col("length_of_stay").cast(pl.String)).alias("SEJ_NBJ"),
        pl.col("ghm").alias("GRG_GHM"),
        pl.col("stay_type").alias("SEJ_TYP"),
        pl.lit(str(year)).alias("SOR_ANN"),
        pl.col("exit_date").dt.month().cast(pl.String).str.zfill(2).alias("SOR_MOI"),
    )
    c = stays.select(
        pl.col("hospital_id").alias("ETA_NUM"),
        pl.col("rsa_num").alias("RSA_NUM"),
        pl.col("patient_key").alias("NIR_ANO_17"),
        _sas(pl.col("entry_date")).alias("EXE_SOI_DTD"),
        _sas(pl.col("exit_date")).alias("EXE_SOI_DTF"),
        *[
            pl.when((pl.col("fault") == "linkage") & (pl.col("ret_col") == i)).then(pl.lit("1")).otherwise(pl.lit("0")).alias(code)
            for i, code in enumerate(RETURN_CODES)
        ],
    )
    d = dx.filter(pl.col("position") == "DAS").select(
        pl.col("hospital_id").alias("ETA_NUM"), pl.col("rsa_num").alias("RSA_NUM"), pl.col("code").alias("ASS_DGN")
    )
    um = (
        dx.filter(pl.col("position").str.starts_with("UM_DP"))
        .with_columns(pl.when(pl.col("position") == "UM_DP").then(1).otherwise(2).alias("rank"))
        .sort("hospital_id", "rsa_num", "rank")
        .select(
            pl.col("hospital_id").alias("ETA_NUM"),
            pl.col("rsa_num").alias("RSA_NUM"),
            pl.col("code").alias("DGN_PAL"),
            pl.lit(None, pl.String).alias("DGN_REL"),
            pl.col("rank").cast(pl.String).alias("UM_ORD_NUM"),
        )
    )
    truth = stays.select(
        pl.lit(year, pl.Int16).alias("year"),
        "hospital_id",
        "rsa_num",
        "patient_key",
        "kind",
        "fault",
        "residence_zone",
        "true_zone",
        "age",
        "sex",
        "entry_date",
        "exit_date",
        pl.when(pl.col("kind") != "session").then(pl.col("length_of_stay")).alias("length_of_stay"),
        (pl.col("provenance") == EMERGENCY_PROVENANCE).fill_null(False).alias("via_emergency"),
        (pl.col("exit_mode") == DEATH_EXIT_MODE).alias("died"),
        "ghm",
        "principal_diagnosis",
        "related_diagnosis",
    )
    return {"B": b, "C": c, "D": d, "UM": um}, truth, counts


def _write_tables(tables: dict[str, pl.DataFrame], folder: Path, year: int, chunk: int, parts: bool, fmt: str) -> None:
    yy = f"{year % 100:02d}"
    for name, df in tables.items():
        if parts:
            target = folder / f"T_MCO{yy}{name}"
            target.mkdir(exist_ok=True)
            df.write_parquet(target / f"part-{chunk:03d}.parquet")
        elif fmt == "csv":
            df.write_csv(folder / f"T_MCO{yy}{name}.csv", separator=";")
        else:
            df.write_parquet(folder / f"T_MCO{yy}{name}.parquet")


def _residence(people: People, alive: np.ndarray, zone_codes: np.ndarray, year: int) -> pl.DataFrame:
    return pl.DataFrame(
        {"person_key": people.key[alive], "year": np.full(int(alive.sum()), year, dtype=np.int16), "zone_code": zone_codes[people.zone[alive]]}
    )


def _severity(people: People, alive: np.ndarray, year: int) -> pl.DataFrame:
    ill = alive & ((people.diabetes_type > 0) | (people.hf_stage > 0) | (people.copd_stage > 0))
    data = {
        "person_key": people.key[ill],
        "year": np.full(int(ill.sum()), year, dtype=np.int16),
        "diabetes_type": people.diabetes_type[ill],
        "hf_stage": people.hf_stage[ill],
        "copd_stage": people.copd_stage[ill],
    }
    for j, name in enumerate(COMPLICATIONS):
        data[f"complication_{name}"] = people.complications[ill, j]
    return pl.DataFrame(data)


def _persons(people: People) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "person_key": people.key,
            "sex": people.sex,
            "birth_year": people.birth_year.astype(np.int16),
            "death_date": people.death_date,
            "diabetes_type": people.diabetes_type,
            "diabetes_onset": people.diabetes_onset,
            "hf_onset": people.hf_onset,
            "copd_onset": people.copd_onset,
        }
    )
