"""Benchmark of the PMSI input layer: ``read_pmsi(folder).report()`` and ``.write(out)``.

    .venv/bin/python benchmarks/pmsi_read.py                        # 100k, 1M and 5M stays, Parquet
    .venv/bin/python benchmarks/pmsi_read.py --sizes 100000 --format csv
    .venv/bin/python benchmarks/pmsi_read.py --ref HEAD                # respop as committed
    .venv/bin/python benchmarks/pmsi_read.py --format atih             # ATIH RSA/ANO files, 100k and 1M
    .venv/bin/python benchmarks/pmsi_read.py --format atih --sizes 19000000   # one national year

For each size, SNDS-shaped tables T_MCO22B/C/D/UM for N stays of one exit year are generated
(vectorised, seeded: the same N gives the same files) and cached under ``benchmarks/out/data/``.
Three steps then run, each in a fresh Python process so that its peak memory is its own:

- ``baseline``: the floor. One plain polars pass over the four files: every column is decoded
  once (the sum of the byte lengths of all columns) and ``n_unique`` of the stay key is taken.
- ``vfloor``: the validating floor (:func:`validating_floor`). One polars pass over the four files
  that does respop's own checks on every validated column (decode, cast, ranges, regular
  expressions, lengths, membership in the nomenclatures, required values, the row checks of C),
  counting the failures: no joins, no writes, no cleaning copies. Validation cannot be cheaper.
- ``input``: the input step of ``respop run`` as it stages the input (respop.pmsi.stage):
  ``read_pmsi(folder).write(tmp)``, with the seconds and the peak RSS of each phase (``validate``,
  ``filters``, ``canonical``: the staged tables, ``quarantine``, ``report``: the counts). The goal
  of issue 22: ≤ 2× ``vfloor``.
- ``report``: ``read_pmsi(folder).report()``: validation, canonical model, quality filters, counts.
- ``write``: ``read_pmsi(folder).write(tmp)``: staged Parquet, quarantines and report.json.

With ``--format atih`` the same N stays (the Parquet data set of N, its rows with a malformed FINESS
left out: no file could be named after them) are written as ATIH files by respop.synth.atih, one
``<FINESS>.2022.12.rsa`` and ``.ano`` per hospital, cached under ``benchmarks/out/data/atih-<N>/``;
sizes above :data:`CHUNK_STAYS` are generated in chunks of distinct hospitals (a national year:
19 million stays). The steps are then ``baseline`` (the floor: one plain polars pass that reads
every line of every file, its length and the distinct stay keys), ``parse`` (the ATIH parse alone:
lines → SNDS-shaped tables in a workspace, respop.pmsi.atih.parse_folder) and ``report``
(``read_pmsi(folder).report()``: the parse, then validation, canonical model, filters, counts);
``write`` on request. The table gives the seconds per 100,000 RSA beside the published figures of
pmeasyr (about 5 s) and pypmsi (0.7–3 s).

Seconds are wall-clock time of the step inside the child (imports and interpreter start-up
excluded), the best of ``--repeat`` runs; the CPU seconds of the child (every thread) are printed beside
them, steadier than the wall clock on a busy machine. Peak RSS is the child's high-water mark (VmHWM from
/proc/self/status, ``ru_maxrss`` elsewhere), interpreter and imports included. The ratio is the
step's seconds over the baseline's. The header names the respop measured (commit, ``+dirty``
when respop/ has uncommitted changes; ``--ref`` measures a commit exported apart, immune to
edits during the run) and warns when other processes load the CPUs. Nothing here is asserted:
see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
DATA = OUT / "data"

YEAR = 2022
SEED = 20220101
GENERATOR_VERSION = 1
"""Bump when the generator changes: cached data sets of another version are regenerated."""

DEFAULT_SIZES = (100_000, 1_000_000, 5_000_000)
ATIH_SIZES = (100_000, 1_000_000)
STEPS = ("baseline", "vfloor", "input", "report", "write")
ATIH_STEPS = ("baseline", "parse", "report", "write")
ATIH_DEFAULT_STEPS = ("baseline", "parse", "report")
CHUNK_STAYS = 5_000_000
"""Data sets above this many stays are generated in chunks of at most this many (each its own
hospitals: the third character of each FINESS is the chunk's number), written as Parquet parts."""
ATIH_SEED = 1
"""Seed of the ATIH writer's drawn zones (authorisations, radiotherapy, procedures)."""
REFERENCE = "pmeasyr (R, ATIH files): about 5 s to read 100,000 RSA records"
REFERENCE_SOURCE = "published figures of the reference material (pmeasyr)"
PUBLISHED_PER_100K = {"pmeasyr (R)": (5.0, 5.0), "pypmsi (Python)": (0.7, 3.0)}
"""Published seconds to read 100,000 RSA (issue 21; /work/shared/reference/published-figures.md)."""

# Shares of the generated rows that exercise the quarantine and the quality filters.
RATES = {
    "bad_finess": 0.001,  # B: ETA_NUM that is not a FINESS number (its C, D, UM rows follow)
    "bad_dp": 0.002,  # B: DGN_PAL absent from the CIM-10
    "duplicate_key": 0.0005,  # B and C: (ETA_NUM, RSA_NUM) of another stay
    "duplicate_stay": 0.001,  # a stay sent twice under two RSA numbers (duplicate_stays filter)
    "no_linkage": 0.002,  # no row in C
    "bad_date": 0.001,  # C: EXE_SOI_DTD or EXE_SOI_DTF unparseable
    "return_code": 0.02,  # C: one of the seven return codes is 1
    "fictitious_key": 0.001,  # C: NIR_ANO_17 = XXXXXXXXXXXXXXXXX
    "bad_das": 0.002,  # D: ASS_DGN absent from the CIM-10
    "bad_um_dp": 0.001,  # UM: DGN_PAL absent from the CIM-10
    "orphan_das": 0.0005,  # D: row whose stay is not in B
    "inter_hospital": 0.005,  # B: SEJ_TYP = B
    "error_ghm": 0.002,  # B: GHM 90Z00Z
    "sessions": 0.10,  # B: GHM of CMD 28 (séances)
    "unknown_zone": 0.003,  # B: BDI_COD 99999
    "abroad": 0.002,  # B: BDI_COD 99xxx
}
BAD_ICD = ("U999", "XX99", "I5O0", "A00.99", "R99X")
BAD_DATES = ("31Feb2022:00:00:00", "00Xyz2022:10:00:00", "2022-13-45", "N/A")
RETURN_CODES = ("NIR_RET", "NAI_RET", "SEX_RET", "SEJ_RET", "FHO_RET", "PMS_RET", "DAT_RET")
STAYS_PER_PATIENT = 1.6
DAS_PER_STAY = 5.0
UNITS_PER_STAY = 1.3


# --------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------


def generate(n: int, year: int = YEAR, seed: int = SEED) -> dict[str, "pl.DataFrame"]:
    """SNDS PMSI MCO tables B, C, D and UM (all columns as strings) for ``n`` stays of ``year``.

    Vectorised: numpy draws indices, polars gathers and formats strings; no Python loop per row.
    """
    import datetime as dt

    import numpy as np
    import polars as pl

    from respop.pmsi.nomenclatures import cim10
    from respop.pmsi.quality import legal_entity_duplicates

    rng = np.random.default_rng([seed, n])

    def share(rate: float, size: int = n) -> np.ndarray:
        return rng.random(size) < rate

    def pick(values: list[str] | pl.Series, idx: np.ndarray) -> pl.Series:
        return pl.Series(values, dtype=pl.String).gather(idx)

    def weighted(values: list[str], weights: list[float], size: int) -> pl.Series:
        p = np.asarray(weights, dtype=float)
        return pick(values, rng.choice(len(values), size=size, p=p / p.sum()))

    def put(s: pl.Series, mask: np.ndarray, values: tuple[str, ...] | str) -> pl.Series:
        """``s`` with the rows of ``mask`` replaced by ``values`` (drawn at random if several)."""
        k = int(mask.sum())
        if k == 0:
            return s
        vals = [values] if isinstance(values, str) else list(values)
        new = pick(vals, rng.integers(0, len(vals), k))
        return s.scatter(np.flatnonzero(mask), new)

    # --- reference lists: ICD-10 codes (Zipf-like frequencies), zones, hospitals, GHM --------
    icd = cim10()["code"].sort()
    icd_p = 1.0 / np.arange(1, icd.len() + 1) ** 1.1
    icd_p = icd_p[rng.permutation(icd.len())]
    icd_p /= icd_p.sum()

    def icd_codes(size: int) -> pl.Series:
        return icd.gather(rng.choice(icd.len(), size=size, p=icd_p))

    deps = [f"{d:02d}" for d in range(1, 96) if d != 20] + ["2A", "2B"]
    zones_per_dep = 58  # ~5,600 PMSI geographic codes
    zones = pl.Series([f"{d}{k:03d}" for d in deps for k in range(1, zones_per_dep + 1)])

    n_hosp = n // 5000 + 10
    hosp_dep = rng.integers(0, len(deps), n_hosp)
    # one FINESS per hospital (a loop over hospitals, not rows): département + 7 digits
    finess = [f"{deps[d]}{k:07d}" for d, k in zip(hosp_dep, rng.integers(0, 10**7, n_hosp), strict=True)]
    finess[0] = sorted(legal_entity_duplicates())[0]  # one AP-HP/AP-HM/HCL geographic FINESS
    finess = pl.Series(list(dict.fromkeys(finess)))  # unique
    n_hosp = finess.len()
    hosp_w = rng.lognormal(0.0, 1.0, n_hosp)
    hosp_w[0] = hosp_w.min() / 4  # the legal-entity duplicate: a small share
    hosp = rng.choice(n_hosp, size=n, p=hosp_w / hosp_w.sum())

    cmds = [f"{c:02d}" for c in range(1, 28)]
    ghm_catalog = pl.Series(
        [
            f"{c}{t}{r:02d}{lvl}"
            for c in cmds
            for t in "CKM"
            for r in range(2, 16)
            for lvl in ("1", "2", "3", "4", "J", "T")
        ]
    )
    ghm_p = rng.pareto(1.5, ghm_catalog.len()) + 1e-3

    # --- stays (B) ----------------------------------------------------------------------------
    n_pat = max(1, round(n / STAYS_PER_PATIENT))
    patient = np.concatenate([np.arange(n_pat), rng.integers(0, n_pat, n - n_pat)])
    rng.shuffle(patient)
    age = np.arange(101)  # two modes: the elderly, and births and young adults (maternity)
    age_w = 1.0 + 2.0 * (age < 1) + 2.5 * np.exp(-(((age - 72) / 18.0) ** 2)) + 0.6 * np.exp(-(((age - 30) / 6.0) ** 2))
    pat_age = rng.choice(101, size=n_pat, p=age_w / age_w.sum())
    pat_sex = rng.integers(1, 3, n_pat)
    alphabet = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", dtype=np.uint8)
    keys = alphabet[rng.integers(0, 36, (n_pat, 17))]
    pat_key = pl.Series(np.ascontiguousarray(keys).view("S17").ravel()).cast(pl.String)

    is_session = share(RATES["sessions"])
    los = np.where(
        rng.random(n) < 0.4, 0, np.minimum(np.ceil(rng.lognormal(1.2, 0.9, n)), 365)
    ).astype(np.int64)
    los[is_session] = 0
    exit_s = rng.integers(0, 365 * 86400, n)  # exit date and time within the year
    entry_s = exit_s - los * 86400 - rng.integers(0, 12 * 3600, n)
    entry_s = np.where(los == 0, np.minimum(entry_s + 11 * 3600, exit_s), entry_s)
    zone_idx = np.where(
        rng.random(n) < 0.8,
        hosp_dep[hosp] * zones_per_dep + rng.integers(0, zones_per_dep, n),
        rng.integers(0, zones.len(), n),
    )
    zone = zones.gather(zone_idx)
    zone = put(zone, share(RATES["unknown_zone"]), "99999")
    zone = put(zone, share(RATES["abroad"]), ("99134", "99109", "99350"))

    ghm = ghm_catalog.gather(rng.choice(ghm_catalog.len(), size=n, p=ghm_p / ghm_p.sum()))
    ghm = put(ghm, is_session, ("28Z04Z", "28Z07Z", "28Z11Z", "28Z17Z"))
    ghm = put(ghm, share(RATES["error_ghm"]), ("90Z00Z", "90Z01Z"))

    b = pl.DataFrame(
        {
            "ETA_NUM": finess.gather(hosp),
            "RSA_NUM": pl.Series(rng.permutation(n) + 1).cast(pl.String).str.zfill(10),
            "AGE_ANN": pl.Series(pat_age[patient]).cast(pl.String),
            "COD_SEX": pl.Series(pat_sex[patient]).cast(pl.String),
            "BDI_COD": zone,
            "BDI_DEP": zone.str.slice(0, 2),
            "DGN_PAL": put(icd_codes(n), share(RATES["bad_dp"]), BAD_ICD),
            "DGN_REL": icd_codes(n).scatter(np.flatnonzero(rng.random(n) < 0.8), None),
            "ENT_MOD": weighted(["8", "7", "6"], [0.85, 0.1, 0.05], n),
            "ENT_PRV": weighted(["5", "1", ""], [0.3, 0.1, 0.6], n),
            "SOR_MOD": weighted(["8", "9", "7"], [0.9, 0.02, 0.08], n),
            "SEJ_NBJ": pl.Series(los).cast(pl.String),
            "GRG_GHM": ghm,
            "SEJ_TYP": put(weighted(["", "A"], [0.9, 0.1], n), share(RATES["inter_hospital"]), "B"),
            "SOR_ANN": pl.repeat(str(year), n, eager=True),
        }
    )
    start = pl.lit(dt.datetime(year, 1, 1))
    dates = pl.DataFrame({"entry": entry_s, "exit": exit_s}).select(
        (start + pl.duration(seconds=pl.col("entry"))).alias("entry"),
        (start + pl.duration(seconds=pl.col("exit"))).alias("exit"),
    )
    b = b.with_columns(SOR_MOI=dates["exit"].dt.month().cast(pl.String).str.zfill(2))

    # --- linkage (C): one row per stay ----------------------------------------------------------
    c = pl.DataFrame(
        {
            "ETA_NUM": b["ETA_NUM"],
            "RSA_NUM": b["RSA_NUM"],
            "NIR_ANO_17": put(pat_key.gather(patient), share(RATES["fictitious_key"]), "XXXXXXXXXXXXXXXXX"),
            "EXE_SOI_DTD": dates["entry"].dt.strftime("%d%b%Y:%H:%M:%S"),
            "EXE_SOI_DTF": dates["exit"].dt.strftime("%d%b%Y:%H:%M:%S"),
        }
    )
    c = c.with_columns(
        put(c["EXE_SOI_DTD"], share(RATES["bad_date"] / 2), BAD_DATES),
        put(c["EXE_SOI_DTF"], share(RATES["bad_date"] / 2), BAD_DATES),
    )
    bad_code = np.where(share(RATES["return_code"]), rng.integers(0, len(RETURN_CODES), n), -1)
    c = c.with_columns(
        pl.Series(code, np.where(bad_code == i, "1", "0")) for i, code in enumerate(RETURN_CODES)
    )

    # --- the same stay sent twice (new RSA), duplicated keys, bad FINESS -------------------------
    dup = np.flatnonzero(share(RATES["duplicate_stay"]))
    new_rsa = pl.Series(np.arange(n + 1, n + 1 + len(dup))).cast(pl.String).str.zfill(10)
    b = pl.concat([b, b[dup].with_columns(RSA_NUM=new_rsa)])
    c = pl.concat([c, c[dup].with_columns(RSA_NUM=new_rsa)])
    rows = b.height

    same_key = np.flatnonzero(share(RATES["duplicate_key"], rows))
    other = rng.integers(0, rows, len(same_key))
    eta, rsa = b["ETA_NUM"].clone(), b["RSA_NUM"].clone()
    eta = eta.scatter(same_key, eta.gather(other))
    rsa = rsa.scatter(same_key, rsa.gather(other))
    bad_eta = share(RATES["bad_finess"], rows)
    eta = put(eta, bad_eta, ("01000002X", "1234", "ABCDEFGHI", "0100000241"))
    b = b.with_columns(ETA_NUM=eta, RSA_NUM=rsa)
    c = c.with_columns(ETA_NUM=eta, RSA_NUM=rsa)
    c = c.filter(pl.Series(~share(RATES["no_linkage"], rows)))

    # --- associated diagnoses (D) ---------------------------------------------------------------
    n_das = rng.poisson(DAS_PER_STAY, rows)
    d_row = np.repeat(np.arange(rows), n_das)
    d = pl.DataFrame(
        {
            "ETA_NUM": eta.gather(d_row),
            "RSA_NUM": rsa.gather(d_row),
            "ASS_DGN": put(icd_codes(len(d_row)), share(RATES["bad_das"], len(d_row)), BAD_ICD),
        }
    )
    orphans = np.flatnonzero(share(RATES["orphan_das"], len(d_row)))
    d = d.with_columns(
        RSA_NUM=d["RSA_NUM"].scatter(
            orphans, pl.Series(rng.integers(2 * n + 10, 9 * 10**9, len(orphans))).cast(pl.String).str.zfill(10)
        )
    )

    # --- medical units (UM): the first unit's DP is the stay's DP ---------------------------------
    n_units = 1 + rng.binomial(3, (UNITS_PER_STAY - 1) / 3, rows)
    u_row = np.repeat(np.arange(rows), n_units)
    first = np.repeat(np.cumsum(n_units) - n_units, n_units)
    rank = np.arange(len(u_row)) - first + 1
    um_dp = icd_codes(len(u_row))
    um_dp = um_dp.scatter(np.flatnonzero(rank == 1), b["DGN_PAL"].gather(u_row[rank == 1]))
    um = pl.DataFrame(
        {
            "ETA_NUM": eta.gather(u_row),
            "RSA_NUM": rsa.gather(u_row),
            "DGN_PAL": put(um_dp, share(RATES["bad_um_dp"], len(u_row)), BAD_ICD),
            "DGN_REL": icd_codes(len(u_row)).scatter(np.flatnonzero(rng.random(len(u_row)) < 0.85), None),
            "UM_ORD_NUM": pl.Series(rank).cast(pl.String),
        }
    )
    return {"B": b, "C": c, "D": d, "UM": um}


def _chunk_stays(n: int) -> int | None:
    return CHUNK_STAYS if n > CHUNK_STAYS else None


def dataset(n: int, fmt: str, log=print) -> Path:  # noqa: ANN001
    """Folder of T_MCO22B/C/D/UM for ``n`` stays in ``fmt`` (or of ATIH files for ``atih``),
    generated once and cached."""
    if fmt == "atih":
        return atih_dataset(n, log)
    folder = DATA / f"{fmt}-{n}"
    stamp = folder / "dataset.json"
    if stamp.is_file():
        meta = json.loads(stamp.read_text())
        if (meta.get("generator_version") == GENERATOR_VERSION and meta.get("seed") == SEED
                and meta.get("chunk_stays") == _chunk_stays(n)):
            return folder
    if fmt == "csv" and _chunk_stays(n):
        raise SystemExit(f"CSV data sets are of at most {CHUNK_STAYS:,} stays (larger ones are Parquet parts)")
    log(f"generating {n:,} stays ({fmt}) in {folder.relative_to(ROOT)} …")
    DATA.mkdir(parents=True, exist_ok=True)
    # in a child process: the generator's memory is not held by this one
    t0 = time.perf_counter()
    result = _child(["generate", str(n), fmt, str(folder)])
    log(f"  generated in {time.perf_counter() - t0:.1f} s: {result['rows']}")
    return folder


def _chunk(frames: dict, k: int) -> dict:
    """The tables of chunk ``k`` made its own hospitals: the third character of every FINESS is
    the chunk's number (chunk 0's legal-entity FINESS kept, for its filter)."""
    import polars as pl

    from respop.pmsi.quality import legal_entity_duplicates

    keep = sorted(legal_entity_duplicates())[:1] if k == 0 else []
    eta = pl.col("ETA_NUM")
    mine = pl.when((eta.str.len_chars() == 9) & ~eta.is_in(keep)).then(
        pl.concat_str(eta.str.slice(0, 2), pl.lit(str(k % 10)), eta.str.slice(3))
    ).otherwise(eta)
    return {t: df.with_columns(mine.alias("ETA_NUM")) for t, df in frames.items()}


def _write_dataset(n: int, fmt: str, folder: Path) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    yy = f"{YEAR % 100:02d}"
    chunk = _chunk_stays(n)
    try:
        if chunk is None:
            frames = generate(n)
            for table, df in frames.items():
                path = tmp / f"T_MCO{yy}{table}.{fmt}"
                if fmt == "parquet":
                    df.write_parquet(path)
                else:
                    df.write_csv(path, separator=";")
            rows = {t: df.height for t, df in frames.items()}
        else:  # chunks of distinct hospitals, each table a folder of Parquet parts
            count = -(-n // chunk)
            rows = {}
            for k in range(count):
                size = n // count + (1 if k < n % count else 0)
                frames = _chunk(generate(size, seed=SEED + k), k)
                for table, df in frames.items():
                    (tmp / f"T_MCO{yy}{table}").mkdir(exist_ok=True)
                    df.write_parquet(tmp / f"T_MCO{yy}{table}" / f"part-{k:03d}.parquet")
                    rows[table] = rows.get(table, 0) + df.height
                del frames
        meta = {"stays": n, "format": fmt, "year": YEAR, "seed": SEED, "generator_version": GENERATOR_VERSION,
                "chunk_stays": chunk, "rows": rows, "rates": RATES}
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=2))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"rows": rows}


