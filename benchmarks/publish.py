"""Benchmark: the cost of the store step (disclosure control and writing), before and after a change.

    .venv/bin/python benchmarks/publish.py --prepare-only --code /work/main-047b22a   # data + private outputs, once
    .venv/bin/python benchmarks/publish.py --label before --code /work/before --repeat 3 --audit-stats
    .venv/bin/python benchmarks/publish.py --label after --repeat 3 --audit-stats     # this checkout; × before
    .venv/bin/python benchmarks/publish.py --show [--markdown]                        # the tables from results.jsonl

Configurations (``--configs``, comma-separated, default ``demo,national-5y``):

- ``demo``: ``respop synth --profile demo --seed 1`` in ``benchmarks/out/publish/demo/data``, the
  configuration ``territories/demo.toml`` with its paths pointed there;
- ``national-5y``: the national world of benchmarks/case_finding.py and scale.py
  (``respop synth --profile national --seed 1``, 2019-2023) in ``benchmarks/out/cases/national``,
  the configuration ``benchmarks/national.toml`` (every year of the data, territories on 2023).

**Prepare** (``--prepare``: when missing; ``--prepare-only``: and stop). The data are generated
when absent, then ``respop run CONFIG --steps input,territories,cases,strata`` writes the private
outputs the store step reads to ``benchmarks/out/publish/<config>/run/``; ``prepared.json`` next to
it records the commit that wrote them, the seconds and the peak memory. The measurements of every
label read the same private outputs, so that only the store step's code differs between them.

**Measure.** Each repeat is a fresh process (``benchmarks/publish.py --child``) running
``respop.pipeline.publish`` (``collect`` then ``Store.write``, as ``respop run`` does) into a fresh
SQLite store, ``benchmarks/out/publish/<config>/stores/<label>.sqlite`` (kept, for comparing the
masks cell by cell). ``--code DIR`` puts another checkout of respop first on the child's
``PYTHONPATH`` (e.g. ``git worktree add --detach /work/before ceeebeb``); the child checks that it
imported respop from there. ``--direct``: ``Store(url).write(collect(config, path, {}))`` instead
of ``respop.pipeline.publish`` (for a commit whose ``pipeline.publish`` does not run). Measured:

- ``collect s``: ``respop.store.publish.collect``; ``write s``: ``Store.write`` (schema migrations
  on the empty store, then the rows); wall-clock, and the process's CPU seconds; the parts of each (``--parts``) by wrapping functions of
  the measured code with timers (nested parts are included in their parent's seconds);
- ``peak GB``: the child's resident-memory high-water mark (``VmHWM``, as benchmarks/pmsi_read.py
  measures it), interpreter, imports and reading the outputs included; also just after collect;
- ``cells`` / ``masked``: read back from the store, the count cells of every published table
  (``COUNT_CELLS``) and those that are NULL. Indicators, care use and transitions are matched
  with their private rows (``PRIVATE_SOURCES``): there a NULL is a mask only where the private
  count exists, and a masked cell is *primary* (1 to 10) or *complementary*. Care-use counts that
  the code does not publish per zone (``ZONE_HIDDEN_COUNTS`` of the measured code) are counted
  apart (``not published``), not as masked;
- what the publication reports of its audit (audited / unaudited cells, when the measured code
  reports them in ``Publication.run`` or on the ``Publication``);
- the machine: the load average before and after, and the CPU seconds other processes used
  during the child's run (the machine's busy time minus the child's), to judge the seconds.

``--repeat N`` runs N fresh processes and keeps the fastest (``collect + write``); the masks must
be the same in every repeat (checked). Results are appended as one JSON line per (config, label)
to ``benchmarks/out/publish/results.jsonl``; the table shows the latest line of each (config,
label) and its ratio to the latest line of ``--baseline`` (default ``before``) of the same config.
Nothing is asserted (benchmarks/README.md).

``--audit-stats``: one more, untimed, child per config that wraps the measured code's
``respop.privacy.disclosure.suppress`` and records, per call, the masked cells and the sizes of
their connected groups (cells joined by a relation with two masked members), with the number of
masked cells in groups larger than the code's ``MAX_AUDIT_CELLS`` (those its audit skips).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out" / "publish"
RESULTS = OUT / "results.jsonl"
NATIONAL_DATA = ROOT / "benchmarks" / "out" / "cases" / "national"
CONFIGS = ("demo", "national-5y")
PREPARE_STEPS = "input,territories,cases,strata"

COUNT_CELLS: dict[str, dict[str, str | None]] = {
    "territories": {"stays_residents": None},
    "flows": {"stays": None},
    "indicators": {"cases": None, "incident_cases": None, "cases_outside": None, "cases_unstandardised": None},
    "care_use": {c: None for c in ("people", "stays", "emergency_stays", "bed_days", "readmissions_30d", "deaths")},
    "transitions": {"count": None},
    "survival_tests": {"n": "kind IN ('logrank', 'cox')", "events": "kind = 'cox'"},
    "model_calibration": {"n": None},
    "quality": {"rows": None},
}
"""Count columns of the published tables (people, stays, rows: masked below 11), with the rows
where the column holds a count (SQL; None: every row). Survival tests: a log-rank test publishes
its numbers of people, not its events; a proportional-hazards test neither."""

PRIVATE_SOURCES = {
    "indicators": ("cases/indicators.parquet", ["disease", "year", "level", "unit", "subtype"]),
    "care_use": ("strata/care_use.parquet", ["disease", "year", "level", "unit", "stratum"]),
    "transitions": ("strata/transitions.parquet", ["disease", "year", "from_stratum", "to_stratum"]),
}
"""Private outputs published row for row (matched on their keys): a published NULL is a mask only
where the private count exists, and each masked cell is *primary* (its count is 1 to 10) or
*complementary* (masked to protect others). Transitions get their row totals (``to = 'all'``)."""
SMALL = range(1, 11)
"""Counts never published (1 to 10 people or stays)."""

DEFAULT_PARTS = [
    ("read outputs", "respop.store.publish:read_indicators"),
    ("read outputs", "respop.store.publish:read_care_use"),
    ("read outputs", "respop.store.publish:read_transitions"),
    ("read outputs", "respop.store.publish:read_survival_starts"),
    ("territories", "respop.store.publish:territory_tables"),
    ("flows", "respop.store.publish:flows_table"),
    ("joint masks", "respop.store.publish:shared_count_masks"),
    ("indicators", "respop.store.publish:indicators_table"),
    ("care use", "respop.store.publish:care_use_table"),
    ("transitions", "respop.store.publish:transitions_table"),
    ("survival", "respop.store.publish:survival_curves_table"),
    ("survival", "respop.store.publish:survival_tests_table"),
    ("models", "respop.store.publish:model_tables"),
    ("quality", "respop.store.publish:quality_table"),
    ("fingerprint", "respop.store.publish:Publication.fingerprint"),
    ("suppression", "respop.privacy.disclosure:suppress"),
    ("suppression", "respop.privacy.disclosure:suppress_together"),
    ("audit", "respop.privacy.disclosure:_exposed_groups"),
    ("audit", "respop.privacy.audit:audit"),
    # the same functions where code before 2026-12-06 had them (--code of an earlier commit)
    ("suppression", "respop.store.disclosure:suppress"),
    ("suppression", "respop.store.disclosure:suppress_together"),
    ("audit", "respop.store.disclosure:_exposed_groups"),
    ("audit", "respop.store.audit:audit"),
    ("write: schema", "respop.store.db:Store.upgrade"),
    ("write: rows", "respop.store.db:Store._insert"),
]
"""Parts timed inside collect and write: (label, module:function or module:Class.method).
Functions the measured code does not have are skipped; one label may gather several functions;
a function is timed wherever it is bound (``from x import f`` included), once per outermost call."""


# --------------------------------------------------------------------------------------------
# The child: one measurement in a fresh process
# --------------------------------------------------------------------------------------------


def _peak_gb() -> float:
    """High-water mark of this process's resident memory (VmHWM; as benchmarks/pmsi_read.py), GB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 2**30
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**30 if sys.platform == "darwin" else rss * 1024 / 2**30


