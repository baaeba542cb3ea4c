"""Read a folder of PMSI MCO data into the canonical model, lazily: SNDS tables (T_MCOaaB/C/D/UM)
or the ATIH's own RSA and ANO files (respop.pmsi.atih, turned into the same SNDS-shaped tables).

>>> data = read_pmsi("data/demo/pmsi")              # doctest: +SKIP
>>> data.stays.filter(pl.col("age") >= 18)           # a LazyFrame; nothing read yet
>>> report = data.report()                           # counts every row read, loaded, quarantined
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from respop.config import InputConfig, QualityConfig
from respop.errors import DiskFullError, InputError, is_disk_full
from respop.fsutil import atomic_folder
from respop.pmsi import atih
from respop.pmsi.canonical import STAY_SCHEMA, build_diagnoses, build_stays
from respop.pmsi.files import (
    ROW,
    TableFile,
    Workspace,
    describe_failure,
    discover,
    has_snds_tables,
    read_failure,
    scan_table,
)
from respop.pmsi.quality import (
    CLINICAL_ONLY_BY,
    EXCLUDED_BY,
    FILTERS,
    USE_SCHEMA,
    apply_filters,
    find_duplicate_stays,
    finish_filters,
    flag_column,
    flag_stays,
)
from respop.pmsi.report import LINKAGE_CAUSES, FilterCount, PmsiReport, TableCount
from respop.pmsi.schema import USED_COLUMNS
from respop.pmsi.validate import CHECKS, SPEED, STAY_KEY, DateWindow, ValidatedTable, validate_table

Progress = Callable[[str], None]


@dataclass
class PmsiData:
    """The PMSI of one folder: canonical lazy frames, quarantines, and the means to report on them.

    ``stays``: kept stays (séances apart unless ``quality.sessions_apart`` is false), with the
    columns of :data:`~respop.pmsi.quality.USE_SCHEMA` after STAY_SCHEMA: a stay kept for clinical
    events only (a residence filter, an inter-hospital service) is among them with
    ``residence_used`` or ``stay_counted`` false; ``sessions``: kept séances (same columns);
    ``excluded_stays``: stays an excluding quality filter excluded, with ``excluded_by``;
    ``diagnoses``: diagnoses of the kept stays and séances.
    Patient keys are in these frames: they belong to the run's private outputs only.

    The frames are lazy plans over the raw files. :meth:`staged` parses and checks each file once
    into a private workspace and returns the same data reading from there; :meth:`report` and
    :meth:`write` use it, so each raw file is parsed once however many outputs are made.
    """

    folder: Path
    input: InputConfig
    quality: QualityConfig
    files: dict[int | None, dict[str, TableFile]]
    zones: frozenset[str] | None
    tables: list[ValidatedTable]
    flagged_stays: pl.LazyFrame
    diagnoses_by_year: dict[int | None, pl.LazyFrame]
    """Diagnoses of every loaded stay, per exit year (kept or not: :attr:`diagnoses` keeps them)."""
    raw: dict[int | None, dict[str, pl.LazyFrame]] = field(repr=False)
    workspace: Workspace = field(repr=False)
    is_staged: bool = False
    _staged: PmsiData | None = field(default=None, repr=False)
    canonical_paths: dict[str, Path] | None = field(default=None, repr=False)
    """Parquet files of the kept ``stays`` and ``diagnoses`` once :meth:`canonical` wrote them."""
    atih: atih.AtihInput | None = field(default=None, repr=False)
    """For a folder of ATIH files: the files read and superseded, their counts and quarantined
    lines (the tables above are then the SNDS-shaped tables parsed from them)."""

    @property
    def years(self) -> list[int | None]:
        return list(self.files)

    @property
    def stays(self) -> pl.LazyFrame:
        if self.canonical_paths is not None:
            return pl.scan_parquet(self.canonical_paths["stays"])
        kept = self.flagged_stays.filter(pl.col(EXCLUDED_BY).is_null())
        if self.quality.sessions_apart:
            kept = kept.filter(~pl.col("is_session"))
        return kept.select(*STAY_SCHEMA, *USE_SCHEMA)

    @property
    def sessions(self) -> pl.LazyFrame:
        kept = self.flagged_stays.filter(pl.col(EXCLUDED_BY).is_null() & pl.col("is_session"))
        if not self.quality.sessions_apart:
            kept = kept.filter(pl.lit(False))
        return kept.select(*STAY_SCHEMA, *USE_SCHEMA)

    @property
    def excluded_stays(self) -> pl.LazyFrame:
        return self.flagged_stays.filter(pl.col(EXCLUDED_BY).is_not_null()).select(
            *STAY_SCHEMA, EXCLUDED_BY
        )

    @property
    def diagnoses(self) -> pl.LazyFrame:
        if self.canonical_paths is not None:
            return pl.scan_parquet(self.canonical_paths["diagnoses"])
        # every diagnosis belongs to a loaded stay of B (its DP and DR are B's; DAS and unit
        # diagnoses point at the B row of their stay), and every loaded stay is in flagged_stays:
        # the kept stays' diagnoses are those of no excluded stay. An anti join on the excluded
        # stays (few: 0.5 M of 20 M a national year) rather than a semi join on the kept ones
        # (one national year: the staged diagnoses written in 11.8 s instead of 15.7)
        excluded = self.flagged_stays.filter(pl.col(EXCLUDED_BY).is_not_null())
        return pl.concat(
            [
                dx.join(excluded.filter(pl.col("source_year").eq_missing(pl.lit(year, pl.Int16))).select("stay_id"), on="stay_id", how="anti")
                for year, dx in self.diagnoses_by_year.items()
            ],
            how="vertical",
        )

    def quarantine(self, table: str | None = None) -> dict[str, pl.LazyFrame]:
        """Quarantined rows per source file label (``T_MCO22B``…), optionally of one table."""
        return {t.file.label: t.quarantine for t in self.tables if table in (None, t.file.table)}

    def steps(self, write: bool = False) -> int:
        """Number of progress steps :meth:`report` (or :meth:`write`) announces."""
        n = 2 * len(self.tables) + 3
        atih_files = len(self.atih.counts) if self.atih is not None else 0
        return n + (4 + len(self.tables) + atih_files if write else 0)

    def staged(self, progress: Progress | None = None) -> PmsiData:
        """Parse and check every file once into the private workspace; return data reading it."""
        if self.is_staged:
            return self
        if self._staged is None:
            self._staged = _build(
                self.folder, self.files, self.raw, self.input, self.quality, self.zones, self.workspace, progress,
                atih_input=self.atih,
            )
        return self._staged

    def canonical(self, progress: Progress | None = None) -> PmsiData:
        """The staged data whose kept ``stays`` and ``diagnoses`` are also written once to the
        workspace (``canonical/stays.parquet``, ``canonical/diagnoses.parquet``, streamed): every
        later reader (the steps of ``respop run``, the Spark engine) scans those two files instead
        of joining B, D and UM and applying the filters again."""
        step = progress or (lambda _label: None)
        data = self.staged(progress)
        if data.canonical_paths is None:
            folder = data.workspace.path() / "canonical"
            folder.mkdir(exist_ok=True)
            paths = {}
            for name in ("stays", "diagnoses"):
                step(f"writing the canonical {name}")
                _sink(getattr(data, name), folder / f"{name}.parquet", f"the {name}", **SPEED)
                paths[name] = folder / f"{name}.parquet"
            data.canonical_paths = paths
        return data

    def report(self, progress: Progress | None = None, diagnoses: pl.LazyFrame | None = None) -> PmsiReport:
        """Count every row: read, loaded and quarantined per file (with reasons), stays excluded
        per filter, séances, stays kept, diagnoses per position. Reads the data."""
        step = progress or (lambda _label: None)
        data = self.staged(progress)
        tables = []
        for t in data.tables:
            step(f"counting {t.file.label}")
            tables.append(_count_table(t))
        step("counting stays")
        stays = _count_stays(data.flagged_stays, data.quality)
        step("counting diagnoses")
        dx = diagnoses if diagnoses is not None else data.diagnoses
        by_position = _collect(dx.group_by("position").agg(pl.len()).sort("position"), "the diagnoses")
        return PmsiReport(
            folder=str(self.folder),
            years=self.years,
            tables=tables,
            filters=stays["filters"],
            stays_loaded=stays["loaded"],
            stays_kept=stays["kept"],
            sessions_kept=stays["sessions"],
            diagnoses={str(p): int(n) for p, n in by_position.iter_rows()},
            atih_files=list(self.atih.counts) if self.atih is not None else [],
            superseded=[f.name for f in self.atih.superseded] if self.atih is not None else [],
        )

    def write(self, out: str | Path, progress: Progress | None = None) -> PmsiReport:
        """Write the staged tables, quarantines and report under ``out`` (private outputs).

        ``out/staged/{stays,sessions,diagnoses,excluded_stays}.parquet``,
        ``out/quarantine/<file>.parquet`` (for ATIH files, also one per RSA and ANO file: the lines
        that could not be sliced, with their line number and reason) and ``out/report.json``. The folder is replaced only
        once everything is written: a failure leaves the previous content as it was. A folder
        that exists but is not a respop output is never replaced.
        """
        step = progress or (lambda _label: None)
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise InputError("exists and is a file, not a folder; choose another --out", out)
        if out.exists() and any(out.iterdir()) and not (out / "report.json").is_file():
            raise InputError("exists and is not a respop output folder; choose another --out", out)
        data = self.staged(progress)
        try:
            with atomic_folder(out) as tmp:
                (tmp / "staged").mkdir()
                (tmp / "quarantine").mkdir()
                for name in ("stays", "sessions", "diagnoses", "excluded_stays"):
                    step(f"writing staged/{name}.parquet")
                    # read by every step of respop run (respop.pmsi.stage): a fast codec (SPEED)
                    _sink(getattr(data, name), tmp / "staged" / f"{name}.parquet", f"the {name}", **SPEED)
                for t in data.tables:
                    step(f"writing quarantine/{t.file.label}.parquet")
                    with _reading(t.file):
                        t.quarantine.sink_parquet(tmp / "quarantine" / f"{t.file.label}.parquet")
                if data.atih is not None:
                    for count in data.atih.counts:
                        step(f"writing quarantine/{count.name}.parquet")
                        _sink(data.atih.quarantine(count.name), tmp / "quarantine" / f"{count.name}.parquet",
                              f"the quarantined lines of {count.name}")
                report = data.report(progress, diagnoses=pl.scan_parquet(tmp / "staged" / "diagnoses.parquet"))
                (tmp / "report.json").write_text(
                    json.dumps(report.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8"
                )
        except (DiskFullError, OSError) as exc:
            if not is_disk_full(exc):
                raise
            raise DiskFullError(out, "its previous content is intact") from None
        return report

    def close(self) -> None:
        self.workspace.close()


FILTERS_STEP = "applying the quality filters"
"""Progress label of the staging step that follows the checking of every file."""


def read_pmsi(
    folder: str | Path | None = None,
    input: InputConfig | None = None,
    quality: QualityConfig | None = None,
) -> PmsiData:
    """Open the PMSI MCO data of a folder (one or several exit years) as the canonical model.

    The folder holds SNDS tables (T_MCOaaB/C/D/UM) or ATIH files (RSA and ANO): detected
    (:func:`detect_layout`), or chosen with ``input.format``. SNDS files are found and checked
    (names, formats, encoding, separator, required columns, date format) now; rows are read only
    when a frame is collected, or by :meth:`PmsiData.staged`. ATIH files are parsed now, once, into
    SNDS-shaped tables in the private workspace (respop.pmsi.atih), then read the same way.
    Raises :class:`~respop.errors.InputError`.
    """
    input = input or InputConfig()
    quality = quality or QualityConfig()
    folder = Path(folder) if folder is not None else input.pmsi_dir
    if folder is None:
        raise InputError("no PMSI folder given (set input.pmsi_dir in the configuration)")
    zones = _load_zones(quality.zones_file) if quality.zones_file else None
    if detect_layout(folder, input.format) == "atih":
        workspace = Workspace(input.workspace_dir)
        try:
            files, raw, atih_input = _open_atih(Path(folder), input, workspace)
        except BaseException:
            workspace.close()
            raise
        return _build(
            Path(folder), files, raw, input, quality, zones, workspace, progress=None, stage=False, atih_input=atih_input
        )
    files = discover(folder, input.years, input.format)
    workspace = Workspace(input.workspace_dir)
    raw = {
        year: {t: scan_table(f, input.separator, input.encoding, workspace) for t, f in by_table.items()}
        for year, by_table in files.items()
    }
    return _build(Path(folder), files, raw, input, quality, zones, workspace, progress=None, stage=False)


def detect_layout(folder: str | Path, fmt: str = "auto") -> str:
    """``"atih"`` or ``"snds"``: what ``folder`` holds, or what ``input.format`` chose (``atih``;
    ``csv`` or ``parquet`` are SNDS tables). A folder with both under ``auto`` is an
    :class:`InputError` asking to choose."""
    folder = Path(folder)
    if fmt == "atih":
        return "atih"
    has_atih = bool(atih.atih_files(folder))
    if fmt != "auto":
        if has_atih and not has_snds_tables(folder):
            raise InputError(
                f"holds ATIH files (RSA and ANO), not SNDS tables, and input.format is {fmt!r}: set it to "
                "'atih' or 'auto'",
                folder,
            )
        return "snds"
    if has_atih and has_snds_tables(folder):
        raise InputError(
            "holds both SNDS tables (T_MCOaaB/C/D/UM) and ATIH files (RSA and ANO): choose which to read "
            "with input.format = 'atih', or 'csv' / 'parquet' for the SNDS tables (--format on the command line)",
            folder,
        )
    return "atih" if has_atih else "snds"


def _open_atih(
    folder: Path, input: InputConfig, workspace: Workspace
) -> tuple[dict[int | None, dict[str, TableFile]], dict[int | None, dict[str, pl.LazyFrame]], atih.AtihInput]:
    """Parse the folder's ATIH files once into the workspace; the SNDS-shaped tables per year."""
    try:
        parsed = atih.parse_folder(folder, workspace.path(), input.years)
    except (pl.exceptions.PolarsError, OSError) as exc:
        if is_disk_full(exc):
            raise DiskFullError(f"{_WORKSPACE} (parsing the ATIH files of {folder})", _INTACT) from None
        if isinstance(exc, OSError):
            raise InputError(f"could not be read ({exc.strerror or type(exc).__name__})", getattr(exc, "filename", None) or folder) from None
        raise InputError(f"the ATIH files could not be parsed: {describe_failure(exc)}", folder) from None
    files: dict[int | None, dict[str, TableFile]] = {}
    raw: dict[int | None, dict[str, pl.LazyFrame]] = {}
    for year, parsed_year in parsed.years.items():
        rsa = parsed_year.rsa[0].path if len(parsed_year.rsa) == 1 else folder
        ano = parsed_year.ano[0].path if len(parsed_year.ano) == 1 else folder
        files[year] = {t: TableFile(t, year, ano if t == "C" else rsa, "atih") for t in parsed_year.tables}
        raw[year] = {t: pl.scan_parquet(path) for t, path in parsed_year.tables.items()}
    return files, raw, parsed


