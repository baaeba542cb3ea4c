"""``respop liste``: hospital mode's private lists, for the hospital's DIM (docs/hospital.md).

From the outputs of ``respop run`` in hospital mode (``[hospital]``: the hospital's own stays,
whatever its patients' residence), for each configured disease and each stratum of the lists'
year, the hospital's stays of the persons in that stratum: the hospital's FINESS and RSA numbers,
entry and exit dates, whether the stay qualifies for the disease, the stratum's French label and the
protocol its spec attaches. The DIM links the RSA numbers back to its patients in its own
information system: the patient key (``NIR_ANO_17`` / ``NOANON``) is never written to a list,
and respop never handles names.

The lists go to the private folder ``[hospital] lists_dir`` only (default ``<output.dir>/listes``):
``<lists_dir>/<year>/<disease>.csv`` and ``.parquet`` (French column names, :data:`COLUMNS`), the
folder replaced atomically, files readable by their owner only. Every call, refused or not,
appends one line to the access log ``<lists_dir>/journal_acces.jsonl`` (:data:`ACCESS_LOG`):
date and time, OS user, command, configuration, year, files written and their row counts, result;
never a patient row. Nothing of it reaches the store or a board (the store refuses a hospital
configuration: respop.store.publish).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from respop.case_finding.run import HOSPITAL_STAYS
from respop.config import Config
from respop.errors import ConfigError, InputError
from respop.fsutil import atomic_folder
from respop.spec.catalogue import Catalogue, run_catalogue
from respop.stages import stale_stages

ACCESS_LOG = "journal_acces.jsonl"
"""The access log of the lists, one JSON object a line (keys in French; no patient data)."""

COLUMNS = {
    "maladie": "the disease's French name (its algorithm's name)",
    "annee": "the lists' year (the index year of the strata)",
    "niveau": "the stratum's level, 1 the least severe (the spec lists them from the most severe)",
    "strate": "the stratum's identifier in the spec",
    "strate_libelle": "the stratum's French label",
    "protocole": "the care protocol the spec attaches to the stratum",
    "personne": "the person's number in this list (1, 2, …), assigned here: no link to any identifier",
    "finess": "the FINESS number the stay was sent under",
    "annee_pmsi": "the year of the PMSI files that hold the stay (an RSA number is unique per FINESS and year)",
    "numero_rsa": "the stay's RSA number in the hospital's files of that year",
    "date_entree": "entry date",
    "date_sortie": "exit date",
    "sejour_qualifiant": "oui: the stay meets the disease's case-finding algorithm; non: another stay of the person",
}
"""The columns of a list, in order (docs/hospital.md). Never the patient key."""

PATIENT_KEY = "patient_key"

NO_HOSPITAL = (
    "la configuration {path} n'a pas de section [hospital] : les listes ne sont écrites qu'en mode hôpital "
    "(docs/hospital.md) / the configuration {path} has no [hospital] section: lists are written in hospital "
    "mode only (docs/hospital.md)"
)


@dataclass
class HospitalLists:
    """What :func:`write_lists` wrote."""

    year: int
    folder: Path
    files: dict[str, int]
    """file (relative to ``lists_dir``) → rows."""
    counts: pl.DataFrame = field(repr=False)
    """maladie, niveau, strate_libelle, personnes, sejours (most severe first)."""
    log: Path


def require_hospital(config: Config, path: Path | str | None = None) -> None:
    """A :class:`ConfigError` (French and English) when the configuration has no ``[hospital]``."""
    if config.hospital is None:
        raise ConfigError(NO_HOSPITAL.format(path=path if path is not None else "CONFIG"))


def _check_outputs(config: Config, path: Path | str | None) -> None:
    """The hospital-mode outputs the lists are made from are there and belong to this
    configuration's build (respop.stages), else an InputError naming the command to run."""
    name = str(path) if path is not None else "CONFIG"
    out = config.output.dir
    missing = [f for f in (out / "cases" / HOSPITAL_STAYS, out / "strata" / "person_strata.parquet") if not f.is_file()]
    if missing:
        raise InputError(
            f"les sorties du mode hôpital manquent : lancer d'abord `respop run {name}` / the hospital-mode outputs "
            f"are not there: run `respop run {name}` first", missing[0],
        )
    problems = {s: r for s, r in stale_stages(config).items() if s in ("input", "cases", "strata")}
    if problems:
        reasons = "; ".join(f"{stage} {reason}" for stage, rs in problems.items() for reason in rs)
        raise InputError(
            f"les sorties ne correspondent pas à la configuration, relancer `respop run {name}` / the outputs do "
            f"not belong to this configuration's build ({reasons}): run `respop run {name}`", out,
        )


