"""The staged input: the validated canonical PMSI, kept between runs (docs/pmsi.md, Staged input).

Validating the raw PMSI is most of a run's input step. It is done once per set of inputs: the
kept stays, séances, excluded stays and diagnoses, the quarantine (one file per source file) and
the input report, as :meth:`PmsiData.write <respop.pmsi.reader.PmsiData.write>` writes them, are
kept in a private folder (``input.staged_dir``, default ``<output.dir>/staged-input``, mode 0700)
with a manifest holding what they were built from (:func:`staging_state`: the
names, sizes and modification times of the PMSI files and of ``quality.zones_file``, the
``[input]`` and ``[quality]`` settings the staging reads, respop's version and the staging
format). Every run with the same inputs reads that folder (:class:`StagedInput`) and does not
validate again; a changed file, setting, version or format rebuilds it, and the run says which
(:func:`staged_input`). The folder is replaced only once it is complete
(:func:`respop.fsutil.atomic_folder`): a staging that fails or is killed leaves the previous one.

Layout of the folder::

    manifest.json                  what it was built from, its fingerprint, counts
    report.json                    the input report (PmsiReport.to_dict(): counts only)
    staged/stays.parquet           kept stays (séances apart), the frame the steps read
    staged/sessions.parquet        kept séances
    staged/excluded_stays.parquet  stays an excluding filter excluded, with excluded_by
    staged/diagnoses.parquet       diagnoses of the kept stays and séances
    quarantine/<file>.parquet      the quarantined rows of each file, with their reasons
    deaths.parquet, deaths.json    the deaths referential IR_BEN_R, validated (when there is one)

It holds patient keys: it is private like the run's outputs, never published, never read by the
store or the boards. Deleting it is always safe: the next run stages the input again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from respop import __version__
from respop.config import Config
from respop.errors import InputError
from respop.fsutil import atomic_folder, claim_output_folder, leftovers, remove, stat_file, stat_files
from respop.pmsi.files import Workspace
from respop.pmsi.reader import FILTERS_STEP, PmsiData
from respop.pmsi.report import AtihFileCount, FilterCount, PmsiReport, TableCount

Progress = Callable[[str], None]

DEFAULT_NAME = "staged-input"
"""The staged input's folder in ``<output.dir>`` when ``input.staged_dir`` is not set."""
MANIFEST = "manifest.json"
TABLES = ("stays", "sessions", "excluded_stays", "diagnoses")


STAGING_FORMAT = 1
"""Version of the staged input's layout : a staged folder of another format
is rebuilt, whatever its fingerprint."""

_NOT_STAGING = {"input": {"reference_dir", "workspace_dir", "staged_dir", "deaths"}, "quality": set()}
"""Settings the staging does not read: changing them keeps the staged input."""


def staging_state(config: Config) -> dict:
    """What the staged input is built from, in full, so that a change can be
    named: the staging ``format`` (:data:`STAGING_FORMAT`), ``respop_version``, the ``files`` of
    ``input.pmsi_dir`` (relative name → [size, modification time in ns]), ``zones_file``
    ([size, time] of ``quality.zones_file``) and the ``[input]``/[quality]`` ``settings`` it
    reads (paths as text; not the reference tables, the workspace or the deaths setting, which the
    staging does not read). Its SHA-256 is :func:`staging_fingerprint`."""
    return {
        "format": STAGING_FORMAT,
        "respop_version": __version__,
        "files": stat_files(config.input.pmsi_dir, _not_input(config)),
        "zones_file": stat_file(config.quality.zones_file),
        "settings": {
            "input": config.input.model_dump(mode="json", exclude=_NOT_STAGING["input"]),
            "quality": config.quality.model_dump(mode="json", exclude=_NOT_STAGING["quality"]),
        },
    }


def staging_fingerprint(state: dict) -> str:
    """SHA-256 of a :func:`staging_state`."""
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()


def staging_changes(recorded: dict, current: dict, shown: int = 3) -> list[str]:
    """What differs between the :func:`staging_state` a staged input was built from and the
    current one, in words (file names and setting keys, never a value of the data): empty when
    they are equal."""
    if recorded == current:
        return []
    reasons = []
    if recorded.get("format") != current["format"]:
        reasons.append(f"staging format {recorded.get('format')} → {current['format']}")
    if recorded.get("respop_version") != current["respop_version"]:
        reasons.append(f"respop {recorded.get('respop_version')} → {current['respop_version']}")
    before, now = recorded.get("files") or {}, current["files"] or {}
    for verb, names in (
        ("changed", [n for n in now if n in before and before[n] != now[n]]),
        ("added", [n for n in now if n not in before]),
        ("removed", [n for n in before if n not in now]),
    ):
        if names:
            more = f" and {len(names) - shown} more" if len(names) > shown else ""
            reasons.append(f"{', '.join(names[:shown])}{more} {verb}")
    if recorded.get("files") is not None and current["files"] is None:
        reasons.append("input.pmsi_dir is gone")
    if recorded.get("zones_file") != current["zones_file"]:
        reasons.append("quality.zones_file changed")
    for section in ("input", "quality"):
        old = (recorded.get("settings") or {}).get(section) or {}
        new = current["settings"][section]
        keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if keys:
            reasons.append(f"[{section}] {', '.join(keys)} changed")
    return reasons or ["its fingerprint differs"]


