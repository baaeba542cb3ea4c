"""Runs that belong together: each step's manifest, and the check that the published steps chain.

Every step writes ``<output.dir>/<step>/manifest.json`` with its outputs, in the same atomic
replacement as the outputs (:func:`stage_folder`):

- ``inputs``: the fingerprints the step was built on —
  - ``input``: the PMSI source (:func:`input_fingerprint`: the names, sizes and modification
    times of the files of ``input.pmsi_dir`` and ``input.reference_dir`` and of
    ``quality.zones_file``, and the ``[input]`` and ``[quality]`` settings);
  - ``settings``: the step's own settings (:func:`settings_fingerprint`: ``[territories]``; the
    ``[cases]`` settings and the algorithm specs; the specs with their strata and the features);
  - the ``outputs`` fingerprint of each earlier step it read (:data:`UPSTREAM`): cases read the
    territories, strata read the cases and the territories (``null``: the step was absent);
  - strata: ``models`` (survival and prediction fitted);
- ``outputs``: SHA-256 of the step's files (names and contents; ``summary.json``, which holds the
  time of writing, is left out, so that the same inputs give the same fingerprint);
- ``files``: each file's size and SHA-256.

:func:`check_chain` (called first by :func:`respop.store.publish.collect`) refuses to publish
outputs that do not belong to one build: a step without manifest, a step built on other input or
settings than the configuration's, or on an earlier step's outputs that have been replaced since
(the case of ``respop run CONFIG --steps territories,cases,store``: care use would be published on
the old territories and indicators on the new ones, and their shared counts would differ by a
moved zone's count). The message names the stale steps and the command that rebuilds them.

Names, sizes and modification times (not contents) fingerprint the PMSI: hashing tens of
gigabytes at every step would cost minutes. Replacing a file by one of the same name, size and
modification time is therefore not seen; copying the files without their times (``cp`` without
``-p``) makes every step stale.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from respop import __version__, periods
from respop.config import Config
from respop.errors import RespopError
from respop.fsutil import atomic_folder, claim_output_folder
from respop.fsutil import stat_file as _stat_file
from respop.fsutil import stat_files as _stat_files

STAGES = ("input", "territories", "cases", "strata", "evaluation")
"""The steps that write outputs, in the order they run (then ``store`` publishes them)."""

UPSTREAM = {"input": (), "territories": (), "cases": ("territories",), "strata": ("territories", "cases"),
            "evaluation": ("territories", "cases", "strata")}
"""The earlier steps whose outputs a step reads (besides the PMSI, which every step reads)."""

REQUIRED = {"strata": ("cases",), "evaluation": ("territories", "cases", "strata")}
"""Earlier steps a step cannot run without."""

SECTIONS = {
    "input": "[input]/[quality]",
    "territories": "[territories]",
    "cases": "[cases] (or diseases, or the algorithm specs)",
    "strata": "[cases] confidence (or diseases, the algorithm specs' [strata], or features.toml)",
    "evaluation": "[evaluation] (or its deprivation file)",
}

OPTIONAL = {
    "territories": lambda config: config.hospital is None,
    "evaluation": lambda config: config.evaluation is not None and config.hospital is None and periods.allowed(config, "evaluation"),
}
"""Steps that belong to a build only when the configuration asks for them: without
``[evaluation]`` an ``evaluation`` folder left by an earlier build is ignored (not published), and
so it is when the data's period does not allow the evaluation (respop.periods: a pilot's start
year without ``min_pre_years`` years of data before it; the run leaves the step out). In
hospital mode (``[hospital]``, docs/hospital.md) the build is ``input``, ``cases`` and ``strata``:
no territories (the scope is the hospital's patients, not a territory's residents), no
evaluation, and nothing is published (the store step refuses)."""


def active_stages(config: Config) -> tuple[str, ...]:
    """The steps of :data:`STAGES` that belong to the configuration's build (:data:`OPTIONAL`)."""
    return tuple(s for s in STAGES if OPTIONAL.get(s, lambda c: True)(config))

MANIFEST = "manifest.json"
UNFINGERPRINTED = frozenset({MANIFEST, "summary.json"})
FORMAT = 1
UNRECORDED = "unrecorded"
"""An earlier step's fingerprint when its folder has no manifest."""


class StageError(RespopError):
    """A step's outputs cannot be published or replaced (stale, foreign or without manifest)."""


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


# -- fingerprints -----------------------------------------------------------------------------


def input_fingerprint(config: Config) -> dict:
    """The PMSI source of a configuration: ``pmsi`` (the files of ``input.pmsi_dir``),
    ``reference`` (the files of ``input.reference_dir`` and ``quality.zones_file``) and
    ``settings`` (``[input]`` and ``[quality]`` but their paths), each a SHA-256."""
    skip = _not_input(config)
    settings = {
        "input": config.input.model_dump(mode="json", exclude={"pmsi_dir", "reference_dir", "workspace_dir", "staged_dir"}),
        "quality": config.quality.model_dump(mode="json", exclude={"zones_file"}),
    }
    if config.hospital is not None:  # hospital mode: the hospital's stays only (population mode unchanged)
        settings["hospital"] = config.hospital.finess
    return {
        "pmsi": _digest(_stat_files(config.input.pmsi_dir, skip)),
        "reference": _digest({"dir": _stat_files(config.input.reference_dir, skip), "zones_file": _stat_file(config.quality.zones_file)}),
        "settings": _digest(settings),
    }