ATIH_WRITER_VERSION = 1
"""Bump when respop.synth.atih changes what it writes: cached ATIH data sets are then rewritten."""


def atih_dataset(n: int, log=print) -> Path:  # noqa: ANN001
    """Folder of ATIH RSA and ANO files of the Parquet data set of ``n`` stays, written once and cached."""
    folder = DATA / f"atih-{n}"
    stamp = folder / "dataset.json"
    if stamp.is_file():
        meta = json.loads(stamp.read_text())
        if (meta.get("generator_version") == GENERATOR_VERSION and meta.get("seed") == SEED
                and meta.get("chunk_stays") == _chunk_stays(n) and meta.get("atih_writer_version") == ATIH_WRITER_VERSION):
            return folder
    source = dataset(n, "parquet", log)
    log(f"writing {n:,} stays as ATIH files in {folder.relative_to(ROOT)} …")
    t0 = time.perf_counter()
    result = _child(["write-atih", str(source), str(folder)])
    log(f"  written in {time.perf_counter() - t0:.1f} s: {result['rows']}")
    return folder


FINESS = r"^(?:[0-9]{9}|2[AB][0-9]{7})$"


def _write_atih_dataset(source: Path, folder: Path) -> dict:
    """The SNDS data set ``source`` as ATIH files (rows whose ETA_NUM is no FINESS left out: no file
    could be named after them), through respop.synth.atih.write_folder."""
    import polars as pl

    from respop.synth.atih import write_folder

    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    snds = Path(tempfile.mkdtemp(prefix=".snds-", dir=folder.parent))
    try:
        dropped = {}
        for path in sorted(source.glob("T_MCO*")):
            lf = pl.scan_parquet(path / "*.parquet" if path.is_dir() else path)
            valid = pl.col("ETA_NUM").str.contains(FINESS)
            dropped[path.stem] = lf.filter(~valid).select(pl.len()).collect().item()
            lf.filter(valid).sink_parquet(snds / f"{path.stem}.parquet")
        written = write_folder(snds, tmp, seed=ATIH_SEED)[YEAR]
        rows = {"rsa": written.rsa_lines, "ano": written.ano_lines}
        meta = {
            "stays": json.loads((source / "dataset.json").read_text())["stays"], "format": "atih", "year": YEAR,
            "seed": SEED, "generator_version": GENERATOR_VERSION, "chunk_stays": _chunk_stays(
                json.loads((source / "dataset.json").read_text())["stays"]),
            "atih_writer_version": ATIH_WRITER_VERSION, "atih_seed": ATIH_SEED, "rows": rows,
            "files": len(written.files), "snds_rows_without_finess": dropped,
            "rsa_without_ano": written.rsa_without_ano, "ano_without_rsa": written.ano_without_rsa,
            "zones_without_stay": written.zones_without_stay, "truncated": written.truncated,
        }
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=2))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(snds, ignore_errors=True)
    return {"rows": rows}