def _not_input(config: Config) -> tuple[Path, ...]:
    """respop's own folders, never counted as PMSI files even when they lie in ``input.pmsi_dir``
    (as respop.stages.input_fingerprint leaves them out)."""
    folders = (config.output.dir, config.input.workspace_dir, config.input.staged_dir)
    return tuple(p for p in folders if p is not None)


def staged_dir(config: Config) -> Path:
    """Where the configuration's staged input lives: ``input.staged_dir``, else
    ``<output.dir>/staged-input``."""
    if config.input.staged_dir is not None:
        return config.input.staged_dir
    if config.output.dir is None:
        raise InputError("no place for the staged input: set output.dir or input.staged_dir")
    return config.output.dir / DEFAULT_NAME


def report_from_dict(report: dict) -> PmsiReport:
    """The :class:`PmsiReport` of its :meth:`~PmsiReport.to_dict` (report.json)."""
    return PmsiReport(
        folder=report["folder"],
        years=list(report["years"]),
        tables=[TableCount(**t) for t in report["tables"]],
        filters=[FilterCount(**f) for f in report["filters"]],
        stays_loaded=report["stays_loaded"],
        stays_kept=report["stays_kept"],
        sessions_kept=report["sessions_kept"],
        diagnoses=dict(report["diagnoses"]),
        atih_files=[AtihFileCount(**a) for a in report.get("atih_files", [])],
        superseded=list(report.get("superseded", [])),
    )


@dataclass
class StagedInput(PmsiData):
    """:class:`PmsiData` read from a staged folder (:func:`staged_input`): ``stays``,
    ``sessions``, ``excluded_stays`` and ``diagnoses`` scan its Parquet files (``canonical_paths``
    names the stays and diagnoses, for the Spark engine), ``quarantine()`` its quarantine files,
    ``report()`` returns the stored input report; nothing is validated again. ``folder``,
    ``input`` and ``quality`` are the configuration's (the deaths referential is read from
    ``folder``); ``workspace`` is the run's private workspace (hospital mode writes its scope
    there); ``years`` are those staged.

    ``location``: the staged folder; ``reused``: whether this process found it up to date
    (False: it built it); ``reasons``: why it was (re)built; ``fingerprint``: its
    :func:`staging_fingerprint`; ``seconds``: the staging's phases when it was built."""

    location: Path | None = None
    stored_report: dict = field(default_factory=dict, repr=False)
    fingerprint: str = ""
    reused: bool = False
    reasons: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict, repr=False)
    """name → file read (``stays``…, ``quarantine/<file>``): :func:`open_staged`."""

    def _path(self, name: str) -> Path:
        if name in self.paths:
            return self.paths[name]
        return self.location / (f"{name}.parquet" if "/" in name else f"staged/{name}.parquet")

    @property
    def stays(self) -> pl.LazyFrame:
        return pl.scan_parquet(self._path("stays"))

    @property
    def sessions(self) -> pl.LazyFrame:
        return pl.scan_parquet(self._path("sessions"))

    @property
    def excluded_stays(self) -> pl.LazyFrame:
        return pl.scan_parquet(self._path("excluded_stays"))

    @property
    def diagnoses(self) -> pl.LazyFrame:
        return pl.scan_parquet(self._path("diagnoses"))

    def quarantine(self, table: str | None = None) -> dict[str, pl.LazyFrame]:
        """Quarantined rows per source file label (``T_MCO22B``…), optionally of one table."""
        return {
            t["label"]: pl.scan_parquet(self._path(f"quarantine/{t['label']}"))
            for t in self.stored_report.get("tables", [])
            if table in (None, t["table"])
        }

    def steps(self, write: bool = False) -> int:
        return 1 + (len(TABLES) if write else 0)

    def staged(self, progress: Progress | None = None) -> StagedInput:
        return self

    def canonical(self, progress: Progress | None = None) -> StagedInput:
        return self

    def report(self, progress: Progress | None = None, diagnoses: pl.LazyFrame | None = None) -> PmsiReport:
        """The input report stored with the staged input (counted when it was staged)."""
        return report_from_dict(self.stored_report)

    def write(self, out: str | Path, progress: Progress | None = None) -> PmsiReport:
        """Copy the staged tables, quarantines and report under ``out`` (``respop pmsi check --out``'s layout)."""
        step = progress or (lambda _label: None)
        with atomic_folder(Path(out)) as tmp:
            for name in ("staged", "quarantine"):
                step(f"copying {name}/")
                shutil.copytree(self.location / name, tmp / name)
            shutil.copy2(self.location / "report.json", tmp / "report.json")
        return self.report()


