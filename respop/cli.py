"""The ``respop`` command line."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console, Group
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from respop import __version__
from respop.resources import ATTRIBUTION
from pydantic import ValidationError

from respop.config import Config, InputConfig, explain_validation_error, load_config
from respop.errors import RespopError

def _cell_text(cell) -> Text:
    """A table cell (markup string or Text) as Text."""
    if isinstance(cell, Text):
        return cell.copy()
    return Text.from_markup(cell) if isinstance(cell, str) else Text(str(cell))


def _records(table: Table, console: Console, width: int) -> Group:
    """``table`` as one record per line: the first cell, then ``header: value`` of the others
    (a pair is kept on one line when it fits), continuation lines indented; a value longer than
    the line wraps at spaces (a word longer than the line is folded, never cut)."""
    parts: list = []
    if table.title:
        parts.append(_cell_text(table.title))
        parts[-1].stylize("italic")
    headers = [_cell_text(c.header).plain.strip() for c in table.columns]
    room = max(width - 2, 20)
    for i in range(table.row_count):
        chunks = []
        for header, column in zip(headers, table.columns, strict=True):
            cell = _cell_text(column._cells[i]) if i < len(column._cells) else Text("")
            if not cell.plain.strip():
                continue
            chunk = Text(f"{header}: ", style="dim") if header else Text("")
            chunks.append(chunk + cell)
        lines: list[Text] = []
        for chunk in chunks:
            if lines and lines[-1].cell_len + 3 + chunk.cell_len <= room:
                lines[-1] = lines[-1] + Text(" · ") + chunk
            else:
                lines.append(chunk)
        for k, line in enumerate(t for line in lines for t in line.wrap(console, room, overflow="fold")):
            parts.append(Text("- " if k == 0 else "  ") + line)
    return Group(*parts)


def fit_table(table: Table, console: Console):
    """``table`` as it fits the console (an 80-column terminal, a pipe: Rich assumes 80 columns):
    as it is when its rows fit on their lines; else with its cells wrapped at spaces when every
    word still fits its column; else one record per line (:func:`_records`). Never an ellipsis
    ("terri…"): a word too long for its column is folded, never cut."""
    for column in table.columns:
        column.overflow = "fold"
        column.no_wrap = False
    width = console.width
    measure = Measurement.get(console, console.options.update_width(10_000), table)  # unclipped
    if measure.maximum <= width:
        return table
    if measure.minimum <= width and not _words_cut(table, console, width):
        return table
    return _records(table, console, width)


def _words_cut(table: Table, console: Console, width: int) -> bool:
    """Whether rendering ``table`` at ``width`` would split a word of a cell or header."""
    lines = console.render_lines(table, console.options.update_width(width), pad=False)
    words = {w for c in table.columns for cell in [c.header, *c._cells] for w in _cell_text(cell).plain.split() if len(w) > 1}
    shown = {w for line in lines for w in "".join(seg.text for seg in line).replace("│", " ").replace("┃", " ").split()}
    return not words <= shown


class FittingConsole(Console):
    """A console whose tables always fit its width (:func:`fit_table`): an 80-column terminal or
    a pipe gets every value whole, never "terri…"."""

    def print(self, *objects, **kwargs) -> None:  # noqa: A003 - Console's name
        super().print(*(fit_table(o, self) if isinstance(o, Table) else o for o in objects), **kwargs)


console = FittingConsole()
err_console = FittingConsole(stderr=True)

app = typer.Typer(
    name="respop",
    help="Responsabilité populationnelle: territories, case finding and risk strata from the PMSI.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
pmsi_app = typer.Typer(help="Read and check PMSI MCO data: SNDS tables or ATIH RSA/ANO files.", no_args_is_help=True)
app.add_typer(pmsi_app, name="pmsi")


@contextmanager
def progress_steps(total: int | None, description: str) -> Iterator:
    """A rich progress bar; yields a callback ``step(label)`` that advances it by one."""
    with Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task(description, total=total)

        def step(label: str) -> None:
            progress.update(task, description=label)
            progress.advance(task)

        yield step


def _parse_years(value: str | None) -> list[int] | None:
    from respop.config import parse_ranges

    return parse_ranges(value, "--years", "2019-2023 or 2021,2022", r"\d{4}") if value else None


@pmsi_app.command("check")
def pmsi_check(
    folder: Annotated[Optional[Path], typer.Argument(help="Folder of SNDS tables T_MCOaaB/C/D/UM (Parquet or CSV) or of ATIH files <FINESS>.<YYYY>.<M>.rsa/.ano (detected); default: input.pmsi_dir of --config.")] = None,
    config: Annotated[Optional[Path], typer.Option(help="Territory configuration (TOML): its input and quality sections apply.")] = None,
    years: Annotated[Optional[str], typer.Option(help="Exit years to read, e.g. 2019-2023.")] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", help="auto, csv, parquet or atih (default: the configuration's, else auto: detected).")] = None,
    separator: Annotated[Optional[str], typer.Option(help="CSV separator (default: detected).")] = None,
    encoding: Annotated[Optional[str], typer.Option(help="CSV encoding: utf-8, latin-1 or cp1252.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Also write staged tables, quarantine and report.json here (private: holds patient keys).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Read a folder of PMSI MCO data (SNDS tables or ATIH RSA/ANO files, detected) and report every row: loaded, quarantined, filtered."""
    from respop.pipeline import private_workspace
    from respop.pmsi import read_pmsi

    cfg = load_config(config) if config else Config()
    overrides: dict = {"format": fmt} if fmt else {}
    if years:
        overrides["years"] = _parse_years(years)
    if separator:
        overrides["separator"] = separator
    if encoding:
        overrides["encoding"] = encoding
    try:
        input_cfg = InputConfig.model_validate({**cfg.input.model_dump(), **overrides})
    except ValidationError as exc:
        raise RespopError(f"invalid option:\n{explain_validation_error(exc)}") from None
    # a private workspace of this process: what a killed read left is removed first
    with private_workspace(cfg.model_copy(update={"input": input_cfg})) as private:
        data = read_pmsi(folder, private.input, cfg.quality)
        try:
            with progress_steps(data.steps(write=out is not None), "reading PMSI tables") as step:
                report = data.write(out, step) if out else data.report(step)
        finally:
            data.close()
    if as_json:
        console.print_json(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        report.render(console)
        if out:
            console.print(f"Private outputs written to {out} (they hold patient keys: keep them in the secure area).")
    if not report.balanced:
        raise typer.Exit(code=1)


@pmsi_app.command("stage")
def pmsi_stage(
    config: Annotated[Path, typer.Argument(help="Territory configuration (TOML): its input and quality sections apply.")],
) -> None:
    """Validate a configuration's PMSI once and keep it staged for every later run with the same inputs (input.staged_dir, default <output.dir>/staged-input; docs/pmsi.md, Staged input). Prints counts only."""
    from respop.pipeline import private_workspace
    from respop.pmsi import stage

    cfg = load_config(config)
    with private_workspace(cfg) as private:
        state, reasons = stage.status(private)
        if reasons:
            with progress_steps(None, "staging the PMSI") as step:
                stage.build(private, state, step)
        data = stage.open_staged(private)
        data.reused, data.reasons = not reasons, reasons
        try:
            report = data.report()
        finally:
            data.close()
    console.print(("Up to date: " if not reasons else "") + escape(stage.describe(data)), soft_wrap=True)
    years = ", ".join(str(y) for y in report.years if y is not None) or "not given by the file names"
    console.print(f"Years: {years}; {len(report.tables)} files")
    read = sum(t.rows_read for t in report.tables)
    quarantined = sum(t.rows_quarantined for t in report.tables)
    console.print(f"Rows read: {read:,}; loaded: {sum(t.rows_loaded for t in report.tables):,}; quarantined: {quarantined:,}")
    excluded = sum(f.excluded for f in report.filters)
    console.print(f"Stays loaded: {report.stays_loaded:,}; kept: {report.stays_kept:,}; séances kept apart: "
                  f"{report.sessions_kept:,}; excluded by the quality filters: {excluded:,}")
    console.print(f"Diagnoses of kept stays and séances: {sum(report.diagnoses.values()):,}")
    console.print("Every row is accounted for." if report.balanced else "[red]The counts do not add up[/] (respop pmsi check shows them).")
    console.print("The staged input holds patient keys: it stays in the secure area; delete the folder to stage again.")


@app.command("synth")
def synth(
    profile: Annotated[str, typer.Option(help="tiny, demo, national, or a profile file.")] = "demo",
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same data.")] = 1,
    years: Annotated[Optional[str], typer.Option(help="Exit years, e.g. 2019-2023 (default: the profile's).")] = None,
    out: Annotated[Path, typer.Option(help="Output folder (pmsi/, reference/, truth/).")] = Path("output/synthetic"),
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv (SNDS tables), atih (the ATIH's RSA and ANO files, one of each per hospital and year), or both (SNDS Parquet in pmsi/, ATIH files in atih/).")] = "parquet",
    report: Annotated[bool, typer.Option("--report", help="Print generated figures beside the published ones.")] = False,
    intervention: Annotated[Optional[Path], typer.Option(help="Plant an intervention (TOML: pilots, start_years, effects, as a profile's [intervention]), replacing the profile's.")] = None,
) -> None:
    """Generate synthetic PMSI-shaped data (SNDS tables) with its ground truth."""
    from respop.synth import generate, load_profile
    from respop.synth.calibration import calibration
    from respop.synth.profiles import load_intervention, with_intervention

    if fmt not in ("parquet", "csv", "atih", "both"):
        raise RespopError(f"--format: expected parquet, csv, atih or both, got {fmt!r}")
    if report and fmt == "atih":
        raise RespopError("--report counts from the SNDS tables: use --format both (SNDS tables in pmsi/, ATIH files in atih/)")
    prof = load_profile(profile)
    if intervention is not None:
        prof = with_intervention(prof, load_intervention(intervention))
    year_list = _parse_years(years) or prof.years
    chunks = max(1, -(-prof.geography.population // prof.chunk_persons))
    with progress_steps(1 + len(year_list) * chunks + (fmt in ("atih", "both")), f"generating the {prof.name} world") as step:
        result = generate(prof, seed, out, year_list, fmt, step)
    console.print(
        f"{prof.name}: {result.persons:,} persons simulated (the living, the dead and the newborns); rows of "
        "T_MCOaaB (stays and séances, planted duplicates included): "
        + ", ".join(f"{y}: {n:,}" for y, n in result.stays.items())
        + f" → {escape(str(out))}"
    )
    if report:
        from rich.table import Table

        table = Table(title=f"Calibration, {year_list[-1]}: generated beside published", title_justify="left")
        for col in ("figure", "generated", "published", "difference"):
            table.add_column(col, justify="left" if col == "figure" else "right")
        for fig in calibration(out, year_list[-1]):
            fmt_value = "{:.1f}" if fig.published > 1 else ("{:.3f}" if fig.published > 0.1 else "{:.2%}")
            table.add_row(fig.label, fmt_value.format(fig.generated), fmt_value.format(fig.published),
                          f"{fig.relative_difference:+.1%}")
        console.print(table)


territories_app = typer.Typer(help="Health territories from hospital-stay flows.", no_args_is_help=True)
app.add_typer(territories_app, name="territories")

NEW_TERRITORY = """# Territory configuration written by `respop territories new {name}`.
# Review every value, then run: respop territories build territories/{name}.toml
name = "{name}"
description = "Territoire {name}"
# diseases = ["<disease>", …]   # default: every algorithm spec of [cases] algorithms_dir (<disease>.toml)

[input]
pmsi_dir = "../data/pmsi"            # SNDS tables T_MCOaaB/C/D/UM, relative to this file
reference_dir = "../data/reference"  # zones.parquet (GeoParquet), population.parquet, hospitals.parquet
# years = [2019, 2020, 2021, 2022, 2023]

[quality]
# the quality filters of docs/pmsi.md are all on by default

[territories]
{scope}
method = "leiden"            # leiden (flows + spatial constraints) or plurality (Dartmouth baseline)
min_population = 30000       # every territory has at least this many inhabitants
# target_count = 5           # leiden: number of territories to aim for
# anchor_kinds = ["CH", "CHU"]   # leiden with no target: every territory holds a CH or a CHU (hospitals.parquet `kind`)
hospital_grouping = "establishment"   # establishment, town, or a table (hospital_id, group) such as the GHT
adults_only = false
# pins = {{ "29004" = "29019" }}   # zone 29004 joins the territory of zone 29019 (expert review)
# territory_of_interest = "29019"  # a zone of the territory the rest of the pipeline works on

[output]
dir = "../output/{name}"

[store]
url = "sqlite:///../output/{name}/respop.sqlite"   # relative to this file; or postgresql+psycopg://…

[dashboard]
access = "public"     # or "password" with password_hash (respop dashboard hash-password)
"""


@territories_app.command("new")
def territories_new(
    name: Annotated[str, typer.Argument(help="Name of the new territory (file territories/NAME.toml).")],
    departements: Annotated[Optional[str], typer.Option(help="Départements in scope, e.g. 29,56.")] = None,
    folder: Annotated[Path, typer.Option(help="Where to write the file.")] = Path("territories"),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starting configuration for a new territory."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise RespopError(f"territory name {name!r}: use letters, digits, - and _ only")
    path = folder / f"{name}.toml"
    if path.exists() and not force:
        raise RespopError(f"{path} already exists (use --force to overwrite)")
    if departements:
        deps = [d.strip().upper().zfill(2) for d in departements.split(",") if d.strip()]
        bad = [d for d in deps if not re.fullmatch(r"[0-9]{2}|2[AB]|97[0-9]", d)]
        if bad:
            raise RespopError(f"--departements: not département codes: {', '.join(bad)}")
        scope = "departements = [" + ", ".join(f'"{d}"' for d in deps) + "]   # the scope"
    else:
        scope = '# departements = ["29", "56"]   # the scope; zones = [...] for a list of zones; neither: every zone'
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(NEW_TERRITORY.format(name=name, scope=scope), encoding="utf-8")
    load_config(path)  # the template must stay valid
    console.print(f"Written {escape(str(path))}. Edit it, then: respop territories build {escape(str(path))}")


def _territory_inputs(config_path: Path, step):
    from respop.delineation.run import territory_inputs
    from respop.pipeline import private_workspace

    cfg = load_config(config_path)
    with private_workspace(cfg) as private:
        reference, problem = territory_inputs(private, step)
    return cfg, reference, problem


def _fmt(value: float | None, digits: int = 2) -> str:
    """A decimal the French way (``0,73``): the output of the commands in French."""
    return "–" if value is None else f"{value:.{digits}f}".replace(".", ",")


@territories_app.command("build")
def territories_build(
    config: Annotated[Path, typer.Argument(help="Territory configuration (TOML).")],
) -> None:
    """Build the territories of a configuration, write them and print their metrics (in French)."""
    from rich.table import Table

    from respop.delineation.run import build

    with progress_steps(5, "building territories") as step:
        cfg, reference, problem = _territory_inputs(config, step)
        step(f"fitting {cfg.territories.method}")
        result = build(cfg, problem, reference)
    table = Table(title=f"Territoires ({result.method.name}) — {len(result.names)} territoires", title_justify="left")
    for col in ("n°", "territoire", "population", "zones", "établissements", "LI", "MSI", "compacité"):
        table.add_column(col, justify="left" if col == "territoire" else "right")
    for row in result.metrics.sort("territory_id").iter_rows(named=True):
        table.add_row(str(row["territory_id"]), escape(row["territory_name"]), _fr_int(row["population"]), str(row["zones"]),
                      str(row["hospitals"]), _fmt(row["localization_index"]), _fmt(row["market_share_index"]),
                      _fmt(row["compactness"]))
    console.print(table)
    o = result.overall
    console.print(f"LI moyen {_fmt(o['mean_li'])} (min {_fmt(o['min_li'])}), MSI moyen {_fmt(o['mean_msi'])}, "
                  f"modularité {_fmt(o['modularity'], 3)}")
    if result.fragile.height:
        console.print(f"{result.fragile.height} zone(s) fragile(s) à revoir (second territoire proche) : fragile_zones.csv")
    if result.selected:
        console.print(f"Territoire d'intérêt : {escape(result.selected['territory_name'])} ({len(result.selected['zones'])} zones)")
    console.print(f"Carte : {escape(str(result.paths.get('map', '')))}")
    console.print(f"Sorties : {escape(str(cfg.output.dir / 'territories'))}")


@territories_app.command("compare")
def territories_compare(
    config: Annotated[Path, typer.Argument(help="Territory configuration (TOML).")],
    methods: Annotated[str, typer.Option(help="Methods to compare, comma-separated.")] = "plurality,leiden",
) -> None:
    """Run several delineation methods on the same flows and print one table."""
    from rich.table import Table

    from respop.delineation.run import METHODS, compare

    names = [m.strip() for m in methods.split(",") if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise RespopError(f"--methods: unknown {', '.join(unknown)} (known: {', '.join(METHODS)})")
    with progress_steps(3 + len(names), "comparing methods") as step:
        cfg, reference, problem = _territory_inputs(config, step)
        rows = compare(cfg, problem, reference, names)
    table = Table(title="Delineation methods on the same flows", title_justify="left")
    for col in ("method", "territories", "mean LI", "min LI", "mean MSI", "compactness", "modularity", "min population", "seconds"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for r in rows:
        table.add_row(r["method"], str(r["territories"]), f"{r['mean_li']:.3f}", f"{r['min_li']:.3f}", f"{r['mean_msi']:.3f}",
                      f"{r['mean_compactness']:.2f}", f"{r['modularity']:.3f}", f"{r['min_population']:,}", f"{r['seconds']:.1f}")
    console.print(table)


cases_app = typer.Typer(help="Case finding: the configured diseases from the stays, by residence.", no_args_is_help=True)
app.add_typer(cases_app, name="cases")


def _pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}%}"


@cases_app.command("run")
def cases_run(
    config: Annotated[Path, typer.Argument(help="Territory configuration (TOML).")],
) -> None:
    """Find the cases of every configured disease; write cases, residence and indicators (printed in French)."""
    import polars as pl
    from rich.table import Table

    from respop.case_finding.run import run_cases, steps
    from respop.pipeline import private_workspace
    from respop.spec.catalogue import run_catalogue

    cfg = load_config(config)
    with private_workspace(cfg) as private, progress_steps(steps(cfg), "case finding") as step:
        result = run_cases(private, step)
    if cfg.hospital is not None:  # hospital mode: cases of the hospital's patients, no rates (docs/hospital.md)
        counts = result.cases.filter(pl.col("is_case")).group_by("disease", "index_year").len().sort("disease", "index_year")
        names = run_catalogue(cfg).names
        table = Table(title=f"Cas repérés parmi les patients de l'établissement (FINESS {', '.join(cfg.hospital.finess)})",
                      title_justify="left")
        for col in ("maladie", "année", "cas"):
            table.add_column(col, justify="right" if col != "maladie" else "left")
        for disease, year, n in counts.iter_rows():
            table.add_row(escape(names.get(disease, disease)), str(year), _fr_int(n))
        console.print(table)
        console.print("Mode hôpital : pas de taux (les patients de l'établissement ne sont pas une population). "
                      f"Sorties : {escape(str(result.out))} (clés patients : à garder dans l'espace sécurisé)")
        return

    area = result.indicators.filter(pl.col("level") == "area")
    for spec in run_catalogue(cfg).specs:
        labels = {"all": "Ensemble", **{t.name: t.label for t in spec.subtypes.types}}
        order = list(labels)
        table = Table(title=f"{spec.algorithm.name} : cas repérés dans la région (résidence)", title_justify="left")
        for col in ("année", "", "cas", "incidents", "prévalence", "prév. std"):
            table.add_column(col, justify="left" if col == "" else "right")
        rows = area.filter(pl.col("disease") == spec.disease).sort(
            "year", pl.col("subtype").replace_strict({k: i for i, k in enumerate(order)}, default=len(order))
        )
        incomplete = False
        for row in rows.iter_rows(named=True):
            year = str(row["year"]) if row["complete_history"] else f"{row['year']}*"
            incomplete |= not row["complete_history"]
            table.add_row(year if row["subtype"] == "all" else "", escape(labels.get(row["subtype"], row["subtype"])),
                          _fr_int(row["cases"]), _fr_int(row["incident_cases"]), _per100k(row["prevalence_crude"]),
                          _per100k(row["prevalence_std"]))
        console.print(table)
        if incomplete:
            before = "l'année précédente" if spec.window.lookback_years == 1 else f"les {spec.window.lookback_years} années précédentes"
            console.print(f"* historique incomplet : les données ne couvrent pas {before} ; prévalence et incidence sous-estimées.")
    outside = result.indicators.filter((pl.col("level") == "area") & (pl.col("subtype") == "all"))["cases_outside"].sum()
    if outside:
        console.print(f"{_fr_int(outside)} cas-années habitent des zones absentes de la table de population (hors des taux).")
    if not result.summary["territories"]:
        console.print("Pas encore de territoires (respop territories build) : les cas ne portent que leur zone.")
    console.print(f"Sorties : {escape(str(result.out))} (cases.parquet contient des clés patients : à garder dans "
                  "l'espace sécurisé)")


def _per100k(value: float | None) -> str:
    """A rate per 100,000 as a French percentage (``2,05 %``)."""
    return "–" if value is None else f"{value / 1000:.2f}".replace(".", ",") + "\u00a0%"


def _fr_int(value: int) -> str:
    """An integer the French way (``6 150``, narrow no-break space)."""
    return f"{value:,}".replace(",", "\u202f")


@cases_app.command("validate")
def cases_validate(
    config: Annotated[Path, typer.Argument(help="Territory configuration (TOML) of a synthetic run.")],
    truth: Annotated[Optional[Path], typer.Option(help="Truth folder of the synthetic data (default: truth/ beside input.pmsi_dir).")] = None,
) -> None:
    """Compare the cases of the last `respop cases run` with the truth of synthetic data."""
    import polars as pl
    from rich.table import Table

    from respop.case_finding.run import load_population, zone_territory
    from respop.case_finding.validation import check_validatable, truth_folder, validate
    from respop.spec.catalogue import run_catalogue

    cfg = load_config(config)
    path = cfg.output.dir / "cases" / "cases.parquet"
    if not path.is_file():
        raise RespopError(f"{path} not found: run `respop cases run {config}` first")
    folder = truth_folder(cfg.input.pmsi_dir, truth)
    specs = run_catalogue(cfg).specs
    check_validatable([s.disease for s in specs], folder)  # refused before any work when the truth lacks one
    with progress_steps(None, "comparing with the truth"):
        results = validate(pl.read_parquet(path), specs, folder, zone_territory(cfg), load_population(cfg).table)
    metrics = [
        ("true cases (alive, with the disease)", lambda r: f"{r.true_cases:,}"),
        ("sensitivity: all true cases", lambda r: _pct(r.sensitivity)),
        ("  of them, hospitalised in the window", lambda r: _pct(r.sensitivity_hospitalised)),
        ("  of them, with a stay caused by the disease", lambda r: _pct(r.sensitivity_disease_stay)),
        ("detected cases", lambda r: f"{r.detected:,}"),
        ("positive predictive value", lambda r: _pct(r.ppv)),
        ("detected, died out of hospital before", lambda r: f"{r.detected_dead:,}"),
        ("  share of the detected cases", lambda r: _pct(r.dead_share)),
        ("sub-type agrees with the truth", lambda r: _pct(r.subtype_agreement)),
        ("residence zone = true zone", lambda r: _pct(r.residence_accuracy)),
        ("territory = true zone's territory", lambda r: _pct(r.territory_accuracy)),
        ("  of them, people who moved in the window", lambda r: _pct(r.movers_accuracy)),
        ("adults hospitalised /100,000 (pub. {published})",
         lambda r: "–" if r.hf_rate_per_100k_adults is None else f"{r.hf_rate_per_100k_adults:.1f}"),
    ]
    for spec in specs:
        mine = [r for r in results if r.disease == spec.disease]
        table = Table(title=f"{spec.disease}: validation against the truth (synthetic data)", title_justify="left")
        table.add_column("")
        for r in mine:
            table.add_column(str(r.index_year), justify="right")
        for label, value in metrics:
            if label.startswith("adults"):
                published = spec.algorithm.published_rate_per_100k_adults
                if published is None:
                    continue
                label = label.format(published=published)
            table.add_row(label, *[value(r) for r in mine])
        console.print(table)
    console.print(
        "Hospital data alone see only people who were hospitalised; 'died out of hospital before' are detected people "
        "whose death the PMSI cannot record (the SNDS referential does). Movers: the residence comes from the stays of "
        "the whole window (cases.residence, cases.residence_years)."
    )
    input_report = cfg.output.dir / "input" / "report.json"
    deaths = json.loads(input_report.read_text(encoding="utf-8")).get("deaths") if input_report.is_file() else None
    known = bool((deaths or {}).get("known"))
    console.print(
        "Deaths out of hospital: " + ("known to the run (the SNDS referential IR_BEN_R was read)." if known else
        "not known to the run (no IR_BEN_R in the PMSI folder, or input.deaths = 'ignore'); run again with "
        "input.deaths = 'ignore' / 'auto' to compare (docs/case_finding.md).")
    )
    out = cfg.output.dir / "validation"
    out.mkdir(parents=True, exist_ok=True)
    (out / "cases.json").write_text(json.dumps([{**r.to_dict(), "deaths_known": known} for r in results], indent=2), encoding="utf-8")
    console.print(f"Written {escape(str(out / 'cases.json'))}")


strata_app = typer.Typer(help="Risk strata: clinical profiles, care use, trajectories, survival, prediction.", no_args_is_help=True)
app.add_typer(strata_app, name="strata")


@strata_app.command("run")
def strata_run(
    config: Annotated[Path, typer.Argument(help="Territory configuration (TOML); `respop cases run` must have run.")],
) -> None:
    """Sort the cases into strata; write care use, transitions, survival and the prediction (printed in French)."""
    import polars as pl
    from rich.table import Table

    from respop.pipeline import private_workspace
    from respop.strata.run import run_strata, steps, strata_specs

    cfg = load_config(config)
    with private_workspace(cfg) as private, progress_steps(steps(cfg), "risk strata") as step:
        result = run_strata(private, step)
    ps = result.person_strata
    last = int(ps["year"].max())
    for spec in strata_specs(cfg):
        mine = ps.filter((pl.col("disease") == spec.disease) & (pl.col("year") == last))
        counts = dict(mine.group_by("stratum").len().iter_rows())
        table = Table(title=f"{spec.algorithm.name} : strates {last} (de la plus sévère à la moins sévère)", title_justify="left")
        for col in ("strate", "personnes", "part", "séjours / pers.", "urgences / pers.", "décès hosp."):
            table.add_column(col, justify="left" if col == "strate" else "right")
        for level in spec.strata.levels:
            rows = mine.filter(pl.col("stratum") == level.name)
            n = counts.get(level.name, 0)
            table.add_row(
                escape(level.label), _fr_int(n), _fr_pct(n / mine.height if mine.height else None),
                _fr_dec(rows["stays_12m"].mean()), _fr_dec(rows["emergency_stays_12m"].mean()), _fr_int(int(rows["died_in_year"].sum())),
            )
        console.print(table)
    for skip in result.summary.get("skipped") or []:  # what the years of the data do not allow (respop.periods)
        console.print(escape(skip["fr"]))
    console.print(f"Sorties : {escape(str(result.out))} (person_strata.parquet contient des clés patients : à garder "
                  "dans l'espace sécurisé)")


def _fr_pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}".replace(".", ",").replace("%", "\u00a0%")


def _fr_dec(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}".replace(".", ",")


@strata_app.command("validate")
def strata_validate(
    config: Annotated[Path, typer.Argument(help="Territory configuration (TOML); `respop strata run` must have run (unless --seeds).")],
    seeds: Annotated[Optional[str], typer.Option(help="Check on generated worlds instead, one per seed, e.g. 1-5 or 1,3,7: each is generated (respop synth), run with this configuration's settings up to the strata, and checked; then a summary across seeds.")] = None,
    profile: Annotated[str, typer.Option(help="With --seeds: the synthetic world's profile (tiny, demo, peripheral, national, or a profile file).")] = "demo",
    years: Annotated[Optional[str], typer.Option(help="With --seeds: the years generated, e.g. 2019-2023 (default: the profile's).")] = None,
    work: Annotated[Optional[Path], typer.Option(help="With --seeds: folder for the worlds and their outputs, kept (default: a temporary folder, removed at the end).")] = None,
) -> None:
    """Check the strata of the last run: one stratum per person-year, transitions, survival order, prediction."""
    from respop.strata.validation import check_strata

    cfg = load_config(config)
    if seeds is not None:
        _strata_validate_seeds(cfg, seeds, profile, years, work)
        return
    checks, tables = check_strata(cfg)
    for title, frame in tables:
        _print_frame(title, frame)
    if _print_checks(checks):
        raise typer.Exit(code=1)


def _print_frame(title: str, frame) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in frame.columns:
        table.add_column(col, justify="right" if frame[col].dtype.is_numeric() else "left")
    for row in frame.iter_rows():
        table.add_row(*[("–" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)) for v in row])
    console.print(table)


def _print_checks(checks) -> int:
    """Print each check (OK / n/a / FAILED); returns how many failed."""
    failed = 0
    for check in checks:
        mark = "[green]OK[/]" if check.ok else ("[yellow]n/a[/]" if check.ok is None else "[bold red]FAILED[/]")
        console.print(f"{mark} {escape(check.label)}: {escape(check.detail)}")
        failed += check.ok is False
    return failed


def _strata_validate_seeds(cfg: Config, seeds_text: str, profile: str, years_text: str | None, work: Path | None) -> None:
    """``respop strata validate CONFIG --seeds …``: each seed's world, checks, then the summary."""
    import shutil
    import tempfile

    from rich.table import Table

    from respop.pipeline import run_config
    from respop.strata.validation import SEED_STEPS, SeedChecks, check_strata, parse_seeds, seeds_summary, world_config
    from respop.synth import generate, load_profile

    seeds = parse_seeds(seeds_text)
    years = _parse_years(years_text)
    chosen = load_profile(profile)
    folder = work if work is not None else Path(tempfile.mkdtemp(prefix="respop-seeds-"))
    runs = []
    try:
        with progress_steps(None, "strata validate on several seeds") as step:
            for seed in seeds:
                # the world of this seed, the configuration run on it up to the strata, its checks
                world = folder / f"{chosen.name}-seed{seed}"
                step(f"seed {seed}: generating the {chosen.name} world")
                generate(chosen, seed=seed, out=world / "data", years=years)
                seeded = world_config(cfg, world / "data", world / "run")
                run_config(seeded, None, lambda label, s=seed: step(f"seed {s}: {label}"), SEED_STEPS)
                checks, tables = check_strata(seeded)
                run = SeedChecks(seed=seed, folder=world, checks=checks, tables=tables)
                runs.append(run)
                console.rule(f"Seed {run.seed} ({escape(chosen.name)} world, {escape(str(run.folder))})")
                logrank = next((frame for title, frame in run.tables if title.startswith("Survival")), None)
                if logrank is not None:
                    _print_frame(f"Seed {run.seed}: log-rank tests between adjacent strata", logrank.select(
                        "disease", "higher", "lower", "n_higher", "n_lower", "p_value", "ordered"))
                _print_checks(run.checks)
    finally:
        if work is None:
            shutil.rmtree(folder, ignore_errors=True)
    summary = seeds_summary(runs)
    table = Table(title=f"Summary across seeds ({escape(chosen.name)} world): checks met per seed", title_justify="left")
    table.add_column("check")
    for seed in seeds:
        table.add_column(f"seed {seed}", justify="center")
    table.add_column("seeds met", justify="right")
    failed = 0
    for label, results in summary:
        cells = [{True: "[green]OK[/]", False: "[bold red]FAILED[/]", None: "[yellow]n/a[/]"}[results.get(s)] for s in seeds]
        met = sum(1 for s in seeds if results.get(s) is True)
        checked = sum(1 for s in seeds if results.get(s) is not None)
        failed += sum(1 for s in seeds if results.get(s) is False)
        table.add_row(escape(label), *cells, f"{met}/{checked}")
    console.print(table)
    console.print(f"{failed} check(s) failed over {len(seeds)} seed(s)" if failed else f"every check met on every seed ({len(seeds)})")
    if failed:
        raise typer.Exit(code=1)


deprivation_app = typer.Typer(help="The zone-level deprivation index of the evaluation (docs/evaluation.md).", no_args_is_help=True)
app.add_typer(deprivation_app, name="deprivation")


@deprivation_app.command("aggregate")
def deprivation_aggregate(
    index: Annotated[Path, typer.Option(help="Commune-level index (Parquet or CSV): commune code and index, e.g. FDep or EDI.")],
    correspondence: Annotated[Path, typer.Option(help="Commune → zone correspondence with populations (Parquet or CSV).")],
    out: Annotated[Path, typer.Option(help="The zone-level index to write (Parquet: zone_code, deprivation), e.g. <reference_dir>/deprivation.parquet.")],
    index_columns: Annotated[str, typer.Option(help="The index file's commune code and index columns.")] = "commune_code,deprivation",
    correspondence_columns: Annotated[str, typer.Option(help="The correspondence's commune code, zone code and population columns.")] = "commune_code,zone_code,population",
) -> None:
    """Aggregate a commune-level deprivation index to the PMSI geographic codes, weighted by population."""
    from respop.evaluation.deprivation import aggregate_communes

    ic = tuple(c.strip() for c in index_columns.split(","))
    cc = tuple(c.strip() for c in correspondence_columns.split(","))
    if len(ic) != 2 or len(cc) != 3:
        raise RespopError("--index-columns takes 2 names (commune, index), --correspondence-columns 3 (commune, zone, population)")
    result = aggregate_communes(index, correspondence, index_columns=ic, correspondence_columns=cc)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    result.table.select("zone_code", "deprivation").write_parquet(tmp)
    tmp.replace(out)
    summary = result.summary()
    console.print(f"{summary['zones']} zones written to {escape(str(out))} from {summary['communes_used']} communes.")
    for key, what in (("communes_without_zone", "communes of the index without a zone in the correspondence"),
                      ("communes_without_index", "communes of the correspondence without a valid index (left out)"),
                      ("zones_without_index", "zones none of whose communes has an index (no value)"),
                      ("invalid_index_rows", "rows of the index without a commune or a numeric index")):
        if summary[key]:
            console.print(f"  {summary[key]} {what}")


@app.command("evaluate")
def evaluate(
    config: Annotated[Path, typer.Argument(help="Territory configuration (TOML) with \\[evaluation]; `respop run` (or the strata step) must have run.")],
) -> None:
    """Evaluate the experiment: the effect in the pilot territories against comparison territories (printed in French)."""
    from rich.table import Table

    from respop.evaluation.outcomes import outcome_label
    from respop.evaluation.run import run_evaluation, steps
    from respop.spec.catalogue import run_catalogue

    cfg = load_config(config)
    with progress_steps(steps(cfg), "evaluation") as step:
        result = run_evaluation(cfg, step)
    catalogue = run_catalogue(cfg)
    names = {s.disease: s.algorithm.name for s in catalogue.specs}
    design = result.design
    pilots = ", ".join(f"{design.names[t]} (depuis {s})" for t, s in sorted(design.pilots.items()))
    console.print(f"Territoires pilotes : {escape(pilots)} ; {len(design.donors)} territoires de comparaison.")
    table = Table(title="Effet dans les territoires pilotes (tous pilotes réunis)", title_justify="left")
    for col in ("indicateur", "méthode", "effet", "IC", "p"):
        table.add_column(col, justify="left" if col in ("indicateur", "méthode") else "right")
    method_fr = {"did": "double différence", "synthetic_control": "contrôle synthétique"}
    for r in result.effects.filter(result.effects["territory_id"].is_null()).iter_rows(named=True):
        label = outcome_label(r["outcome"], names.get(r["disease"], r["disease"]), catalogue.features)
        if r["effect"] is None:
            table.add_row(escape(label), method_fr[r["method"]], "–", escape(r["note"] or "–"), "–")
            continue
        ci = f"{_fr_signed(r['ci_lower'])} à {_fr_signed(r['ci_upper'])}"
        table.add_row(escape(label), method_fr[r["method"]], _fr_signed(r["effect"]), ci, _fr_p(r["p_value"]))
    console.print(table)
    _print_by_deprivation(result.out, names, catalogue)
    console.print(f"Sorties : {escape(str(result.out))} (panel.parquet contient des effectifs non masqués : "
                  "à garder dans l'espace sécurisé ; le magasin publie les résultats masqués)")


def _print_by_deprivation(out: Path, names: dict[str, str], catalogue) -> None:
    """The last year's standardised outcomes by deprivation quintile (analysts' view: the store
    does not publish them, docs/evaluation.md)."""
    import polars as pl
    from rich.table import Table

    from respop.evaluation.outcomes import outcome_label

    path = out / "by_deprivation.parquet"
    if not path.is_file():
        return
    rows = pl.read_parquet(path).filter(pl.col("quintile").is_not_null())
    if rows.is_empty():
        return
    last = int(rows["year"].max())
    rows = rows.filter(pl.col("year") == last)
    table = Table(title=f"Selon la défavorisation des zones de résidence, {last} (valeurs standardisées ; 1 = moins défavorisé)",
                  title_justify="left")
    table.add_column("indicateur")
    for q in range(1, 6):
        table.add_column(f"Q{q}", justify="right")
    for (disease, outcome), group in rows.group_by("disease", "outcome", maintain_order=True):
        values = dict(group.select("quintile", "value").iter_rows())
        table.add_row(escape(outcome_label(outcome, names.get(disease, disease), catalogue.features)),
                      *[_fr_dec(values.get(q)) for q in range(1, 6)])
    console.print(table)


def _fr_signed(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:+.1%}".replace(".", ",").replace("%", "\u00a0%").replace("-", "−")


def _fr_p(value: float | None) -> str:
    if value is None:
        return "–"
    return "< 0,001" if value < 0.001 else f"{value:.3f}".replace(".", ",")


@app.command("run")
def run_all(
    config: Annotated[Path, typer.Argument(help="Territory configuration (TOML).")],
    steps: Annotated[Optional[str], typer.Option(help="Comma-separated steps to run, e.g. strata,store (default: every step: input, territories, cases, strata, evaluation (with \\[evaluation]), store).")] = None,
    engine: Annotated[Optional[str], typer.Option(help="polars or spark (default: the configuration's \\[engine] name, else polars).")] = None,
    spark_master: Annotated[Optional[str], typer.Option(help="Spark master URL, e.g. local[4], spark://host:7077, yarn (default: \\[engine] spark_master, else local[*]).")] = None,
    models: Annotated[bool, typer.Option(help="Fit survival and prediction in the strata step (--no-models: the data steps only; no store step).")] = True,
) -> None:
    """Run the whole pipeline (input report, territories, cases, strata) and publish it to the store. With \\[hospital]: hospital mode, on the hospital's own stays, nothing published (docs/hospital.md)."""
    import datetime as dt

    started = dt.datetime.now()  # the run's start in the store (its steps' times follow)
    from respop.pipeline import STEPS, run

    chosen = tuple(s.strip() for s in steps.split(",")) if steps else STEPS
    unknown = [s for s in chosen if s not in STEPS]
    if unknown:
        raise RespopError(f"unknown step(s) {unknown}; steps: {', '.join(STEPS)}")
    if engine is not None and engine not in ("polars", "spark"):
        raise RespopError(f"--engine must be polars or spark, got {engine!r}")
    with progress_steps(len(chosen), "respop run") as step:
        result = run(config, step, chosen, engine=engine, spark_master=spark_master, models=models, started_at=started)
    console.print(f"engine: {result.config.engine.name}")
    for name, seconds in result.timings.items():
        console.print(f"  {name:<12} {seconds:>8.1f} s")
    if result.run_id >= 0:
        _print_run(result.config, result.run_id)
    if result.config.hospital is not None:
        _print_hospital_run(result, config)


def _print_hospital_run(result, config: Path) -> None:
    """Hospital mode: what was kept and left out, and that nothing was published (French, for the DIM)."""
    hospital = result.config.hospital
    console.print(f"Mode hôpital (FINESS {', '.join(hospital.finess)}) : les patients de l'établissement, quelle que "
                  "soit leur résidence ; ni territoires, ni dénominateurs de population, ni modèles.")
    scope = (result.summaries.get("input") or {}).get("hospital")
    if scope:
        kept = ", ".join(f"{f} : {_fr_int(n)}" for f, n in scope["stays_kept"].items())
        console.print(f"Séjours retenus par FINESS : {kept} ; séjours d'autres FINESS écartés : "
                      f"{_fr_int(scope['stays_other_finess'])} ({_fr_int(scope['other_finess'])} FINESS).")
    if result.skipped:
        console.print(f"Étapes non exécutées en mode hôpital : {', '.join(result.skipped)}.")
    console.print("Rien n'est publié dans le store ni sur les tableaux de bord. "
                  f"Listes pour le DIM : respop liste {escape(str(config))}")


@app.command("liste")
def liste(
    config: Annotated[Path, typer.Argument(help="Configuration de l'établissement (TOML), avec sa section \\[hospital].")],
    annee: Annotated[Optional[int], typer.Option(help="Année des strates (défaut : \\[hospital] year, sinon la dernière année).")] = None,
) -> None:
    """Mode hôpital : les séjours de l'établissement des personnes de chaque strate, pour le DIM (fichiers privés)."""
    from rich.table import Table

    from respop.hospital import require_hospital, write_lists

    cfg = load_config(config)
    require_hospital(cfg, config)
    result = write_lists(cfg, f"respop liste {config}" + (f" --annee {annee}" if annee else ""), config, annee)
    table = Table(title=f"Listes {result.year} : personnes et séjours par strate (FINESS "
                        f"{', '.join(cfg.hospital.finess)})", title_justify="left")
    for col in ("maladie", "strate", "personnes", "séjours"):
        table.add_column(col, justify="right" if col in ("personnes", "séjours") else "left")
    for row in result.counts.iter_rows(named=True):
        table.add_row(escape(row["maladie"]), escape(row["strate_libelle"]), _fr_int(row["personnes"]), _fr_int(row["sejours"]))
    console.print(table)
    console.print(f"Fichiers écrits dans {escape(str(result.folder))} ({len(result.files)} fichiers, CSV et Parquet) ; "
                  f"accès journalisé dans {escape(str(result.log))}.")
    console.print("Ces listes désignent des patients par leurs numéros de séjour : à garder dans l'espace sécurisé du "
                  "DIM, jamais dans le store ni sur un tableau de bord (docs/hospital.md).")


def _print_run(cfg, run_id: int) -> None:
    from respop.store.db import Store

    store = Store(cfg.store.url)
    try:
        run = store.run(run_id)
    finally:
        store.close()
    console.print(
        f"Run {run_id} published to the store {escape(repr(store))} ({run['status']}); "
        f"boards: respop dashboard {escape(str(run['config_path'] or ''))}"
    )


store_app = typer.Typer(help="The results store: aggregated, small-cell-suppressed results the boards read.", no_args_is_help=True)
app.add_typer(store_app, name="store")


@store_app.command("publish")
def store_publish(
    config: Annotated[Path, typer.Argument(help="Territory configuration (TOML) whose outputs to publish.")],
) -> None:
    """Publish the configuration's current outputs as a new run of its store (one transaction)."""
    from respop.pipeline import publish

    cfg = load_config(config)
    _print_run(cfg, publish(cfg, config))
    console.print("Outputs of earlier runs published on their own: the run starts when publishing started, and its "
                  "steps are marked reused (their durations belong to the runs that built them).")


@store_app.command("runs")
def store_runs(
    config: Annotated[Path, typer.Argument(help="Territory configuration (TOML).")],
) -> None:
    """List the runs of the configuration's store."""
    from rich.table import Table

    from respop.store.db import Store

    cfg = load_config(config)
    store = Store(cfg.store.url)
    try:
        runs = store.runs()
    finally:
        store.close()
    table = Table(title=f"Runs in {escape(repr(store))}", title_justify="left")
    for col in ("run", "name", "status", "years", "started", "seconds", "results sha256"):
        table.add_column(col)
    for r in runs:
        years = f"{r['first_year']}–{r['last_year']}" if r["first_year"] else "–"
        seconds = sum(v for v in (r["timings"] or {}).values() if isinstance(v, (int, float)))
        table.add_row(str(r["run_id"]), escape(r["name"]), r["status"], years, f"{r['started_at']:%Y-%m-%d %H:%M:%S}",
                      f"{seconds:.1f}", r["results_sha256"][:12])
    console.print(table)


DASHBOARD_PORT = 8501


@app.command("dashboard")
def dashboard(
    config: Annotated[str, typer.Argument(metavar="CONFIG", help="Territory configuration (TOML); or hash-password: make the hash of a board password.")],
    port: Annotated[int, typer.Option(help="Port of the board.")] = DASHBOARD_PORT,
    run: Annotated[Optional[int], typer.Option("--run", help="Open this run of the store (default: the newest that succeeded).")] = None,
    address: Annotated[str, typer.Option(help="Address the board listens on: 127.0.0.1 (this machine only, e.g. behind a reverse proxy), or 0.0.0.0 for every interface.")] = "127.0.0.1",
    host_name: Annotated[Optional[list[str]], typer.Option("--host-name", help="Host name browsers reach the board by (a reverse proxy's), repeatable; other names are refused.")] = None,
) -> None:
    """Serve the board of the réunions cliniques (Streamlit, in French) over the configuration's store.

    The board has no HTTPS of its own: to reach it from other machines, put it behind a reverse
    proxy that serves HTTPS (dashboards/README.md). `respop dashboard hash-password` asks for a
    password twice and prints the lines to paste in the dashboard section of the configuration."""
    import subprocess

    if config == "hash-password" and not Path(config).exists():
        _hash_password()
        return
    from respop.boards.serve import LOOPBACK, WILDCARD, streamlit_command
    from respop.store.db import Store

    cfg = load_config(config)
    store = Store(cfg.store.url)
    try:
        latest = store.latest_run(cfg.name)
    finally:
        store.close()
    if latest is None:
        err_console.print(f"[yellow]No published results for {escape(cfg.name)!r} yet[/]: run `respop run {escape(config)}`; "
                          "the board says so until then.")
    names = tuple(host_name or ())
    command = streamlit_command(config, port, address, run, names)
    if address in WILDCARD and not names:
        err_console.print(f"[yellow]The board listens on every interface ({escape(address)}) without HTTPS[/]: give "
                          "--host-name (the name browsers use) and serve it through a reverse proxy with HTTPS.")
    elif address not in LOOPBACK:
        err_console.print(f"[yellow]The board listens on {escape(address)} without HTTPS[/]: serve it through a "
                          "reverse proxy with HTTPS (dashboards/README.md).")
    host = "localhost" if address in LOOPBACK + WILDCARD else address
    url = f"http://{host}:{port}/" + (f"?run={run}" if run is not None else "")
    console.print(f"Board of {escape(cfg.name)}: {url}  (Ctrl+C stops it)", soft_wrap=True)
    raise typer.Exit(subprocess.call(command))


def _hash_password() -> None:
    from respop.boards.access import hash_password

    password = typer.prompt("Board password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise RespopError("the password is too short: give at least 8 characters")
    console.print("Paste in the [dashboard] section of the configuration:", soft_wrap=True, markup=False)
    console.print('access = "password"', soft_wrap=True, markup=False)
    console.print(f'password_hash = "{hash_password(password)}"', soft_wrap=True, markup=False)
    console.print("(or keep the hash out of the configuration: in a file named by password_hash_file, "
                  "or in the environment variable RESPOP_DASHBOARD_PASSWORD_HASH)", soft_wrap=True, markup=False)


@app.command("report")
def report(
    config: Annotated[Path, typer.Argument(help="Territory configuration (TOML).")],
    out: Annotated[Optional[Path], typer.Option(help="HTML file to write (default: in the folder dossiers of output.dir, a file named after the territory and the run).")] = None,
    run: Annotated[Optional[int], typer.Option("--run", help="Run of the store (default: the newest that succeeded).")] = None,
    territoire: Annotated[Optional[int], typer.Option("--territoire", help="Territory id (default: the run's territory of interest, else the first).")] = None,
) -> None:
    """Write the meeting dossier of a territory: one self-contained HTML file in French, printable on A4."""
    from respop.boards.report import write_report

    with progress_steps(None, "drawing the dossier"):
        path = write_report(config, out, run, territoire)
    console.print(f"Meeting dossier written to {escape(str(path))}", soft_wrap=True)


@app.command("version")
def version() -> None:
    """Print respop's version."""
    console.print(f"respop {__version__}")
    console.print(ATTRIBUTION)


EXIT_UNEXPECTED = 3
"""Exit status of an unexpected error (a bug of respop); 2 is a user error, 1 a failed check."""


def main() -> None:
    """Entry point and error policy (docs/architecture.md, "Error policy"): a :class:`RespopError`
    (user error, full disk) prints its message in one line, no traceback, and exits with 2; any
    other exception prints its type only (its message may quote data rows: polars quotes the
    values it could not read) and the private file its full traceback was written to, and exits
    with :data:`EXIT_UNEXPECTED`."""
    try:
        app(standalone_mode=True)
    except RespopError as exc:
        err_console.print(f"[bold red]Error:[/] {escape(str(exc))}", soft_wrap=True)  # one line: a path is never cut
        raise SystemExit(2) from None
    except Exception as exc:  # noqa: BLE001 - the policy for everything else
        raise SystemExit(_unexpected(exc)) from None


def _unexpected(exc: Exception) -> int:
    """Report an exception that is not a :class:`RespopError`; returns the exit status."""
    from respop.errors import is_disk_full

    if is_disk_full(exc):
        where = getattr(exc, "filename", None)
        err_console.print(
            f"[bold red]Error:[/] disk full{f' while writing {escape(str(where))}' if where else ''}: respop replaces "
            "results only once they are completely written, so the previous results are intact; free some space "
            "and run again",
            soft_wrap=True,
        )
        return 2
    name = f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins.")
    try:
        path = _write_traceback(exc)
    except OSError as failure:
        where = f"its traceback could not be written ({escape(failure.strerror or type(failure).__name__)})"
    else:
        where = f"the full traceback is in {escape(str(path))} (private: it may quote patient data; keep it in the secure area)"
    err_console.print(
        f"[bold red]Unexpected error[/] ({escape(name)}): a bug of respop. Its message is not shown here (it may quote "
        f"data rows); {where}. Please report it with the command you ran.",
        soft_wrap=True,
    )
    return EXIT_UNEXPECTED


def _write_traceback(exc: Exception) -> Path:
    """Write the traceback of ``exc`` to a new private file (mode 600): in the configuration's
    ``input.workspace_dir`` (the secure area) when the command names a configuration that has
    one, else in the system's temporary folder. Never in the store, never on a board."""
    import datetime as dt
    import os
    import sys
    import tempfile
    import traceback

    folder = Path(tempfile.gettempdir())
    for config_path in _configurations_named(sys.argv[1:]):
        try:
            workspace = load_config(config_path).input.workspace_dir
        except Exception:  # noqa: BLE001 - an unreadable configuration: the temporary folder
            continue
        if workspace is not None:
            folder = workspace
        break
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"respop-error-{dt.datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(f"respop {__version__}\ncommand: respop {' '.join(sys.argv[1:])}\n\n")
        fh.write("".join(traceback.format_exception(exc)))
    return path


def _configurations_named(args: list[str]) -> list[Path]:
    """The configuration files a command line names: ``--config FILE`` or a ``.toml`` argument."""
    found = []
    for i, arg in enumerate(args):
        if arg == "--config" and i + 1 < len(args):
            found.append(Path(args[i + 1]))
        elif arg.startswith("--config="):
            found.append(Path(arg.split("=", 1)[1]))
        elif arg.endswith(".toml") and not arg.startswith("-"):
            found.append(Path(arg))
    return [p for p in found if p.is_file()]