class Timers:
    """Seconds per label, counted once per outermost call of the label's functions."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.depth: dict[str, int] = {}
        self.found: dict[str, list[str]] = {}

    def wrap(self, label: str, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            depth = self.depth.get(label, 0)
            self.depth[label] = depth + 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.depth[label] = depth
                if depth == 0:
                    self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - start
                    self.calls[label] = self.calls.get(label, 0) + 1

        timed.__wrapped_by_benchmark__ = True
        return timed


def _patch(label: str, spec: str, wrapper_of) -> str | None:
    """Replace the function of ``spec`` wherever a loaded respop module binds it; None when absent."""
    import importlib

    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    owner, name = module, attr
    if "." in attr:
        cls_name, name = attr.split(".", 1)
        owner = getattr(module, cls_name, None)
        if owner is None:
            return None
    original = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name, None)
    if original is None or not callable(original):
        return None
    if isinstance(original, (staticmethod, classmethod)):
        wrapped = type(original)(wrapper_of(label, original.__func__))
    else:
        wrapped = wrapper_of(label, original)
    setattr(owner, name, wrapped)
    if not isinstance(owner, type):  # also the names other modules imported it under
        for mod_name, mod in list(sys.modules.items()):
            if mod is None or not mod_name.startswith("respop") or mod is module:
                continue
            for key, value in list(vars(mod).items()):
                if value is original:
                    setattr(mod, key, wrapped)
    return spec


def _jsonable(value, depth: int = 0):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict) and depth < 3:
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and depth < 3:
        return [_jsonable(v, depth + 1) for v in value[:50]]
    if hasattr(value, "__dataclass_fields__") and depth < 3:
        return {k: _jsonable(getattr(value, k), depth + 1) for k in value.__dataclass_fields__}
    return repr(value)[:500]


AUDIT_WORDS = ("audit", "disclosure", "suppress", "mask", "protect")


def _audit_report(publication) -> dict:
    """What the publication says of its disclosure control: keys of ``run`` and attributes other
    than ``run`` and ``tables`` whose name speaks of audit, masks or disclosure."""
    out = {}
    for key, value in (publication.run or {}).items():
        if any(w in key.lower() for w in AUDIT_WORDS):
            out[f"run.{key}"] = _jsonable(value)
    names = set(getattr(publication, "__dataclass_fields__", {})) | set(vars(publication))
    for key in sorted(names - {"run", "tables"}):
        out[key] = _jsonable(getattr(publication, key, None))
    return out


def _match_private(con, table: str, run_id: int, output_dir: Path, columns: list[str]):
    """The published rows of ``table`` with their private counts (``<column>__private``) matched on
    the keys of :data:`PRIVATE_SOURCES`; ``_unmatched``: a published row without a private row."""
    import polars as pl

    if table not in PRIVATE_SOURCES:
        return None
    source, keys = PRIVATE_SOURCES[table]
    path = output_dir / source
    if not path.is_file():
        return None
    private = pl.read_parquet(path)
    if table == "transitions":
        private = private.rename({"from": "from_stratum", "to": "to_stratum"})
        totals = private.group_by("disease", "year", "from_stratum").agg(pl.lit("all").alias("to_stratum"), pl.col("count").sum())
        private = pl.concat([totals, private.select(totals.columns)], how="vertical_relaxed")
    names = ", ".join(f'"{c}"' for c in [*keys, *columns])
    rows = con.execute(f'SELECT {names} FROM "{table}" WHERE run_id = ?', (run_id,)).fetchall()
    published = pl.DataFrame(rows, schema=[*keys, *columns], orient="row", infer_schema_length=None)
    norm = [pl.col("year").cast(pl.Int64), *[pl.col(k).cast(pl.String) for k in keys if k != "year"]]
    private = private.select([*keys, *columns]).with_columns(norm).rename({c: f"{c}__private" for c in columns})
    private = private.with_columns(pl.lit(False).alias("_unmatched"))
    out = published.with_columns(norm).join(private, on=keys, how="left", nulls_equal=True)
    return out.with_columns(pl.col("_unmatched").fill_null(True))


def _count_cells(store_path: Path, run_id: int, output_dir: Path, hidden_per_zone: list[str]) -> dict:
    """Count cells and NULL (masked) cells per table and column, read back from the store."""
    import sqlite3

    import polars as pl

    con = sqlite3.connect(store_path)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        rows = {}
        for t in sorted(tables):
            cols = {r[1] for r in con.execute(f'PRAGMA table_info("{t}")')}
            if "run_id" in cols and t != "runs":
                rows[t] = con.execute(f'SELECT count(*) FROM "{t}" WHERE run_id = ?', (run_id,)).fetchone()[0]
        by_table: dict[str, dict] = {}
        for table, columns in COUNT_CELLS.items():
            if table not in tables:
                continue
            cols = {r[1] for r in con.execute(f'PRAGMA table_info("{table}")')}
            matched = _match_private(con, table, run_id, output_dir, [c for c in columns if c in cols])
            for column, where in columns.items():
                if column not in cols:
                    continue
                condition = f"run_id = ? AND ({where})" if where else "run_id = ?"
                hidden = table == "care_use" and column in hidden_per_zone and "level" in cols
                published = condition + (" AND level <> 'zone'" if hidden else "")
                cells, nulls = con.execute(
                    f'SELECT count(*), coalesce(sum("{column}" IS NULL), 0) FROM "{table}" WHERE {published}', (run_id,)
                ).fetchone()
                entry = {"cells": cells, "null": nulls, "masked": nulls, "not_published": 0}
                if matched is not None:
                    frame = matched.filter(pl.col("level") != "zone") if hidden else matched
                    private, public = pl.col(f"{column}__private"), pl.col(column)
                    masked = public.is_null() & private.is_not_null()
                    small = private.is_between(SMALL.start, SMALL.stop - 1)
                    got = frame.select(
                        masked.sum().alias("masked"), (masked & small).sum().alias("primary"),
                        (masked & ~small).sum().alias("complementary"), private.is_null().sum().alias("private_null"),
                        (public.is_not_null() & small).sum().alias("small_published"),
                        pl.col("_unmatched").sum().alias("unmatched"),
                    ).row(0, named=True)
                    entry.update({k: int(v) for k, v in got.items()})
                if hidden:
                    entry["not_published"] = con.execute(
                        f"SELECT count(*) FROM \"{table}\" WHERE {condition} AND level = 'zone'", (run_id,)
                    ).fetchone()[0]
                if "level" in cols:
                    entry["by_level"] = {
                        level: {"cells": c, "null": n}
                        for level, c, n in con.execute(
                            f'SELECT level, count(*), coalesce(sum("{column}" IS NULL), 0) FROM "{table}" '
                            f"WHERE {published} GROUP BY level ORDER BY level", (run_id,)
                        )
                    }
                by_table.setdefault(table, {})[column] = entry
        curves = None
        if "survival_curves" in tables:
            curves = con.execute(
                "SELECT count(*) FROM (SELECT DISTINCT disease, stratum FROM survival_curves WHERE run_id = ?)", (run_id,)
            ).fetchone()[0]
        run_row = con.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        run_cols = [d[0] for d in con.execute("SELECT * FROM runs LIMIT 0").description]
        run = dict(zip(run_cols, run_row)) if run_row else {}
    finally:
        con.close()
    cells = sum(e["cells"] for t in by_table.values() for e in t.values())
    masked = sum(e["masked"] for t in by_table.values() for e in t.values())
    return {
        "cells": cells, "masked": masked, "by_table": by_table, "rows": rows, "survival_curves_published": curves,
        "status": run.get("status"), "results_sha256": run.get("results_sha256"),
        "store_audit_columns": {k: _jsonable(v) for k, v in run.items() if any(w in k.lower() for w in AUDIT_WORDS)},
    }


def _child_measure(job: dict) -> dict:
    t_start = time.perf_counter()
    import respop

    source = Path(respop.__file__).resolve().parent.parent
    if job.get("code") and source != Path(job["code"]).resolve():
        raise SystemExit(f"respop imported from {source}, not from --code {job['code']}")
    import respop.pipeline as pipeline
    import respop.store.db as db
    import respop.store.publish as publish_module  # loads the disclosure rules: their bindings are found
    from respop.config import load_config

    imports_s = time.perf_counter() - t_start
    timers = Timers()
    found = []
    for label, spec in job["parts"]:
        if _patch(label, spec, timers.wrap):
            found.append([label, spec])
    captured: dict = {}
    collect_original = publish_module.collect
    write_original = db.Store.write
    state = {}

    def collect(*args, **kwargs):
        start, cpu = time.perf_counter(), time.process_time()
        publication = collect_original(*args, **kwargs)
        captured["collect_s"] = time.perf_counter() - start
        captured["collect_cpu_s"] = time.process_time() - cpu
        captured["publication"] = publication
        state["peak_after_collect"] = _peak_gb()
        return publication

    def write(self, *args, **kwargs):
        start, cpu = time.perf_counter(), time.process_time()
        try:
            return write_original(self, *args, **kwargs)
        finally:
            captured["write_s"] = time.perf_counter() - start
            captured["write_cpu_s"] = time.process_time() - cpu

    publish_module.collect = collect
    db.Store.write = write
    config_path = Path(job["config"])
    config = load_config(config_path)
    store_path = Path(job["store"])
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(store_path) + suffix).unlink(missing_ok=True)
    peak_before = _peak_gb()
    start = time.perf_counter()
    run_id = _publish(pipeline, db, publish_module, config, config_path, job.get("direct"))
    publish_s = time.perf_counter() - start
    peak = _peak_gb()
    publication = captured["publication"]
    hidden = list(getattr(publish_module, "ZONE_HIDDEN_COUNTS", []))
    counted = _count_cells(store_path, run_id, config.output.dir, hidden)
    return {
        "respop": str(source), "imports_s": round(imports_s, 2), "run_id": run_id,
        "collect_s": round(captured["collect_s"], 3), "write_s": round(captured.get("write_s", float("nan")), 3),
        "publish_s": round(publish_s, 3), "collect_cpu_s": round(captured["collect_cpu_s"], 3),
        "write_cpu_s": round(captured.get("write_cpu_s", float("nan")), 3),
        "parts": {k: round(v, 3) for k, v in timers.seconds.items()}, "part_calls": timers.calls, "parts_found": found,
        "peak_gb": round(peak, 3), "peak_gb_after_collect": round(state.get("peak_after_collect", float("nan")), 3),
        "peak_gb_before_publish": round(peak_before, 3),
        "audit_report": _audit_report(publication), "zone_hidden_counts": hidden,
        "store_bytes": store_path.stat().st_size + sum(
            Path(str(store_path) + s).stat().st_size for s in ("-wal",) if Path(str(store_path) + s).is_file()),
        **counted,
    }


def _publish(pipeline, db, publish_module, config, config_path: Path, direct: bool) -> int:
    """``respop.pipeline.publish`` (what ``respop run`` does), or with ``direct``
    ``Store(url).write(collect(config, config_path, {}))`` (for a commit whose ``pipeline.publish``
    does not run, e.g. it imports a module that was not committed)."""
    if not direct:
        return pipeline.publish(config, config_path, {})
    store = db.Store(config.store.url)
    try:
        return store.write(publish_module.collect(config, config_path, {}))
    finally:
        store.close()


def _groups(masked, relations) -> list[int]:
    """Sizes of the connected groups of masked cells (joined by a relation with 2+ masked members)."""
    cells = [i for i, m in enumerate(masked) if m]
    parent = {c: c for c in cells}

    def find(c: int) -> int:
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    for r in relations:
        members = [c for c in (*r.parts, r.total) if masked[c]]
        for c in members[1:]:
            a, b = find(c), find(members[0])
            if a != b:
                parent[a] = b
    sizes: dict[int, int] = {}
    for c in cells:
        root = find(c)
        sizes[root] = sizes.get(root, 0) + 1
    return sorted(sizes.values(), reverse=True)


def _child_audit_stats(job: dict) -> dict:
    """Untimed: per call of ``suppress`` of the measured code, the masked cells and their groups."""
    import respop
    import respop.pipeline as pipeline
    import respop.privacy.disclosure as disclosure
    from respop.config import load_config

    try:
        import respop.privacy.audit as audit_module
    except ImportError:
        audit_module = None
    limit = getattr(audit_module, "MAX_AUDIT_CELLS", None) or getattr(disclosure, "MAX_AUDIT_CELLS", None)
    calls: list[dict] = []
    together = {"depth": 0}

    def wrap_suppress(label, fn):
        @functools.wraps(fn)
        def wrapped(counts, relations, *args, **kwargs):
            masked = fn(counts, relations, *args, **kwargs)
            sizes = _groups(masked, relations)
            entry = {"cells": len(counts), "relations": len(relations), "masked": sum(masked), "groups": len(sizes),
                     "largest": sizes[0] if sizes else 0, "over_limit": sum(s for s in sizes if limit and s > limit),
                     "joint": together["depth"] > 0}
            if together["depth"] > 0 and calls and calls[-1]["joint"] and calls[-1].get("open"):
                calls[-1] = {**entry, "open": True}  # suppress_together: keep its last call only
            else:
                calls.append({**entry, "open": together["depth"] > 0})
            return masked
        return wrapped

    def wrap_together(label, fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            together["depth"] += 1
            try:
                return fn(*args, **kwargs)
            finally:
                together["depth"] -= 1
                if calls and calls[-1].get("open"):
                    calls[-1]["open"] = False
        return wrapped

    import respop.store.publish  # noqa: F401 - bindings to patch

    for module in ("respop.privacy.disclosure", "respop.store.disclosure"):  # now, before 2026-12-06
        _patch("suppress", f"{module}:suppress", wrap_suppress)
        _patch("together", f"{module}:suppress_together", wrap_together)
    config_path = Path(job["config"])
    store_path = Path(job["store"])
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(store_path) + suffix).unlink(missing_ok=True)
    import respop.store.db as db
    import respop.store.publish as publish_module

    _publish(pipeline, db, publish_module, load_config(config_path), config_path, job.get("direct"))
    for c in calls:
        c.pop("open", None)
    return {"respop": str(Path(respop.__file__).resolve().parent.parent), "max_audit_cells": limit, "calls": calls,
            "masked": sum(c["masked"] for c in calls), "largest_group": max((c["largest"] for c in calls), default=0),
            "over_limit": sum(c["over_limit"] for c in calls)}


def _child_main(argv: list[str]) -> None:
    job = json.loads(argv[0])
    result = _child_audit_stats(job) if job.get("mode") == "audit-stats" else _child_measure(job)
    print("RESULT " + json.dumps(result, default=str))


# --------------------------------------------------------------------------------------------
# The driver
# --------------------------------------------------------------------------------------------


def git_version(code: Path) -> dict:
    """Commit of a checkout, and whether its respop/ has uncommitted changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=code, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "respop"], cwd=code, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": None, "changed": []}
    return {"commit": commit, "dirty": bool(dirty), "changed": [line[3:] for line in dirty.splitlines()]}


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine spent busy since boot (all processes; /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


def tree_rss(pid: int) -> int:
    """Resident memory (bytes) of a process and all its descendants (/proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [pid]
    page = os.sysconf("SC_PAGE_SIZE")
    while todo:
        p = todo.pop()
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            pass
        todo += children.get(p, [])
    return total


def measure_process(cmd: list[str], log: Path, env: dict) -> dict:
    """Run ``cmd`` (cwd = the repository), its output to ``log``: wall seconds, CPU seconds and the
    peak of the summed resident memory of the process tree, polled every 0.5 s (as benchmarks/scale.py
    measures a run, without psutil)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    peak = 0
    with log.open("w") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
        while proc.poll() is None:
            peak = max(peak, tree_rss(proc.pid))
            time.sleep(0.5)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"returncode": proc.returncode, "wall_seconds": round(time.perf_counter() - start, 1),
            "cpu_seconds": round(after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime, 1),
            "peak_gb": round(peak / 2**30, 2), "load": [round(load, 2), round(os.getloadavg()[0], 2)],
            "output": log.read_text(errors="replace")}


