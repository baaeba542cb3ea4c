"""The ``respop`` command line."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from respop import __version__
from respop.resources import ATTRIBUTION
from pydantic import ValidationError

from respop.config import Config, InputConfig, explain_validation_error, load_config
from respop.errors import RespopError

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="respop",
    help="Responsabilité populationnelle: territories, case finding and risk strata from the PMSI.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
pmsi_app = typer.Typer(help="Read and check SNDS PMSI MCO tables.", no_args_is_help=True)
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
    if not value:
        return None
    years: list[int] = []
    for part in value.split(","):
        m = re.fullmatch(r"\s*(\d{4})\s*(?:-\s*(\d{4})\s*)?", part)
        if not m:
            raise RespopError(f"--years: expected e.g. 2019-2023 or 2021,2022, got {value!r}")
        start, end = int(m[1]), int(m[2] or m[1])
        if end < start:
            raise RespopError(f"--years: {start}-{end} is an empty range")
        years.extend(range(start, end + 1))
    return years


@pmsi_app.command("check")
def pmsi_check(
    folder: Annotated[Optional[Path], typer.Argument(help="Folder of SNDS tables T_MCOaaB/C/D/UM (Parquet or CSV); default: input.pmsi_dir of --config.")] = None,
    config: Annotated[Optional[Path], typer.Option(help="Territory configuration (TOML): its input and quality sections apply.")] = None,
    years: Annotated[Optional[str], typer.Option(help="Exit years to read, e.g. 2019-2023.")] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", help="auto, csv or parquet (default: the configuration's, else auto).")] = None,
    separator: Annotated[Optional[str], typer.Option(help="CSV separator (default: detected).")] = None,
    encoding: Annotated[Optional[str], typer.Option(help="CSV encoding: utf-8, latin-1 or cp1252.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Also write staged tables, quarantine and report.json here (private: holds patient keys).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Read a folder of SNDS PMSI MCO tables and report every row: loaded, quarantined, filtered."""
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
    data = read_pmsi(folder, input_cfg, cfg.quality)
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


@app.command("synth")
def synth(
    profile: Annotated[str, typer.Option(help="tiny, demo, national, or a profile file.")] = "demo",
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same data.")] = 1,
    years: Annotated[Optional[str], typer.Option(help="Exit years, e.g. 2019-2023 (default: the profile's).")] = None,
    out: Annotated[Path, typer.Option(help="Output folder (pmsi/, reference/, truth/).")] = Path("output/synthetic"),
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
    report: Annotated[bool, typer.Option("--report", help="Print generated figures beside the published ones.")] = False,
) -> None:
    """Generate synthetic PMSI-shaped data (SNDS tables) with its ground truth."""
    from respop.synth import generate, load_profile
    from respop.synth.calibration import calibration

    if fmt not in ("parquet", "csv"):
        raise RespopError(f"--format: expected parquet or csv, got {fmt!r}")
    prof = load_profile(profile)
    year_list = _parse_years(years) or prof.years
    with progress_steps(None, f"generating the {prof.name} world") as step:
        result = generate(prof, seed, out, year_list, fmt, step)
    console.print(
        f"{prof.name}: {result.persons:,} persons, "
        + ", ".join(f"{y}: {n:,} stays" for y, n in result.stays.items())
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


@app.command("version")
def version() -> None:
    """Print respop's version."""
    console.print(f"respop {__version__}")
    console.print(ATTRIBUTION)


def main() -> None:
    """Entry point: user errors print a message, not a traceback, and exit with status 2."""
    try:
        app(standalone_mode=True)
    except RespopError as exc:
        err_console.print(f"[bold red]Error:[/] {escape(str(exc))}")
        raise SystemExit(2) from None