def _not_input(config: Config) -> tuple[Path, ...]:
    """respop's own folders, never counted as input even when they lie in an input folder: the
    output folder, the private workspace and the staged input."""
    folders = (config.output.dir, config.input.workspace_dir, config.input.staged_dir)
    return tuple(p for p in folders if p is not None)


def _table_or_name(value: str, names: tuple[str, ...]):
    """A setting that is a keyword or the path of a table: the keyword, or the table's content."""
    if value in names:
        return value
    path = Path(value)
    return {"table": path.name, "sha256": _file_sha256(path) if path.is_file() else None}


def settings_fingerprint(config: Config, stage: str) -> str:
    """SHA-256 of the settings a step's outputs depend on (beyond its input; paths replaced by
    the content of the files they name)."""
    if stage == "input":
        payload: object = {}
    elif stage == "territories":
        payload = config.territories.model_dump(mode="json")
        payload["hospital_grouping"] = _table_or_name(config.territories.hospital_grouping, ("establishment", "town"))
    elif stage == "cases":
        from respop.spec.loaders import load_specs

        cases = config.cases.model_dump(mode="json", exclude={"algorithms_dir"})
        cases["reference_population"] = _table_or_name(config.cases.reference_population, ("population", "esp2013"))
        specs = load_specs(list(config.diseases), config.cases.algorithms_dir)
        payload = {"diseases": list(config.diseases), "cases": cases,
                   "specs": [s.model_dump(mode="json", exclude={"strata"}) for s in specs]}
    elif stage == "strata":
        from respop.spec.loaders import load_specs
        from respop.spec.features import load_features

        specs = load_specs(list(config.diseases), config.cases.algorithms_dir)
        payload = {"diseases": list(config.diseases), "confidence": config.cases.confidence,
                   "specs": [s.model_dump(mode="json") for s in specs],
                   "features": load_features(config.cases.algorithms_dir).model_dump(mode="json")}
    elif stage == "evaluation":
        evaluation = config.evaluation
        payload = evaluation.model_dump(mode="json", exclude={"deprivation_file"}) if evaluation is not None else None
        if evaluation is not None and evaluation.deprivation_file is not None:
            payload["deprivation_file"] = _table_or_name(str(evaluation.deprivation_file), ())
    else:
        raise ValueError(f"unknown step {stage!r}; steps: {', '.join(STAGES)}")
    return _digest(payload)


def read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == FORMAT else None


def outputs_fingerprint(folder: Path) -> str | None:
    """The recorded outputs fingerprint of a step's folder: None when the folder is absent,
    :data:`UNRECORDED` when it has no manifest."""
    if not folder.exists():
        return None
    manifest = read_manifest(folder)
    return manifest["outputs"] if manifest is not None else UNRECORDED


def stage_inputs(config: Config, stage: str, input: dict | None = None, models: bool = True) -> dict:
    """What a step is built on, read when it starts (before it reads the earlier steps'
    outputs): ``input`` (:func:`input_fingerprint`; pass the one taken before the PMSI was read),
    ``settings``, the earlier steps' outputs fingerprints, and for strata ``models``."""
    inputs: dict = {"input": input if input is not None else input_fingerprint(config),
                    "settings": settings_fingerprint(config, stage)}
    active = active_stages(config)
    for earlier in UPSTREAM[stage]:
        # a step that is not part of this build (hospital mode's territories) is not read
        inputs[earlier] = outputs_fingerprint(config.output.dir / earlier) if earlier in active else None
    if stage == "strata":
        inputs["models"] = models
    return inputs


def _files(folder: Path) -> dict[str, dict]:
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink()):
        name = path.relative_to(folder).as_posix()
        if name == MANIFEST:
            continue
        out[name] = {"bytes": path.stat().st_size, "sha256": _file_sha256(path)}
    return out


def write_manifest(folder: Path, stage: str, inputs: dict) -> dict:
    """Hash the files of ``folder`` (a step's outputs, complete) and write its manifest there."""
    files = _files(folder)
    outputs = _digest({name: f["sha256"] for name, f in files.items() if name not in UNFINGERPRINTED})
    manifest = {
        "format": FORMAT,
        "stage": stage,
        "respop_version": __version__,
        "written": dt.datetime.now().isoformat(timespec="seconds"),
        "inputs": inputs,
        "outputs": outputs,
        "files": files,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    return manifest


def _foreign_files(folder: Path, manifest: dict) -> list[str]:
    """Files in a step's folder that its manifest does not list."""
    listed = set(manifest.get("files", {})) | {MANIFEST}
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if (p.is_file() or p.is_symlink()) and p.relative_to(folder).as_posix() not in listed
    )