# --------------------------------------------------------------------------------------------
# Steps (run in a child process)
# --------------------------------------------------------------------------------------------


def _baseline(folder: Path) -> dict:
    """The floor: decode every column of the four files once, and count distinct stay keys."""
    import polars as pl

    out = {}
    for path in sorted(p for p in folder.iterdir() if p.name.startswith("T_MCO")):
        if path.suffix == ".csv":
            lf = pl.scan_csv(path, separator=";", infer_schema=False)
        else:
            lf = pl.scan_parquet(path)
        row = lf.select(
            pl.len().alias("rows"),
            pl.struct("ETA_NUM", "RSA_NUM").n_unique().alias("keys"),
            pl.sum_horizontal(pl.all().cast(pl.String).str.len_bytes().sum()).alias("bytes"),
        ).collect(engine="streaming").row(0, named=True)
        out[path.stem] = row
    return {"rows": sum(r["rows"] for r in out.values())}



def validating_floor(files: dict) -> dict:
    """The validating floor: one polars pass (``engine="streaming"``, all files collected together)
    that does respop's own checks on every column it validates, on the values as they are read.

    ``files``: ``respop.pmsi.files.discover``'s answer (exit year → table → file). For each file, for
    each column of ``USED_COLUMNS`` present, by its rule (``respop.pmsi.schema.table_schema``):
    decoding (every value of the column is read), the cast to its type (integers ``strict=False``,
    dates parsed with the format ``respop.pmsi.validate.detect_date_format`` finds, as respop does),
    the range checks (minimum, maximum; years 1990-2100, months 1-12), the regular expressions
    (FINESS, RSA index, GHM, return codes), the lengths, the membership tests (CIM-10 for the
    diagnoses, the nomenclatures and enums of the coded columns), the missing required values, and
    the row checks of T_MCOaaC (entry after exit, the date window, the exit year); each check is
    counted (a sum per check: nothing is kept). Not included: the joins (foreign keys to B,
    duplicate keys, the filters, the canonical tables), any write, and the cleaning copies
    (trimming, padding, upper-casing): a file whose values need none of them is checked exactly
    by this pass, so no validation of it can be cheaper.
    """
    import datetime as dt

    import polars as pl

    from respop.config import QualityConfig
    from respop.pmsi.nomenclatures import codes
    from respop.pmsi.schema import table_schema
    from respop.pmsi.validate import detect_date_format

    integers = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)
    frames, labels = [], []
    for year, tables in sorted(files.items(), key=lambda kv: kv[0] or 0):
        for table, tf in tables.items():
            if tf.format == "csv":
                lf = pl.scan_csv(tf.path, separator=";", infer_schema=False)
            else:
                lf = pl.scan_parquet(tf.path / "*.parquet" if tf.path.is_dir() else tf.path)
            schema = lf.collect_schema()
            checks: list[pl.Expr] = []
            typed: dict[str, pl.Expr] = {}
            for rule in table_schema(table).rules:
                if rule.name not in schema:
                    continue
                dtype, raw = schema[rule.name], pl.col(rule.name)
                s = raw if dtype == pl.String else raw.cast(pl.String)
                fail: list[pl.Expr] = []
                if rule.kind in ("integer", "year", "month"):
                    v = raw.cast(pl.Int64) if dtype in integers else s.cast(pl.Int64, strict=False)
                    fail.append(raw.is_not_null() & v.is_null())
                    lo, hi = {"year": (1990, 2100), "month": (1, 12)}.get(rule.kind, (rule.minimum, rule.maximum))
                    if lo is not None:
                        fail.append(v < lo)
                    if hi is not None:
                        fail.append(v > hi)
                elif rule.kind == "date":
                    if dtype == pl.String:
                        fmt = detect_date_format(lf, rule.name) or "%Y-%m-%d"
                        v = s.str.to_datetime(fmt, strict=False).dt.date() if ":" in fmt else s.str.to_date(fmt, strict=False)
                    else:
                        v = raw.cast(pl.Date)
                    typed[rule.name] = v  # parsed once (a column of its own), then checked
                    v = pl.col(f"__date_{rule.name}")
                    fail.append(raw.is_not_null() & v.is_null())
                elif rule.kind == "icd10":
                    fail.append(s.is_not_null() & ~s.is_in(sorted(codes("MS_CIM_V"))))
                else:  # finess, rsa, string, return codes
                    if rule.pattern is not None:
                        fail.append(~s.str.contains(rule.pattern))
                    if rule.max_length is not None:
                        fail.append(s.str.len_chars() > rule.max_length)
                    if rule.min_length is not None:
                        fail.append(s.str.len_chars() < rule.min_length)
                    allowed = set(rule.enum or ())
                    if rule.nomenclature is not None:
                        allowed |= set(codes(rule.nomenclature))
                    if allowed:
                        fail.append(~s.is_in(sorted(allowed | set(rule.extra_codes))))
                if rule.required_value:
                    fail.append(raw.is_null())
                checks += [f.fill_null(False).sum().alias(f"{rule.name}_{i}") for i, f in enumerate(fail)]
            if table == "C" and {"EXE_SOI_DTD", "EXE_SOI_DTF"} <= typed.keys():
                entry, exit_ = pl.col("__date_EXE_SOI_DTD"), pl.col("__date_EXE_SOI_DTF")
                low, high = QualityConfig().min_date, dt.date(year or 2099, 12, 31)
                checks += [
                    f.fill_null(False).sum().alias(f"row_{i}")
                    for i, f in enumerate([entry > exit_, entry < low, exit_ < low, entry > high, exit_ > high,
                                           exit_.dt.year() != (year or 2099)])
                ]
            frames.append(lf.with_columns(v.alias(f"__date_{c}") for c, v in typed.items()).select(pl.len().alias("_rows"), *checks))
            labels.append(tf.label)
    results = pl.collect_all(frames, engine="streaming")
    counts = {label: df.row(0, named=True) for label, df in zip(labels, results, strict=True)}
    return {"rows": sum(c["_rows"] for c in counts.values()),
            "failures": sum(v for c in counts.values() for k, v in c.items() if k != "_rows")}