def child_env(code: Path | None) -> dict:
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), env.get("PYTHONPATH")]))
    return env


def run_child(job: dict, code: Path | None, log: Path) -> dict:
    """One fresh process; its result, its CPU seconds and the other processes' CPU seconds meanwhile."""
    log.parent.mkdir(parents=True, exist_ok=True)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy = busy_cpu_seconds()
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(job)], cwd=ROOT,
                          env=child_env(code), capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime
    log.write_text(f"$ {job}\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"the measurement failed (exit {proc.returncode}, log {log}):\n{proc.stderr[-4000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    result.update(wall_s=round(wall, 2), cpu_s=round(own, 1), others_cpu_s=round(max(busy_cpu_seconds() - busy - own, 0.0), 1),
                  load=[round(load, 2), round(os.getloadavg()[0], 2)])
    return result


# -- configurations ---------------------------------------------------------------------------


def _substitute(text: str, replacements: dict[str, str], source: Path) -> str:
    for old, new in replacements.items():
        if old not in text:
            raise SystemExit(f"{source} no longer contains {old!r}: update benchmarks/publish.py")
        text = text.replace(old, new)
    return text


DISEASES = ["diabetes", "heart_failure"]
"""The diseases of every measurement: those of 'before' (ceeebeb), so that the labels compare the
store step's code on the same counts (a configuration without ``diseases`` now runs every shipped
spec, BPCO included)."""


def config_text(name: str, store: Path) -> str:
    """The configuration of ``name`` with its data, outputs and store under benchmarks/out/."""
    folder = OUT / name
    if name == "demo":
        source = ROOT / "territories" / "demo.toml"
        data = folder / "data"
        text = _substitute(source.read_text(encoding="utf-8"), {
            "sqlite:///../output/demo/respop.sqlite": f"sqlite:///{store}",
            "../output/demo/data": str(data),
            "../output/demo/run": str(folder / "run"),
        }, source)
    elif name == "national-5y":
        source = ROOT / "benchmarks" / "national.toml"
        text = _substitute(source.read_text(encoding="utf-8"), {
            "sqlite:///out/dashboard/national.sqlite": f"sqlite:///{store}",
            "out/cases/national": str(NATIONAL_DATA),
            "out/dashboard/national-run": str(folder / "run"),
        }, source)
    else:
        raise SystemExit(f"unknown configuration {name!r} (known: {', '.join(CONFIGS)})")
    # the two diseases every label was measured on (the third, BPCO, came after 'before')
    diseases = "diseases = [" + ", ".join(f'"{d}"' for d in DISEASES) + "]\n"
    return f"# Written by benchmarks/publish.py from {source.relative_to(ROOT)}.\n" + diseases + text


def write_config(name: str, label: str) -> tuple[Path, Path]:
    """The configuration file of one label's measurement and its store (fresh: deleted first)."""
    folder = OUT / name
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)
    store = folder / "stores" / f"{safe}.sqlite"
    store.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(store) + suffix).unlink(missing_ok=True)
    path = folder / "configs" / f"{safe}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config_text(name, store), encoding="utf-8")
    return path, store


def data_folder(name: str) -> Path:
    return OUT / "demo" / "data" if name == "demo" else NATIONAL_DATA


def prepared(name: str) -> dict | None:
    path = OUT / name / "prepared.json"
    if not path.is_file() or not (OUT / name / "run" / "strata" / "summary.json").is_file():
        return None
    return json.loads(path.read_text())


def prepare(name: str, code: Path | None, console) -> dict:
    """Generate the data when absent, then the private outputs through the strata step."""
    folder = OUT / name
    data = data_folder(name)
    env = child_env(code)
    version = git_version(code or ROOT)
    info: dict = {"config": name, "code": str(code or ROOT), **version, "started": dt.datetime.now().isoformat(timespec="seconds")}
    if not (data / "pmsi").is_dir():
        profile = "demo" if name == "demo" else "national"
        console.print(f"{name}: generating the data (respop synth --profile {profile} --seed 1) into {data}…")
        r = measure_process([sys.executable, "-P", "-m", "respop", "synth", "--profile", profile, "--seed", "1", "--out", str(data)],
                    folder / "logs" / "synth.log", env=env)
        if r["returncode"] != 0:
            raise SystemExit(f"synth failed: see {folder / 'logs' / 'synth.log'}")
        info["synth"] = {k: r[k] for k in ("wall_seconds", "cpu_seconds", "peak_gb", "load")}
    config, _ = write_config(name, "prepare")
    console.print(f"{name}: respop run {config} --steps {PREPARE_STEPS} (log {folder / 'logs' / 'run.log'})…")
    r = measure_process([sys.executable, "-P", "-m", "respop", "run", str(config), "--steps", PREPARE_STEPS],
                folder / "logs" / "run.log", env={**env, "COLUMNS": "200"})
    if r["returncode"] != 0:
        raise SystemExit(f"respop run failed: see {folder / 'logs' / 'run.log'}\n{r['output'][-3000:]}")
    timings = folder / "run" / "timings.json"
    info["run"] = {k: r[k] for k in ("wall_seconds", "cpu_seconds", "peak_gb", "load")}
    info["run"]["steps"] = json.loads(timings.read_text()).get("steps") if timings.is_file() else None
    info["finished"] = dt.datetime.now().isoformat(timespec="seconds")
    (folder / "prepared.json").write_text(json.dumps(info, indent=2))
    console.print(f"  done: {r['wall_seconds']:.0f} s, peak {r['peak_gb']:.1f} GB")
    return info


# -- measuring ----------------------------------------------------------------------------------


def measure_config(name: str, label: str, code: Path | None, repeat: int, parts: list, console, direct: bool = False) -> dict:
    info = prepared(name)
    if info is None:
        raise SystemExit(f"{name}: no private outputs under {OUT / name / 'run'}: run with --prepare first")
    config, store = write_config(name, label)
    version = git_version(code or ROOT)
    runs = []
    for k in range(repeat):
        job = {"config": str(config), "store": str(store), "code": str(code) if code else None, "parts": parts, "direct": direct}
        r = run_child(job, code, OUT / name / "logs" / f"measure-{store.stem}-{k + 1}.log")
        console.print(f"  {name} \\[{label}] run {k + 1}/{repeat}: collect {r['collect_s']:.2f} s, write {r['write_s']:.2f} s, "
                      f"peak {r['peak_gb']:.2f} GB, masked {r['masked']:,} of {r['cells']:,}, "
                      f"others' CPU {r['others_cpu_s']:.0f} s, load {r['load'][0]:.2f}→{r['load'][1]:.2f}")
        runs.append(r)
    best = min(runs, key=lambda r: r["collect_s"] + r["write_s"])
    same = len({json.dumps(r["by_table"], sort_keys=True) for r in runs}) == 1
    line = {
        "config": name, "label": label, "code": str(code or ROOT), **version,
        "date": dt.datetime.now().isoformat(timespec="seconds"), "outputs": {k: info.get(k) for k in ("commit", "finished")},
        "repeat": repeat, "masks_same_in_repeats": same, "direct": direct,
        "cells": best["cells"], "masked": best["masked"], "collect_s": best["collect_s"], "write_s": best["write_s"],
        "publish_s": best["publish_s"], "peak_gb": best["peak_gb"],
        "collect_cpu_s": best["collect_cpu_s"], "write_cpu_s": best["write_cpu_s"],
        "collect_s_all": [r["collect_s"] for r in runs], "write_s_all": [r["write_s"] for r in runs],
        "machine": {"cpus": os.cpu_count(), "others_cpu_s": [r["others_cpu_s"] for r in runs], "load": [r["load"] for r in runs]},
        "best": best,
    }
    if not same:
        console.print(f"[red]{name} \\[{label}]: the masks differ between repeats[/]")
    return line


def audit_stats(name: str, label: str, code: Path | None, console, direct: bool = False) -> dict:
    config, store = write_config(name, label + "-audit-stats")
    r = run_child({"mode": "audit-stats", "config": str(config), "store": str(store), "direct": direct}, code,
                  OUT / name / "logs" / f"audit-stats-{store.stem}.log")
    console.print(f"  {name} \\[{label}] audit stats: {len(r['calls'])} suppressions, largest group of masked cells "
                  f"{r['largest_group']:,}, {r['over_limit']:,} masked cells in groups over MAX_AUDIT_CELLS = {r['max_audit_cells']}")
    return r


# -- tables ---------------------------------------------------------------------------------------


def read_results() -> list[dict]:
    if not RESULTS.is_file():
        return []
    return [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]


def latest(results: list[dict]) -> dict[tuple[str, str], dict]:
    out: dict[tuple[str, str], dict] = {}
    for r in results:
        if "collect_s" in r:
            out[(r["config"], r["label"])] = r
    return out


def ratio(value, base) -> str:
    if value is None or base in (None, 0):
        return "–"
    return f"{value / base:.2f}×"


def ratios(r: dict, base: dict | None, part: str) -> str:
    """Seconds over the baseline's: wall-clock (CPU)."""
    if base is None:
        return "–"
    return f"{ratio(r[f'{part}_s'], base[f'{part}_s'])} ({ratio(r.get(f'{part}_cpu_s'), base.get(f'{part}_cpu_s'))})"


def fmt(x, digits: int = 1) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def audit_cell(r: dict) -> str:
    """What the publication reports of its audit (numbers under keys naming audited, unaudited,
    narrow or programs, summed over tables), and the groups seen by ``--audit-stats``."""
    report = r["best"].get("audit_report") or {}
    found: dict[str, float] = {}

    def walk(key: str, value) -> None:
        if isinstance(value, str) and value[:1] in "{[":
            try:
                value = json.loads(value)
            except ValueError:
                return
        if isinstance(value, dict):
            for k, v in value.items():
                walk(str(k), v)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and key.lower() in REPORTED:
            found[key.lower()] = found.get(key.lower(), 0) + value

    walk("", report)
    stats = r.get("audit_stats")
    text = "reported: " + ", ".join(f"{k} {v:,}" for k, v in sorted(found.items())) if found else "not reported"
    if stats:
        text += f" (groups: largest {stats['largest_group']:,}, over limit {stats['over_limit']:,})"
    return text


REPORTED = ("audited", "unaudited", "narrow", "programs")
"""Keys of the publication's disclosure report shown in the table (summed over its tables)."""


def complementary(r: dict) -> str:
    """Complementary masks of the tables matched with their private counts (primary: 1 to 10)."""
    entries = [e for cs in r["best"]["by_table"].values() for e in cs.values() if "complementary" in e]
    if not entries:
        return "–"
    return f"{sum(e['complementary'] for e in entries):,} of {sum(e['masked'] for e in entries):,}"


def tables(results: list[dict], baseline: str, markdown: bool, console) -> None:
    from rich.table import Table

    rows = latest(results)
    if not rows:
        console.print("no results yet")
        return
    head = ["config", "label", "commit", "date", "cells", "masked", "× masked", "complementary", "collect s (CPU s)", "× collect (CPU)", "write s (CPU s)", "× write (CPU)",
            "peak GB", "× peak", "audited / unaudited", "others' CPU s", "repeat"]
    body = []
    for (name, label), r in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[1]["date"])):
        base = rows.get((name, baseline))
        commit = r["commit"] + ("+dirty" if r.get("dirty") else "") + (" (direct)" if r.get("direct") else "")
        body.append([
            name, label, commit, r["date"][:16].replace("T", " "), f"{r['cells']:,}", f"{r['masked']:,}",
            ratio(r["masked"], base and base["masked"]), complementary(r), f"{fmt(r['collect_s'], 2)} ({fmt(r.get('collect_cpu_s'), 2)})", ratios(r, base, "collect"),
            f"{fmt(r['write_s'], 2)} ({fmt(r.get('write_cpu_s'), 2)})", ratios(r, base, "write"), fmt(r["peak_gb"], 2),
            ratio(r["peak_gb"], base and base["peak_gb"]), audit_cell(r),
            "/".join(fmt(x, 0) for x in r["machine"]["others_cpu_s"]), str(r["repeat"]),
        ])
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for row in body:
            print("| " + " | ".join(row) + " |")
    else:
        table = Table(title=f"The store step: cells masked, seconds, peak memory (× {baseline}: over the latest '{baseline}' of the config)",
                      title_justify="left")
        for h in head:
            table.add_column(h, justify="left" if h in ("config", "label", "commit", "date", "audited / unaudited") else "right")
        for row in body:
            table.add_row(*row)
        console.print(table)
    # parts of collect and write
    labels = sorted({k for r in rows.values() for k in r["best"].get("parts", {})})
    part_head = ["config", "label", *labels]
    part_rows = [[n, l, *[fmt(r["best"]["parts"].get(k), 2) for k in labels]] for (n, l), r in sorted(rows.items())]
    # masked per table and column
    columns = sorted({(t, c) for r in rows.values() for t, cs in r["best"]["by_table"].items() for c in cs})
    keys = sorted(rows)
    mask_head = ["table.column", *[f"{n} ({l})" for n, l in keys]]
    mask_rows = []
    for t, c in columns:
        cells = []
        for key in keys:
            e = rows[key]["best"]["by_table"].get(t, {}).get(c)
            if e is None:
                cells.append("–")
                continue
            extra = f", primary {e['primary']:,}" if "primary" in e else ""
            extra += f", +{e['not_published']:,} not published" if e.get("not_published") else ""
            extra += f", {e['small_published']:,} of 1-10 PUBLISHED" if e.get("small_published") else ""
            cells.append(f"{e['masked']:,} / {e['cells']:,}" + (f" ({extra[2:]})" if extra else ""))
        mask_rows.append([f"{t}.{c}", *cells])
    if markdown:
        for head_, body_ in ((part_head, part_rows), (mask_head, mask_rows)):
            print()
            print("| " + " | ".join(head_) + " |")
            print("|" + "---|" * len(head_))
            for row in body_:
                print("| " + " | ".join(row) + " |")
        return
    for title, head_, body_ in (("Seconds of the parts (nested parts are inside their parent's seconds)", part_head, part_rows),
                                ("Masked / count cells per table and column (read back from the store)", mask_head, mask_rows)):
        table = Table(title=title, title_justify="left")
        for h in head_:
            table.add_column(h, justify="left" if h in ("config", "label", "table.column") else "right")
        for row in body_:
            table.add_row(*row)
        console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated (default: %(default)s)")
    parser.add_argument("--label", help="name of this measurement (before, after, …); default: the measured commit")
    parser.add_argument("--code", type=Path, help="a checkout of respop put first on the children's PYTHONPATH")
    parser.add_argument("--repeat", type=int, default=1, help="fresh processes per config, the fastest kept (default 1)")
    parser.add_argument("--baseline", default="before", help="label the ratios are taken to (default: before)")
    parser.add_argument("--parts", default="", help="more parts to time: label=module:function,… (module:Class.method)")
    parser.add_argument("--audit-stats", action="store_true", help="also one untimed run recording the groups of masked cells")
    parser.add_argument("--direct", action="store_true", help="Store(url).write(collect(...)) instead of respop.pipeline.publish")
    parser.add_argument("--prepare", action="store_true", help="generate data and private outputs when missing")
    parser.add_argument("--prepare-only", action="store_true", help="prepare (when missing) and stop")
    parser.add_argument("--show", action="store_true", help="print the tables from results.jsonl and stop")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    args = parser.parse_args()
    from rich.console import Console

    console = Console(width=240)
    if args.show:
        tables(read_results(), args.baseline, args.markdown, console)
        return
    code = args.code.resolve() if args.code else None
    if code is not None and not (code / "respop" / "__init__.py").is_file():
        raise SystemExit(f"--code {code}: no respop/ package there")
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    if args.prepare or args.prepare_only:
        for name in names:
            if prepared(name) is None:
                prepare(name, code, console)
            else:
                console.print(f"{name}: private outputs already there ({OUT / name / 'prepared.json'})")
        if args.prepare_only:
            return
    version = git_version(code or ROOT)
    label = args.label or version["commit"] + ("+dirty" if version["dirty"] else "")
    console.print(f"measuring respop from {code or ROOT} at {version['commit']}{' +dirty: ' + ', '.join(version['changed']) if version['dirty'] else ''}"
                  f"; label {label!r}; load {os.getloadavg()[0]:.2f}")
    parts = [list(p) for p in DEFAULT_PARTS]
    for item in filter(None, args.parts.split(",")):
        name, _, spec = item.partition("=")
        parts.append([name, spec])
    OUT.mkdir(parents=True, exist_ok=True)
    for name in names:
        line = measure_config(name, label, code, args.repeat, parts, console, args.direct)
        if args.audit_stats:
            line["audit_stats"] = audit_stats(name, label, code, console, args.direct)
        with RESULTS.open("a") as f:
            f.write(json.dumps(line, default=str) + "\n")
    tables(read_results(), args.baseline, args.markdown, console)
    console.print(f"results: {RESULTS}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child_main(sys.argv[2:])
    else:
        main()