def _build(
    folder: Path,
    files: dict[int | None, dict[str, TableFile]],
    raws: dict[int | None, dict[str, pl.LazyFrame]],
    input: InputConfig,
    quality: QualityConfig,
    zones: frozenset[str] | None,
    workspace: Workspace,
    progress: Progress | None,
    stage: bool = True,
    atih_input: atih.AtihInput | None = None,
) -> PmsiData:
    """Validate every file and build the canonical frames; with ``stage``, write each validated
    table and the filtered stays to the workspace first (one parse per file)."""
    step = progress or (lambda _label: None)

    def staged(t: ValidatedTable) -> ValidatedTable:
        if not stage:
            return t
        step(f"checking {t.file.label}")
        with _reading(t.file):
            return t.materialize(workspace.path())

    tables: list[ValidatedTable] = []
    stays, diagnoses = [], []
    for year, by_table in files.items():
        window = DateWindow(quality.min_date, quality.max_date or _default_max_date(year))
        raw = raws[year]
        with _reading(by_table["B"]):
            b = staged(validate_table(by_table["B"], raw["B"], window, find_clean=stage))
        parent = b.loaded.select(STAY_KEY, ROW)
        if stage:  # read once for the three tables that join it (~300 MB a national year), not three times
            with _reading(by_table["B"]):
                parent = parent.collect(engine="streaming").lazy()
        others = []
        for table in ("C", "D", "UM"):
            with _reading(by_table[table]):
                others.append(staged(validate_table(by_table[table], raw[table], window, parent=parent, find_clean=stage)))
        c, d, um = others
        tables += [b, c, d, um]
        stays.append(build_stays(b, c))
        diagnoses.append(build_diagnoses(b, d, um))
    if stage:
        # the row-wise filters written once; the duplicate stays then found in bounded memory
        # (quality.find_duplicate_stays) and joined back lazily on stay_id: a small table
        step(FILTERS_STEP)
        path = workspace.path() / "flagged_stays.parquet"
        _sink(flag_stays(pl.concat(stays, how="vertical"), quality, zones), path, "the stays", **SPEED)
        try:
            duplicates = find_duplicate_stays(pl.scan_parquet(path))
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise _failure(exc, "the duplicate stays", path) from None
        flagged = finish_filters(pl.scan_parquet(path), quality, duplicates.lazy())
    else:
        flagged = apply_filters(pl.concat(stays, how="vertical"), quality, zones)
    return PmsiData(
        folder=folder,
        input=input,
        quality=quality,
        files=files,
        zones=zones,
        tables=tables,
        flagged_stays=flagged,
        diagnoses_by_year=dict(zip(files, diagnoses)),
        raw=raws,
        workspace=workspace,
        is_staged=stage,
        atih=atih_input,
    )