def _vfloor(folder: Path) -> dict:
    """The validating floor (:func:`validating_floor`) of the four files of ``folder``."""
    from respop.pmsi.files import discover

    return validating_floor(discover(folder))


def _reset_peak() -> None:
    """Start a new high-water mark of this process's resident memory (Linux; else nothing)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _input(folder: Path) -> dict:
    """The input step of ``respop run`` when it stages the input (respop.pmsi.stage.build):
    ``read_pmsi(folder).write(tmp)``, timed by phase as respop.pmsi.stage does: ``validate``
    (every file typed and checked), ``filters`` (the quality filters), ``canonical`` (the staged
    stays, séances, diagnoses and excluded stays written), ``quarantine``, ``report`` (the counts);
    the seconds and the peak RSS of each phase."""
    from respop.pmsi import read_pmsi
    from respop.pmsi.reader import FILTERS_STEP

    phases = {"filters": lambda label: label == FILTERS_STEP,
              "canonical": lambda label: label.startswith("writing staged/"),
              "quarantine": lambda label: label.startswith("writing quarantine/"),
              "report": lambda label: label.startswith("counting ")}
    clock: list[tuple[str, float]] = [("validate", time.perf_counter())]
    peaks: dict[str, float] = {}

    def note(label: str) -> None:
        for phase, starts in phases.items():
            if starts(label) and phase not in dict(clock):
                peaks[clock[-1][0]] = _peak_rss_mb()
                _reset_peak()
                clock.append((phase, time.perf_counter()))

    target = Path(tempfile.mkdtemp(prefix="input-", dir=OUT))
    _reset_peak()
    try:
        data = read_pmsi(folder)
        try:
            summary = _summary(data.write(target / "pmsi", note))
        finally:
            data.close()
        end = time.perf_counter()
        peaks[clock[-1][0]] = _peak_rss_mb()
        summary["output_mb"] = sum(p.stat().st_size for p in target.rglob("*") if p.is_file()) / 1e6
    finally:
        shutil.rmtree(target, ignore_errors=True)
    times = [t for _, t in clock] + [end]
    summary["parts"] = {phase: round(b - a, 2) for (phase, _), a, b in zip(clock, times, times[1:])}
    summary["part_peak_mb"] = {k: round(v) for k, v in peaks.items()}
    return summary


def _atih_files(folder: Path, kind: str) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix == f".{kind}")


def _baseline_atih(folder: Path) -> dict:
    """The floor of the ATIH files: one plain polars pass that reads every line of every file (as
    the reader does: a one-column CSV with a separator that never occurs), sums the line lengths
    and counts the distinct stay keys (FINESS and CLE_RSA)."""
    import polars as pl

    from respop.pmsi.layouts import layout

    out = {}
    for kind, table in (("rsa", "rsa"), ("ano", "rsa_ano")):
        lay = layout(table, YEAR)
        finess, key = lay.field("NOFINESS"), lay.field("CLE_RSA")
        lines = pl.concat([
            pl.scan_csv(p, has_header=False, separator="\x00", quote_char=None, schema={"line": pl.String})
            for p in _atih_files(folder, kind)
        ])
        line = pl.col("line")
        out[kind] = lines.select(
            pl.len().alias("rows"),
            line.str.len_bytes().sum().alias("bytes"),
            pl.concat_str(line.str.slice(finess.start, finess.length), line.str.slice(key.start, key.length))
            .n_unique().alias("keys"),
        ).collect(engine="streaming").row(0, named=True)
    return {"rows": sum(r["rows"] for r in out.values())}


def _parse(folder: Path) -> dict:
    """The ATIH parse alone: every RSA and ANO line into the SNDS-shaped tables (Parquet, in a
    workspace), as read_pmsi does before validating them."""
    import polars as pl

    from respop.pmsi.atih import parse_folder

    workspace = Path(tempfile.mkdtemp(prefix="parse-", dir=OUT))
    try:
        parsed = parse_folder(folder, workspace)
        tables = {
            f"{t}{y}": pl.scan_parquet(path).select(pl.len()).collect().item()
            for y, year in parsed.years.items() for t, path in year.tables.items()
        }
        return {"rows": sum(c.lines_read for c in parsed.counts), "tables": tables,
                "lines_quarantined": sum(c.lines_quarantined for c in parsed.counts)}
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


def _report(folder: Path) -> dict:
    from respop.pmsi import read_pmsi

    data = read_pmsi(folder)
    try:
        return _summary(data.report())
    finally:
        data.close()


def _write(folder: Path) -> dict:
    from respop.pmsi import read_pmsi

    target = Path(tempfile.mkdtemp(prefix="write-", dir=OUT))
    try:
        data = read_pmsi(folder)
        try:
            summary = _summary(data.write(target / "pmsi"))
        finally:
            data.close()
        summary["output_mb"] = sum(p.stat().st_size for p in target.rglob("*") if p.is_file()) / 1e6
        return summary
    finally:
        shutil.rmtree(target, ignore_errors=True)


def _summary(report) -> dict:  # noqa: ANN001
    return {
        "rows": sum(t.rows_read for t in report.tables),
        "quarantined": {t.label: t.rows_quarantined for t in report.tables},
        "stays_loaded": report.stays_loaded,
        "stays_kept": report.stays_kept,
        "sessions_kept": report.sessions_kept,
        "excluded": {f.name: f.excluded for f in report.filters},
        "balanced": report.stays_balanced and all(t.balanced for t in report.tables),
    }


def _peak_rss_mb() -> float:
    """High-water mark of this process's resident memory, in MB (10^6 bytes)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1e6 if sys.platform == "darwin" else rss * 1024 / 1e6