def list_year(config: Config, person_strata: pl.LazyFrame, year: int | None = None) -> int:
    """The lists' year: ``year``, else ``[hospital] year``, else the last index year."""
    years = sorted(person_strata.select(pl.col("year").unique()).collect()["year"].to_list())
    if not years:
        raise InputError("person_strata.parquet holds no person-year", config.output.dir / "strata")
    chosen = year or config.hospital.year or years[-1]
    if chosen not in years:
        raise ConfigError(f"year {chosen}: not an index year of the strata ({', '.join(map(str, years))})")
    return chosen


def _protocol(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def build_lists(catalogue: Catalogue, person_strata: pl.LazyFrame, stays: pl.LazyFrame, year: int) -> dict[str, pl.DataFrame]:
    """disease → its list (:data:`COLUMNS`): the stays of ``stays`` (the hospital's, with
    ``patient_key`` and ``qualifying``) of the persons of each stratum in ``year``.

    ``personne`` numbers the persons of a list in the order of the rows: the most severe stratum
    first, then by first entry date, FINESS and RSA number; it is not derived from the patient
    key. The patient key is dropped before the list is returned."""
    lists = {}
    for spec in catalogue.specs:
        levels = spec.strata.levels
        labels = pl.DataFrame(
            {
                "stratum": [lv.name for lv in levels],
                "niveau": [spec.strata.level_of(lv.name) for lv in levels],
                "strate_libelle": [lv.label for lv in levels],
                "protocole": [_protocol(lv.protocol) for lv in levels],
            },
            schema={"stratum": pl.String, "niveau": pl.Int8, "strate_libelle": pl.String, "protocole": pl.String},
        )
        people = (
            person_strata.filter((pl.col("disease") == spec.disease) & (pl.col("year") == year))
            .select(PATIENT_KEY, "stratum")
            .unique()
        )
        rows = (
            people.join(stays, on=PATIENT_KEY, how="inner")
            .collect()
            .join(labels, on="stratum", how="left")
        )
        first = (
            rows.group_by(PATIENT_KEY)
            .agg(pl.col("niveau").first(), pl.col("entry_date").min().alias("_first"),
                 pl.concat_str("hospital_id", "rsa_num", separator="/").min().alias("_stay"))
            .sort(pl.col("niveau"), "_first", "_stay", descending=[True, False, False], nulls_last=True)
            .with_row_index("personne", offset=1)
            .select(PATIENT_KEY, pl.col("personne").cast(pl.Int32))
        )
        listed = (
            rows.join(first, on=PATIENT_KEY, how="left")
            .with_columns(
                pl.lit(spec.algorithm.name).alias("maladie"),
                pl.lit(year, pl.Int16).alias("annee"),
                pl.col("stratum").alias("strate"),
                pl.col("hospital_id").alias("finess"),
                pl.col("source_year").alias("annee_pmsi"),
                pl.col("rsa_num").alias("numero_rsa"),
                pl.col("entry_date").alias("date_entree"),
                pl.col("exit_date").alias("date_sortie"),
                pl.when(pl.col("qualifying").list.contains(spec.disease)).then(pl.lit("oui")).otherwise(pl.lit("non"))
                .alias("sejour_qualifiant"),
            )
            .sort("personne", "date_entree", "finess", "numero_rsa")
            .select(list(COLUMNS))
        )
        lists[spec.disease] = listed
    return lists


def _counts(catalogue: Catalogue, lists: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Persons and stays per disease and stratum (every stratum, most severe first; zeros kept)."""
    frames = []
    for spec in catalogue.specs:
        levels = spec.strata.levels
        rows = lists[spec.disease].group_by("strate").agg(
            pl.col("personne").n_unique().cast(pl.Int64).alias("personnes"), pl.len().cast(pl.Int64).alias("sejours")
        )
        frame = pl.DataFrame(
            {"maladie": [spec.algorithm.name] * len(levels), "niveau": [spec.strata.level_of(lv.name) for lv in levels],
             "strate": [lv.name for lv in levels], "strate_libelle": [lv.label for lv in levels]},
            schema={"maladie": pl.String, "niveau": pl.Int8, "strate": pl.String, "strate_libelle": pl.String},
        )
        frames.append(frame.join(rows, on="strate", how="left").with_columns(pl.col("personnes", "sejours").fill_null(0)))
    return pl.concat(frames) if frames else pl.DataFrame()


def _first_line(exc: Exception) -> str:
    """A refusal's reason for the log: respop's own message (no patient row), else the error's type."""
    from respop.errors import RespopError

    if isinstance(exc, RespopError):
        return str(exc).strip().splitlines()[0][:300]
    return type(exc).__name__


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name known (a container): the numeric user id
        return f"uid {os.getuid()}"


def log_access(lists_dir: Path, entry: dict) -> Path:
    """Append one line to the access log (:data:`ACCESS_LOG`), created readable by its owner only."""
    lists_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = lists_dir / ACCESS_LOG
    record = {"date_heure": dt.datetime.now().astimezone().isoformat(timespec="seconds"), "utilisateur": _user(), **entry}
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def write_lists(config: Config, command: str, config_path: Path | str | None = None, year: int | None = None) -> HospitalLists:
    """Write the lists of the configuration's hospital (module docstring) and log the call.

    ``command``: the command line as the user typed it (logged). A configuration without
    ``[hospital]`` is refused (:func:`require_hospital`, nothing logged: there is no lists
    folder); a refusal after that (outputs missing or stale, unknown year) is logged, then raised."""
    require_hospital(config, config_path)
    lists_dir = config.hospital.lists_dir or config.output.dir / "listes"
    entry = {"commande": command, "configuration": str(config_path) if config_path is not None else None,
             "finess": config.hospital.finess}
    try:
        _check_outputs(config, config_path)
        catalogue = run_catalogue(config)
        person_strata = pl.scan_parquet(config.output.dir / "strata" / "person_strata.parquet")
        chosen = list_year(config, person_strata, year)
        stays = pl.scan_parquet(config.output.dir / "cases" / HOSPITAL_STAYS)
        lists = build_lists(catalogue, person_strata, stays, chosen)
    except Exception as exc:
        log_access(lists_dir, {**entry, "annee": year, "fichiers": {}, "resultat": f"refusé : {_first_line(exc)}"})
        raise
    folder = lists_dir / str(chosen)
    files: dict[str, int] = {}
    lists_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with atomic_folder(folder) as tmp:
        for disease, frame in lists.items():
            for suffix in ("csv", "parquet"):
                path = tmp / f"{disease}.{suffix}"
                if suffix == "csv":
                    frame.write_csv(path, separator=";", include_bom=True)
                else:
                    frame.write_parquet(path)
                os.chmod(path, 0o600)
                files[f"{chosen}/{disease}.{suffix}"] = frame.height
    log = log_access(lists_dir, {**entry, "annee": chosen, "fichiers": files, "resultat": "listes écrites"})
    return HospitalLists(year=chosen, folder=folder, files=files, counts=_counts(catalogue, lists), log=log)