@contextmanager
def _reading(tf: TableFile) -> Iterator[None]:
    """Turn a read failure of one file into an :class:`InputError` naming it, the bad line and
    the kind of problem (:func:`~respop.pmsi.files.read_failure`: the reader's message, which may
    quote rows, is not passed on); a full disk while staging into a :class:`DiskFullError`."""
    try:
        yield
    except (pl.exceptions.PolarsError, OSError) as exc:
        if is_disk_full(exc):
            raise DiskFullError(f"{_WORKSPACE} (staging {tf.path.name})", _INTACT) from None
        raise read_failure(tf.path, tf.format, tf.table, exc) from None


_WORKSPACE = "the private workspace (input.workspace_dir)"
_INTACT = "the input files and previous outputs are intact"


def _failure(exc: BaseException, label: str, path: Path | None = None) -> Exception:
    """A failure building ``label`` from the staged tables: a full disk or an :class:`InputError`
    saying the kind of problem, never the reader's message (it may quote rows)."""
    if is_disk_full(exc):
        return DiskFullError(path if path is not None else f"{_WORKSPACE} (building {label})", _INTACT)
    return InputError(f"could not build {label}: {describe_failure(exc)}")


def _sink(lf: pl.LazyFrame, path: Path, label: str, **options) -> None:
    """Write ``lf`` to ``path`` (streaming); ``options`` of ``sink_parquet`` (:data:`SPEED` for the
    tables that respop reads back: the workspace's, and the staged tables of :meth:`PmsiData.write`)."""
    try:
        lf.sink_parquet(path, **options)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise _failure(exc, label, path) from None