def _read_manifest(folder: Path) -> dict | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and isinstance(manifest.get("state"), dict) else None


def status(config: Config, state: dict | None = None) -> tuple[dict, list[str]]:
    """The current :func:`staging_state` and why the staged folder cannot be
    reused (empty: it is up to date). ``state``: the one taken before the input was read."""
    state = state if state is not None else staging_state(config)
    folder = staged_dir(config)
    if not folder.exists():
        return state, ["none yet"]
    manifest = _read_manifest(folder)
    if manifest is None:
        return state, ["its manifest is missing or unreadable"]
    missing = [name for name in manifest.get("files", []) if not (folder / name).is_file()]
    if missing:
        return state, [f"{missing[0]} is missing" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")]
    return state, staging_changes(manifest["state"], state)


def _phases(clock: dict[str, float]) -> Progress:
    """A progress callback noting when the staging reaches each of its phases (the first label
    of each): checking the files, the quality filters, the staged tables, the quarantine, the
    report."""

    def note(label: str) -> None:
        phase = (
            "filters" if label == FILTERS_STEP
            else "canonical" if label.startswith("writing staged/")
            else "quarantine" if label.startswith("writing quarantine/")
            else "counts" if label.startswith("counting ")
            else None
        )
        if phase is not None and phase not in clock:
            clock[phase] = time.perf_counter()

    return note


def build(config: Config, state: dict, progress: Progress | None = None) -> dict[str, float]:
    """Validate the PMSI of ``config`` once and write the staged folder (module docstring),
    replacing the previous one only once complete; returns the seconds of its phases
    (``validate``, ``filters``, ``canonical``: the staged tables, ``quarantine``, ``report``).
    ``state``: the :func:`staging_state` taken before the input was read."""
    from respop.pmsi.reader import read_pmsi

    folder = staged_dir(config)
    _prepare(config, folder)
    started = time.perf_counter()
    clock: dict[str, float] = {}
    note = _phases(clock)

    def step(label: str) -> None:
        note(label)
        if progress is not None:
            progress(label)

    data = read_pmsi(None, config.input, config.quality)
    try:
        with atomic_folder(folder) as tmp:
            written = tmp / "pmsi"
            report = data.write(written, step)
            for entry in written.iterdir():
                entry.rename(tmp / entry.name)
            written.rmdir()
            clock["deaths"] = time.perf_counter()
            _stage_deaths(config, tmp)
            files = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())
            manifest = {
                "format": STAGING_FORMAT,
                "respop_version": state["respop_version"],
                "written": dt.datetime.now().isoformat(timespec="seconds"),
                "fingerprint": staging_fingerprint(state),
                "state": state,
                "files": files,
                "counts": {"stays_kept": report.stays_kept, "sessions_kept": report.sessions_kept,
                           "stays_excluded": sum(f.excluded for f in report.filters),
                           "diagnoses": sum(report.diagnoses.values()),
                           "rows_quarantined": sum(t.rows_quarantined for t in report.tables)},
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    finally:
        data.close()
    end = time.perf_counter()
    order = ["validate", *[p for p in ("filters", "canonical", "quarantine", "counts", "deaths") if p in clock]]
    starts = [started, *[clock[p] for p in order[1:]]]
    return {phase: round(b - a, 2) for phase, a, b in zip(order, starts, [*starts[1:], end], strict=True)}


def _stage_deaths(config: Config, folder: Path) -> None:
    """The deaths referential IR_BEN_R of the PMSI folder, validated once with the PMSI
    (respop.pmsi.deaths): ``deaths.parquet`` (patient_key, death_date) and ``deaths.json`` (its
    report, counts only); nothing when there is none, or with ``input.deaths = "ignore"``."""
    from respop.pmsi.deaths import known_deaths

    if config.input.deaths == "ignore":
        return
    known = known_deaths(config.input, config.quality)
    if known.deaths is None:
        return
    known.deaths.write_parquet(folder / "deaths.parquet")
    (folder / "deaths.json").write_text(json.dumps(known.report.to_dict(), ensure_ascii=False, default=str), encoding="utf-8")


def _remember_deaths(config: Config, folder: Path) -> None:
    """The staged deaths handed to respop.pmsi.deaths, which then does not read IR_BEN_R again."""
    from respop.pmsi.deaths import DeathReport, KnownDeaths, remember

    if config.input.deaths == "ignore" or not (folder / "deaths.json").is_file():
        return
    report = json.loads((folder / "deaths.json").read_text(encoding="utf-8"))
    report.pop("balanced", None)
    table = report.pop("table", None)
    known = KnownDeaths(pl.read_parquet(folder / "deaths.parquet"),
                        DeathReport(**report, table=TableCount(**table) if table is not None else None))
    remember(config.input, config.quality, known)


def _prepare(config: Config, folder: Path) -> None:
    """The staged folder's parent made ready: the output folder claimed as respop's when the
    staged input lies in it; what a killed staging left beside it removed."""
    if config.output.dir is not None and folder.parent == config.output.dir:
        try:
            claim_output_folder(config.output.dir)
        except ValueError as exc:
            raise InputError(f"output.dir: {exc}") from None
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove([p for p in leftovers([folder.parent]) if p.name.startswith(f".{folder.name}.")])


def open_staged(config: Config, manifest: dict | None = None) -> StagedInput:
    """The staged folder of ``config`` as :class:`StagedInput`, its files linked into a private
    workspace of this process (``input.workspace_dir``) when they can be (same file system), so
    that another process replacing the staged folder meanwhile does not pull them away."""
    folder = staged_dir(config)
    manifest = manifest if manifest is not None else _read_manifest(folder)
    if manifest is None:
        raise InputError("no staged input here (run respop pmsi stage)", folder)
    stored = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    _remember_deaths(config, folder)
    workspace = Workspace(config.input.workspace_dir)
    try:
        paths = _link(folder, workspace, manifest["files"])
    except BaseException:
        workspace.close()
        raise
    return StagedInput(
        folder=config.input.pmsi_dir,
        input=config.input,
        quality=config.quality,
        files={year: {} for year in stored["years"]},
        zones=None,
        tables=[],
        flagged_stays=pl.LazyFrame(),
        diagnoses_by_year={},
        raw={},
        workspace=workspace,
        is_staged=True,
        canonical_paths={name: paths[name] for name in ("stays", "diagnoses")},
        paths=paths,
        location=folder,
        stored_report=stored,
        fingerprint=manifest.get("fingerprint", ""),
    )


def _link(folder: Path, workspace: Workspace, files: list[str]) -> dict[str, Path]:
    """name → path of the staged Parquet files (``stays``…, ``quarantine/<file>``): hard links in
    the workspace, or the staged files themselves where links cannot be made."""
    paths: dict[str, Path] = {}
    linked: Path | None = workspace.path() / "staged-input"
    for name in files:
        if not name.endswith(".parquet"):
            continue
        key = name.removesuffix(".parquet").removeprefix("staged/")
        source = folder / name
        if linked is not None:
            target = linked / name
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(source, target)
                paths[key] = target
                continue
            except OSError:
                linked = None  # another file system (or no hard links): read in place
        paths[key] = source
    return paths


def staged_input(
    config: Config, progress: Progress | None = None, notice: Callable[[str], None] | None = None,
    state: dict | None = None,
) -> StagedInput:
    """The staged input of ``config``, reused when its manifest matches the current input
    (:func:`status`), else built (:func:`build`). ``notice`` is told which, and why
    (``staged input reused (fingerprint …)`` / ``staged input rebuilt: T_MCO23B.parquet
    changed``). ``state``: the :func:`staging_state` taken before the input was
    read (default: now)."""
    state, reasons = status(config, state)
    seconds: dict[str, float] = {}
    if reasons:
        seconds = build(config, state, progress)
    data = open_staged(config)
    data.reused, data.reasons, data.seconds = not reasons, reasons, seconds
    if notice is not None:
        notice(describe(data))
    return data


def for_step(config: Config, progress: Progress | None = None, build: bool = True) -> StagedInput | None:
    """The PMSI of a step run on its own (``respop cases run``, ``strata run``, ``territories
    build``): the staged input, as ``respop run`` reads it — reused when it is up to date, else
    validated and staged once (standard error says which, and why). ``build`` false: None when it
    is not up to date, and nothing is built (``territories build`` then reads the raw files of its
    flow years only)."""
    state, reasons = status(config)
    if reasons and not build:
        return None
    return staged_input(config, progress, notice=_notice, state=state)


def _notice(message: str) -> None:
    print(f"respop: {message}", file=sys.stderr, flush=True)


def describe(data: StagedInput) -> str:
    """One line on what :func:`staged_input` did (no patient data: a fingerprint, file names, setting keys)."""
    short = data.fingerprint[:12]
    if data.reused:
        return f"staged input reused (fingerprint {short}) from {data.location}"
    verb = "built" if data.reasons == ["none yet"] else "rebuilt"
    why = "" if verb == "built" else ": " + "; ".join(data.reasons)
    return f"staged input {verb}{why} (fingerprint {short}) in {data.location}"
