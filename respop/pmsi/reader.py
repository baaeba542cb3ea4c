"""Read a folder of SNDS PMSI MCO tables into the canonical model, lazily.

>>> data = read_pmsi("data/demo/pmsi")              # doctest: +SKIP
>>> data.stays.filter(pl.col("age") >= 18)           # a LazyFrame; nothing read yet
>>> report = data.report()                           # counts every row read, loaded, quarantined
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from respop.config import InputConfig, QualityConfig
from respop.errors import InputError
from respop.pmsi.canonical import DIAGNOSIS_SCHEMA, LINKAGE_COLUMNS, STAY_SCHEMA, build_diagnoses, build_stays
from respop.pmsi.files import Workspace, discover, locate_csv_problem, scan_table
from respop.pmsi.quality import EXCLUDED_BY, FILTERS, apply_filters, flag_column
from respop.pmsi.report import FilterCount, PmsiReport, TableCount
from respop.pmsi.schema import TABLES, USED_COLUMNS
from respop.pmsi.validate import REASONS, DateWindow, ValidatedTable, validate_table

Progress = Callable[[str], None]


@dataclass
class PmsiData:
    """The PMSI of one folder: canonical lazy frames, quarantines, and the means to report on them.

    ``stays``: kept stays (séances apart unless ``quality.sessions_apart`` is false);
    ``sessions``: kept séances; ``excluded_stays``: stays a quality filter excluded, with
    ``excluded_by``; ``diagnoses``: diagnoses of the kept stays and séances.
    Patient keys are in these frames: they belong to the run's private outputs only.
    """

    folder: Path
    input: InputConfig
    quality: QualityConfig
    tables: list[ValidatedTable]
    flagged_stays: pl.LazyFrame
    all_diagnoses: pl.LazyFrame
    workspace: Workspace = field(repr=False)

    @property
    def years(self) -> list[int | None]:
        return sorted({t.file.year for t in self.tables}, key=lambda y: -1 if y is None else y)

    @property
    def stays(self) -> pl.LazyFrame:
        kept = self.flagged_stays.filter(pl.col(EXCLUDED_BY).is_null())
        if self.quality.sessions_apart:
            kept = kept.filter(~pl.col("is_session"))
        return kept.select(list(STAY_SCHEMA))

    @property
    def sessions(self) -> pl.LazyFrame:
        if not self.quality.sessions_apart:
            return self.flagged_stays.filter(pl.lit(False)).select(list(STAY_SCHEMA))
        return self.flagged_stays.filter(pl.col(EXCLUDED_BY).is_null() & pl.col("is_session")).select(
            list(STAY_SCHEMA)
        )

    @property
    def excluded_stays(self) -> pl.LazyFrame:
        return self.flagged_stays.filter(pl.col(EXCLUDED_BY).is_not_null()).select(
            *STAY_SCHEMA, EXCLUDED_BY
        )

    @property
    def diagnoses(self) -> pl.LazyFrame:
        kept = self.flagged_stays.filter(pl.col(EXCLUDED_BY).is_null()).select("stay_key")
        return self.all_diagnoses.join(kept, on="stay_key", how="semi")

    def quarantine(self, table: str | None = None) -> dict[str, pl.LazyFrame]:
        """Quarantined rows per source file label (``T_MCO22B``…), optionally of one table."""
        return {t.file.label: t.quarantine for t in self.tables if table in (None, t.file.table)}

    def report(self, progress: Progress | None = None) -> PmsiReport:
        """Count every row: read, loaded and quarantined per file (with reasons), stays excluded
        per filter, séances, stays kept, diagnoses per position. Reads the data."""
        step = progress or (lambda _label: None)
        tables = []
        for t in self.tables:
            step(f"counting {t.file.label}")
            tables.append(_count_table(t))
        step("applying the quality filters")
        stays = _count_stays(self.flagged_stays, self.quality)
        step("counting diagnoses")
        by_position = (
            self.diagnoses.group_by("position").agg(pl.len()).collect(engine="streaming")
        )
        diagnoses = {str(p): int(n) for p, n in by_position.iter_rows()}
        return PmsiReport(
            folder=str(self.folder),
            years=[y for y in self.years],
            tables=tables,
            filters=stays["filters"],
            stays_loaded=stays["loaded"],
            stays_kept=stays["kept"],
            sessions_kept=stays["sessions"],
            diagnoses=diagnoses,
        )

    def write(self, out: str | Path, progress: Progress | None = None) -> PmsiReport:
        """Write the staged tables, quarantines and report under ``out`` (private outputs).

        ``out/staged/{stays,sessions,diagnoses,excluded_stays}.parquet``,
        ``out/quarantine/<file>.parquet`` and ``out/report.json``. The folder is replaced only
        once everything is written: a failure leaves the previous content as it was.
        """
        step = progress or (lambda _label: None)
        out = Path(out)
        with _atomic_folder(out) as tmp:
            (tmp / "staged").mkdir()
            (tmp / "quarantine").mkdir()
            for name in ("stays", "sessions", "diagnoses", "excluded_stays"):
                step(f"writing staged/{name}.parquet")
                getattr(self, name).sink_parquet(tmp / "staged" / f"{name}.parquet")
            for label, lf in self.quarantine().items():
                step(f"writing quarantine/{label}.parquet")
                lf.sink_parquet(tmp / "quarantine" / f"{label}.parquet")
            report = self.report(progress)
            (tmp / "report.json").write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
        return report

    def close(self) -> None:
        self.workspace.close()


def read_pmsi(
    folder: str | Path | None = None,
    input: InputConfig | None = None,
    quality: QualityConfig | None = None,
) -> PmsiData:
    """Open the SNDS PMSI MCO tables of a folder (one or several exit years) as the canonical model.

    Files are found and checked (names, formats, encoding, separator, required columns) now;
    rows are read only when a frame is collected. Raises :class:`~respop.errors.InputError`.
    """
    input = input or InputConfig()
    quality = quality or QualityConfig()
    folder = Path(folder) if folder is not None else input.pmsi_dir
    if folder is None:
        raise InputError("no PMSI folder given (set input.pmsi_dir in the configuration)")
    files = discover(folder, input.years, input.format)
    workspace = Workspace()
    zones = _load_zones(quality.zones_file) if quality.zones_file else None
    tables: list[ValidatedTable] = []
    stays, diagnoses = [], []
    for year, by_table in files.items():
        window = DateWindow(quality.min_date, quality.max_date or _default_max_date(year))
        raw = {t: scan_table(f, input.separator, input.encoding, workspace) for t, f in by_table.items()}
        b = validate_table(by_table["B"], raw["B"], window)
        c = validate_table(by_table["C"], raw["C"], window)
        keys = b.loaded.select("ETA_NUM", "RSA_NUM")
        d = validate_table(by_table["D"], raw["D"], window, parent_keys=keys)
        um = validate_table(by_table["UM"], raw["UM"], window, parent_keys=keys)
        tables += [b, c, d, um]
        stays.append(build_stays(b, c))
        diagnoses.append(build_diagnoses(b, d, um))
    flagged = apply_filters(pl.concat(stays, how="vertical"), quality, zones)
    return PmsiData(
        folder=Path(folder),
        input=input,
        quality=quality,
        tables=tables,
        flagged_stays=flagged,
        all_diagnoses=pl.concat(diagnoses, how="vertical"),
        workspace=workspace,
    )


def _default_max_date(year: int | None) -> dt.date:
    return dt.date(year, 12, 31) if year is not None else dt.date.today()


def _load_zones(path: Path) -> frozenset[str]:
    if not path.is_file():
        raise InputError("zone list not found (quality.zones_file)", path)
    try:
        df = pl.read_parquet(path) if path.suffix in (".parquet", ".pq") else pl.read_csv(path, infer_schema=False)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"unreadable zone list: {exc}", path) from None
    if "zone_code" not in df.columns:
        raise InputError("zone list lacks the column zone_code", path, column="zone_code")
    return frozenset(df["zone_code"].cast(pl.String).to_list())


def _collect(lf: pl.LazyFrame, label: str) -> pl.DataFrame:
    try:
        return lf.collect(engine="streaming")
    except pl.exceptions.PolarsError as exc:
        raise InputError(f"could not read {label}: {_short(exc)}") from None


def _short(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _count_table(t: ValidatedTable) -> TableCount:
    label = t.file.label
    try:
        read = _collect(t.raw.select(pl.len()), label).item()
        loaded = _collect(t.loaded.select(pl.len()), label).item()
        reasons = _collect(
            t.quarantine.select(pl.col(REASONS).explode().alias("reason")).group_by("reason").agg(pl.len()), label
        )
        quarantined = _collect(t.quarantine.select(pl.len()), label).item()
    except InputError as exc:
        message = str(exc).removeprefix(f"could not read {label}: ")
        located = locate_csv_problem(t.file.path) if t.file.format == "csv" and t.file.path.is_file() else None
        if located:
            message = f"malformed CSV: {located}"
        raise InputError(message, t.file.path) from None
    absent = [name for name, req, _ in USED_COLUMNS[t.file.table] if not req and name not in t.raw.collect_schema()]
    return TableCount(
        table=t.file.table,
        label=label,
        year=t.file.year,
        path=str(t.file.path),
        format=t.file.format,
        rows_read=int(read),
        rows_loaded=int(loaded),
        rows_quarantined=int(quarantined),
        reasons=dict(sorted(((r, int(n)) for r, n in reasons.iter_rows()), key=lambda kv: -kv[1])),
        absent_optional_columns=absent,
    )


def _count_stays(flagged: pl.LazyFrame, quality: QualityConfig) -> dict:
    counts = _collect(
        flagged.select(
            pl.len().alias("loaded"),
            *[pl.col(flag_column(f.name)).sum().alias(f"flagged_{f.name}") for f in FILTERS],
            *[(pl.col(EXCLUDED_BY) == f.name).sum().alias(f"excluded_{f.name}") for f in FILTERS],
            (pl.col(EXCLUDED_BY).is_null() & pl.col("is_session")).sum().alias("sessions"),
            pl.col(EXCLUDED_BY).is_null().sum().alias("kept_all"),
        ),
        "the stays",
    ).row(0, named=True)
    sessions = counts["sessions"] if quality.sessions_apart else 0
    filters = [
        FilterCount(
            name=f.name,
            title=f.title,
            enabled=getattr(quality, f.name),
            excluded=int(counts[f"excluded_{f.name}"]),
            flagged=int(counts[f"flagged_{f.name}"]),
        )
        for f in FILTERS
    ]
    return {
        "loaded": int(counts["loaded"]),
        "kept": int(counts["kept_all"] - sessions),
        "sessions": int(sessions),
        "filters": filters,
    }


@contextmanager
def _atomic_folder(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``target``, on failure it is removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


__all__ = ["PmsiData", "read_pmsi", "TABLES", "LINKAGE_COLUMNS", "DIAGNOSIS_SCHEMA"]