def _default_max_date(year: int | None) -> dt.date:
    """The last day of the file's exit year; for files whose name does not give the year
    (``T_MCOaaB``), the end of 2099, so that a report does not depend on the day it is run."""
    return dt.date(year if year is not None else 2099, 12, 31)


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
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise _failure(exc, label) from None


def _count_table(t: ValidatedTable) -> TableCount:
    """Counts of one validated table; the reasons are decoded from the check bits."""
    with _reading(t.file):
        read = t.raw.select(pl.len()).collect(engine="streaming").item()
        counts = t.typed.select(
            pl.len().alias("typed"),
            (pl.col(CHECKS) == 0).sum().alias("loaded"),
            (pl.col(CHECKS) != 0).sum().alias("quarantined"),
            *[((pl.col(CHECKS) & (1 << i)) != 0).sum().alias(f"bit{i}") for i in range(len(t.reasons))],
        ).collect(engine="streaming").row(0, named=True)
    reasons = {why: int(counts[f"bit{i}"]) for i, why in enumerate(t.reasons) if counts[f"bit{i}"]}
    absent = [name for name, req, _ in USED_COLUMNS[t.file.table] if not req and name not in t.raw.collect_schema()]
    return TableCount(
        table=t.file.table,
        label=t.file.label,
        year=t.file.year,
        path=str(t.file.path),
        format=t.file.format,
        rows_read=int(read),
        rows_loaded=int(counts["loaded"]),
        rows_quarantined=int(counts["quarantined"]),
        reasons=dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        absent_optional_columns=absent,
    )


