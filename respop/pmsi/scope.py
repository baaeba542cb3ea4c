"""Hospital mode's scope: the PMSI of one hospital's FINESS numbers (docs/hospital.md).

A hospital runs respop on its own files; a national user may point it at a folder holding every
hospital. Either way the run keeps the kept stays (and their diagnoses) whose FINESS
(``hospital_id``) is one of the hospital's, whatever the patients' residence, and counts what it
leaves out, so that a run on a national folder behaves as on the hospital's own files. The quality
filters have run before: each of them looks at one stay, or at stays of one hospital (duplicates),
so filtering first or last keeps the same stays of the hospital.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import polars as pl

from respop.config import HospitalConfig
from respop.errors import InputError
from respop.pmsi.reader import PmsiData


@dataclass
class HospitalData(PmsiData):
    """:class:`PmsiData` whose canonical ``stays`` and ``diagnoses`` are the hospital's only."""

    finess: tuple[str, ...] = ()
    scope: dict = field(default_factory=dict)
    """What the scope kept and left out (counts only): :func:`restrict_to_hospital`."""


def restrict_to_hospital(data: PmsiData, finess: Sequence[str]) -> HospitalData:
    """The canonical data (``data.canonical()``) restricted to the stays of ``finess``: the two
    Parquet files of the hospital's kept stays and diagnoses written to the private workspace.

    ``scope`` counts the kept stays per FINESS of the hospital and the kept stays of other FINESS
    left out (and how many FINESS they came from). No stay of the hospital is an InputError naming
    the FINESS and the number of FINESS found (never a patient row)."""
    if isinstance(data, HospitalData):
        if data.finess != tuple(finess):
            raise ValueError(f"the data are already restricted to {data.finess}")
        return data
    data = data.canonical()
    wanted = list(finess)
    per_finess = (
        data.stays.group_by("hospital_id").agg(pl.len().alias("stays")).collect(engine="streaming")
    )
    mine = per_finess.filter(pl.col("hospital_id").is_in(wanted))
    others = per_finess.filter(~pl.col("hospital_id").is_in(wanted) | pl.col("hospital_id").is_null())
    kept = {f: 0 for f in wanted} | {r["hospital_id"]: int(r["stays"]) for r in mine.iter_rows(named=True)}
    if not sum(kept.values()):
        raise InputError(
            f"[hospital] finess: no stay of {', '.join(wanted)} among the stays kept in the PMSI "
            f"({per_finess.filter(pl.col('hospital_id').is_not_null()).height} other FINESS found); check the numbers",
            data.folder,
            "ETA_NUM",
        )
    scope = {
        "finess": wanted,
        "stays_kept": kept,
        "stays_other_finess": int(others["stays"].sum()),
        "other_finess": others.filter(pl.col("hospital_id").is_not_null()).height,
    }
    folder = data.workspace.path() / "hospital"
    folder.mkdir(exist_ok=True)
    stays = data.stays.filter(pl.col("hospital_id").is_in(wanted))
    stays.sink_parquet(folder / "stays.parquet")
    ids = pl.scan_parquet(folder / "stays.parquet").select("stay_id")
    data.diagnoses.join(ids, on="stay_id", how="semi").sink_parquet(folder / "diagnoses.parquet")
    values = {f.name: getattr(data, f.name) for f in fields(PmsiData)}
    values["canonical_paths"] = {"stays": folder / "stays.parquet", "diagnoses": folder / "diagnoses.parquet"}
    return HospitalData(**values, finess=tuple(wanted), scope=scope)


def for_hospital(data: PmsiData, hospital: HospitalConfig | None) -> PmsiData:
    """``data.canonical()``, restricted to the hospital's FINESS in hospital mode (``hospital``:
    the configuration's ``[hospital]``, None in population mode)."""
    if hospital is None:
        return data.canonical()
    return restrict_to_hospital(data, hospital.finess)