def _child_main(args: list[str]) -> None:
    step = args[0]
    if step == "generate":
        result = _write_dataset(int(args[1]), args[2], Path(args[3]))
        print(json.dumps(result))
        return
    if step == "write-atih":
        print(json.dumps(_write_atih_dataset(Path(args[1]), Path(args[2]))))
        return
    folder = Path(args[1])
    atih = json.loads((folder / "dataset.json").read_text()).get("format") == "atih"
    import polars  # noqa: F401 - imports are not part of the measured time

    if step != "baseline" or atih:
        import respop.config  # noqa: F401
        import respop.pmsi  # noqa: F401
        import respop.pmsi.atih  # noqa: F401
    rss_before = _peak_rss_mb()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    baseline = _baseline_atih if atih else _baseline
    result = {"baseline": baseline, "vfloor": _vfloor, "input": _input, "parse": _parse, "report": _report,
              "write": _write}[step](folder)
    result["seconds"] = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_seconds"] = cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime
    result["peak_rss_mb"] = max([_peak_rss_mb(), *result.get("part_peak_mb", {}).values()])  # input resets it per part
    result["import_rss_mb"] = rss_before
    result["respop"] = str(Path(sys.modules["respop"].__file__).resolve().parent) if "respop" in sys.modules else None
    print(json.dumps(result))