@contextmanager
def stage_folder(config: Config, stage: str, inputs: dict) -> Iterator[Path]:
    """Where a step writes its outputs: a temporary folder that replaces ``<output.dir>/<stage>``
    with the manifest once the body has written everything (:func:`respop.fsutil.atomic_folder`).

    The output folder is created and marked as respop's if needed (a folder respop did not create
    is refused); a step's folder that holds files its manifest does not list (put there by
    someone else) is not replaced."""
    out = config.output.dir
    try:
        claim_output_folder(out)
    except ValueError as exc:
        raise StageError(f"output.dir: {exc}") from None
    target = out / stage
    manifest = read_manifest(target) if target.is_dir() else None
    if manifest is not None:
        foreign = _foreign_files(target, manifest)
        if foreign:
            shown = ", ".join(foreign[:5]) + (", …" if len(foreign) > 5 else "")
            raise StageError(
                f"{target} holds files respop did not write ({shown}): move them out; respop replaces this "
                "folder with the step's outputs"
            )
    with atomic_folder(target) as tmp:
        yield tmp
        write_manifest(tmp, stage, inputs)


# -- the check before publishing ----------------------------------------------------------------


def _input_reasons(recorded, current: dict) -> list[str]:
    if not isinstance(recorded, dict):
        return ["was built on an unrecorded input"]
    what = {"pmsi": "PMSI files", "reference": "reference tables (or quality.zones_file)", "settings": "[input]/[quality] settings"}
    return [f"was built on other {label} than the configuration's (changed since)" for key, label in what.items()
            if recorded.get(key) != current[key]]


def _file_reasons(folder: Path, manifest: dict) -> list[str]:
    reasons = []
    for name, record in manifest.get("files", {}).items():
        path = folder / name
        if not path.is_file():
            reasons.append(f"lacks {name} (removed since respop wrote it)")
        elif path.stat().st_size != record.get("bytes"):
            reasons.append(f"{name} was changed since respop wrote it")
    foreign = _foreign_files(folder, manifest)
    if foreign:
        reasons.append(f"holds files respop did not write ({', '.join(foreign[:5])})")
    return reasons


def stale_stages(config: Config) -> dict[str, list[str]]:
    """Each step of ``<output.dir>`` that does not belong to the current build, with its reasons
    (empty: every step present chains)."""
    out = config.output.dir
    present = [s for s in active_stages(config) if (out / s).exists()]
    manifests = {s: read_manifest(out / s) for s in present}
    current_input = input_fingerprint(config) if present else None
    problems: dict[str, list[str]] = {}
    for stage in present:
        manifest = manifests[stage]
        if manifest is None:
            problems[stage] = ["has no manifest: it was written by an earlier version of respop, or not by respop"]
            continue
        recorded = manifest.get("inputs", {})
        reasons = _file_reasons(out / stage, manifest)
        reasons += _input_reasons(recorded.get("input"), current_input)
        if recorded.get("settings") != settings_fingerprint(config, stage):
            reasons.append(f"was built with other {SECTIONS[stage]} settings than the configuration's")
        for earlier in UPSTREAM[stage]:
            if earlier in present and manifests[earlier] is None:
                continue  # the earlier step is stale itself; this one is rebuilt after it
            now = manifests[earlier]["outputs"] if earlier in present else None
            before = recorded.get(earlier)
            if before == now:
                continue
            if now is None:
                reasons.append(f"was built on {earlier} that are no longer there")
            elif before is None:
                reasons.append(f"was built without {earlier} (before they were built)")
            else:
                reasons.append(f"was built on {earlier} of an earlier build")
        if stage == "strata" and recorded.get("models") is False and config.hospital is None:  # hospital mode fits none
            reasons.append("was built without survival and prediction (--no-models)")
        if reasons:
            problems[stage] = reasons
    return problems


def rebuild_steps(config: Config, problems: dict[str, list[str]]) -> list[str]:
    """The steps to run again: the stale ones, the present steps built on them, and the steps a
    rebuilt step cannot run without."""
    out = config.output.dir
    rebuild: set[str] = set()
    for stage in active_stages(config):
        if stage in problems or ((out / stage).exists() and any(e in rebuild for e in UPSTREAM[stage])):
            rebuild.add(stage)
    for stage in list(rebuild):
        rebuild.update(r for r in REQUIRED.get(stage, ()) if not (out / r).exists())
    return [s for s in active_stages(config) if s in rebuild]


def check_chain(config: Config, config_path: str | Path | None = None) -> None:
    """Refuse (:class:`StageError`) to publish outputs that do not belong to one build (module
    docstring), naming the stale steps and the command that rebuilds them."""
    problems = stale_stages(config)
    if not problems:
        return
    steps = rebuild_steps(config, problems)
    name = str(config_path) if config_path is not None else "CONFIG"
    command = f"respop run {name}" if len(steps) == len(active_stages(config)) else f"respop run {name} --steps {','.join([*steps, 'store'])}"
    lines = [f"  - {stage} {reason}" for stage, reasons in problems.items() for reason in reasons]
    raise StageError(
        f"{config.output.dir}: not published, the steps' outputs do not belong to one build:\n"
        + "\n".join(lines)
        + f"\nrun `{command}`"
    )