def _count_stays(flagged: pl.LazyFrame, quality: QualityConfig) -> dict:
    counts = _collect(
        flagged.select(
            pl.len().alias("loaded"),
            *[pl.col(flag_column(f.name)).sum().alias(f"flagged_{f.name}") for f in FILTERS],
            *[(pl.col(EXCLUDED_BY) == f.name).sum().alias(f"excluded_{f.name}") for f in FILTERS],
            *[(pl.col(CLINICAL_ONLY_BY) == f.name).sum().alias(f"clinical_{f.name}") for f in FILTERS],
            (pl.col(flag_column("linkage")) & ~pl.col("_linked")).sum().alias("cause_0"),
            (pl.col(flag_column("linkage")) & pl.col("_linked") & ~pl.col("_return_codes_ok")).sum().alias("cause_1"),
            (pl.col(flag_column("linkage")) & pl.col("_linked") & pl.col("_return_codes_ok")).sum().alias("cause_2"),
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
            effect=f.effect,
            clinical_only=int(counts[f"clinical_{f.name}"]),
            causes={c: int(counts[f"cause_{i}"]) for i, c in enumerate(LINKAGE_CAUSES)} if f.name == "linkage" else {},
        )
        for f in FILTERS
    ]
    return {
        "loaded": int(counts["loaded"]),
        "kept": int(counts["kept_all"] - sessions),
        "sessions": int(sessions),
        "filters": filters,
    }