_SOURCE: Path | None = None
"""With ``--ref``: the exported respop the children import instead of the working tree."""


def _child(args: list[str]) -> dict:
    env = dict(os.environ)
    if _SOURCE is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_SOURCE), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"child {' '.join(args)} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _export(ref: str) -> tuple[str, Path]:
    """Export respop/ as of the git revision ``ref`` to benchmarks/out/src/<commit>/ (once)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", f"{ref}^{{commit}}"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(f"--ref {ref}: not a git revision of {ROOT} ({exc})") from None
    dest = OUT / "src" / commit
    if not (dest / "respop" / "__init__.py").is_file():
        tmp = Path(tempfile.mkdtemp(prefix=f".{commit}.", dir=OUT))
        archive = subprocess.run(["git", "archive", "--format=tar", commit, "respop"], cwd=ROOT,
                                 capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            try:
                tar.extractall(tmp, filter="data")
            except TypeError:  # Python < 3.11.4: no extraction filters (our own archive anyway)
                tar.extractall(tmp)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
    return commit, dest


def _code_version() -> str:
    """The commit measured, marked ``+dirty`` when respop/ has uncommitted changes."""
    spec = importlib.util.find_spec("respop")
    package = Path(spec.origin).resolve().parent if spec and spec.origin else None
    if package != ROOT / "respop":
        return f"from {package}"  # e.g. PYTHONPATH pointing at another copy
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "respop"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "(no git)"
    return commit + ("+dirty" if dirty else "")


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s.replace("_", "")) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes must be integers separated by commas, got {text!r}") from None
    if not sizes or any(s < 1000 for s in sizes):
        raise argparse.ArgumentTypeError("sizes must be at least 1000 stays")
    return sizes


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        _child_main(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=_sizes, default=None,
                        help="numbers of stays, comma-separated (default 100000,1000000,5000000; atih: 100000,1000000)")
    parser.add_argument("--format", choices=("parquet", "csv", "atih"), default="parquet")
    parser.add_argument("--steps", default=None,
                        help=f"steps to run, comma-separated (default {','.join(STEPS)}; atih: {','.join(ATIH_DEFAULT_STEPS)}, "
                        "parse also possible; the baseline always runs)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per step; the fastest is kept (default 1)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--ref", help="measure respop as committed at this git revision (e.g. HEAD), exported "
                        "to benchmarks/out/src/, instead of the working tree")
    opts = parser.parse_args(argv)
    atih = opts.format == "atih"
    known = ATIH_STEPS if atih else STEPS
    if opts.sizes is None:
        opts.sizes = list(ATIH_SIZES if atih else DEFAULT_SIZES)
    asked = [s.strip() for s in (opts.steps or ",".join(ATIH_DEFAULT_STEPS if atih else STEPS)).split(",") if s.strip()]
    unknown = [s for s in asked if s not in known]
    if unknown:
        parser.error(f"unknown step(s) {', '.join(unknown)}; choose among {', '.join(known)}")
    steps = ["baseline", *[s for s in known[1:] if s in asked]]
    global _SOURCE
    if opts.ref:
        commit, _SOURCE = _export(opts.ref)
        code = f"{commit} (exported by --ref {opts.ref})"
    else:
        code = _code_version()

    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.width = max(console.width, 120)  # the table is never folded, even in a pipe
    import polars as pl

    console.print(
        f"respop {code}, polars {pl.__version__}, {os.cpu_count()} CPU(s), format {opts.format}, exit year {YEAR}"
    )
    load_start = _load()
    if load_start is not None and load_start > 0.5:
        console.print(f"[yellow]load average {load_start:.1f} before the start: other processes share the CPUs[/]")
    results = []
    for n in opts.sizes:
        folder = dataset(n, opts.format, log=console.print)
        meta = json.loads((folder / "dataset.json").read_text())
        size_mb = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.name != "dataset.json") / 1e6
        rows = sum(meta["rows"].values())
        for step in steps:
            runs = []
            for _ in range(opts.repeat):
                run = _child([step, str(folder)])
                if _SOURCE is not None and run.get("respop") and not run["respop"].startswith(str(_SOURCE)):
                    raise SystemExit(f"the child imported respop from {run['respop']}, not from {_SOURCE}")
                console.print(f"  {n:>10,} stays  {step:<8} {run['seconds']:8.2f} s  {run['peak_rss_mb']:8,.0f} MB  "
                              f"(CPU {run['cpu_seconds']:.1f} s)")
                runs.append(run)
            best = min(runs, key=lambda r: r["seconds"])
            best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
            results.append({**best, "stays": n, "rows": rows, "step_rows": best.get("rows"), "file_mb": size_mb, "step": step,
                            "table_rows": meta["rows"]})

    table = Table(title=f"PMSI input layer ({opts.format}, best of {opts.repeat})")
    rows_label = "lines RSA+ANO" if atih else "rows B+C+D+UM"
    for col in ("stays", rows_label, "files MB", "step", "seconds", "peak RSS MB", "× baseline", "× vfloor", "stays/s",
                "s/100k"):
        table.add_column(col, justify="left" if col == "step" else "right")
    for r in results:
        base = next(b for b in results if b["stays"] == r["stays"] and b["step"] == "baseline")
        vfloor = next((b for b in results if b["stays"] == r["stays"] and b["step"] == "vfloor"), None)
        table.add_row(
            f"{r['stays']:,}", f"{r['rows']:,}", f"{r['file_mb']:,.0f}", r["step"], f"{r['seconds']:.2f}",
            f"{r['peak_rss_mb']:,.0f}", f"{r['seconds'] / base['seconds']:.1f}",
            f"{r['seconds'] / vfloor['seconds']:.1f}" if vfloor else "", f"{r['stays'] / r['seconds']:,.0f}",
            f"{r['seconds'] / r['stays'] * 100_000:.2f}",
        )
    console.print(table)
    for r in results:
        if r["step"] == "input":
            parts = ", ".join(f"{k} {v:.2f} s" for k, v in r["parts"].items())
            peaks = ", ".join(f"{k} {v:,} MB" for k, v in r["part_peak_mb"].items())
            console.print(f"{r['stays']:>10,} stays, input: {parts}; peak RSS per part: {peaks}")
    idle = [r["import_rss_mb"] for r in results]
    console.print(
        f"Peak RSS includes the interpreter and imports ({min(idle):,.0f}–{max(idle):,.0f} MB before the step). "
        "Seconds exclude start-up and imports."
    )
    for r in results:
        if r["step"] == "report":
            q = sum(r["quarantined"].values())
            ok = "balanced" if r["balanced"] else "NOT BALANCED"
            console.print(
                f"{r['stays']:>10,} stays: {r['stays_loaded']:,} loaded, {r['stays_kept']:,} kept, "
                f"{r['sessions_kept']:,} séances, {q:,} rows quarantined ({ok})"
            )
    if atih:
        published = "; ".join(
            f"{name} {lo:g} s" if lo == hi else f"{name} {lo:g}–{hi:g} s" for name, (lo, hi) in PUBLISHED_PER_100K.items()
        )
        console.print(f"Published seconds per 100,000 RSA: {published} (goal: at least 10× faster than pmeasyr).")
        pmeasyr = PUBLISHED_PER_100K["pmeasyr (R)"][0]
        for r in results:
            if r["step"] in ("parse", "report"):
                per = r["seconds"] / r["stays"] * 100_000
                console.print(f"{r['stays']:>10,} stays, {r['step']:<6}: {per:.2f} s per 100,000 RSA, "
                              f"{pmeasyr / per:.1f}× faster than pmeasyr's published figure")
    else:
        console.print(f"Reference ({REFERENCE_SOURCE}): {REFERENCE}.")
    load_end = _load()
    if load_end is not None:
        console.print(f"Load average (1 min) at the start {load_start:.1f}, at the end {load_end:.1f}.")
    if opts.json:
        opts.json.parent.mkdir(parents=True, exist_ok=True)
        opts.json.write_text(json.dumps(
            {"code": code, "load_average": [load_start, load_end], "format": opts.format, "polars": pl.__version__, "cpus": os.cpu_count(), "results": results},
            indent=2,
        ))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
