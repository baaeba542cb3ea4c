"""The input report: what was read, loaded, quarantined and filtered, and why.

It holds counts only (no row, no patient key), so it can be printed, written to the run's
report.json and, later, stored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.table import Table


@dataclass
class TableCount:
    """Rows of one file: ``rows_read = rows_loaded + rows_quarantined``."""

    table: str
    label: str
    year: int | None
    path: str
    format: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    reasons: dict[str, int] = field(default_factory=dict)
    absent_optional_columns: list[str] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        return self.rows_read == self.rows_loaded + self.rows_quarantined


@dataclass
class AtihFileCount:
    """Lines of one ATIH file (RSA or ANO, respop.pmsi.atih): ``lines_read = lines_parsed +
    lines_quarantined``. A parsed line became a row of the SNDS-shaped tables, where the usual
    checks and filters count it again; a quarantined one could not be sliced (``reasons``)."""

    kind: str
    name: str
    path: str
    finess: str
    year: int
    month: int
    lines_read: int = 0
    lines_parsed: int = 0
    lines_quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        return self.lines_read == self.lines_parsed + self.lines_quarantined


@dataclass
class FilterCount:
    """Stays a quality filter excluded (first excluding filter only), kept for clinical events
    only (first such filter, among the kept stays and séances) and flagged (overlaps allowed)."""

    name: str
    title: str
    enabled: bool
    excluded: int
    flagged: int
    effect: str = "excluded"
    """``excluded`` (left out of everything) or ``clinical events only`` (kept for case finding
    and outcomes; residence not used, or not counted as a stay): respop.pmsi.quality."""
    clinical_only: int = 0
    """Kept stays and séances this filter is the first enabled clinical-only filter to flag."""
    causes: dict[str, int] = field(default_factory=dict)
    """For a filter with several causes (``linkage``): the stays it flags per cause, each stay
    under its first cause, in the order of :data:`LINKAGE_CAUSES`."""


LINKAGE_CAUSES = (
    "no linkage row (T_MCOaaC row, or ANO line of an RSA)",
    "return codes not all 0",
    "missing or placeholder patient key",
)
"""The causes of the ``linkage`` filter, in the order a stay is counted under its first one."""


@dataclass
class PmsiReport:
    folder: str
    years: list[int | None]
    tables: list[TableCount]
    filters: list[FilterCount]
    stays_loaded: int
    stays_kept: int
    sessions_kept: int
    diagnoses: dict[str, int]
    atih_files: list[AtihFileCount] = field(default_factory=list)
    """For a folder of ATIH files: each RSA and ANO file read (the latest month of a hospital and year)."""
    superseded: list[str] = field(default_factory=list)
    """ATIH files of earlier months that a later cumulative month replaced (not read)."""

    @property
    def stays_balanced(self) -> bool:
        """``stays loaded = kept + séances kept apart + Σ excluded``."""
        return self.stays_loaded == self.stays_kept + self.sessions_kept + sum(f.excluded for f in self.filters)

    @property
    def stays_clinical_only(self) -> int:
        """Kept stays and séances whose residence is not used or that are not counted as stays
        (part of ``stays_kept + sessions_kept``, not an addend of the balance)."""
        return sum(f.clinical_only for f in self.filters)

    @property
    def balanced(self) -> bool:
        return self.stays_balanced and all(t.balanced for t in (*self.tables, *self.atih_files))

    def table(self, label: str) -> TableCount:
        return next(t for t in self.tables if t.label == label)

    def filter(self, name: str) -> FilterCount:
        return next(f for f in self.filters if f.name == name)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["balanced"] = self.balanced
        out["stays_clinical_only"] = self.stays_clinical_only
        return out

    def render(self, console: Console) -> None:
        """Print the report as tables."""
        if self.atih_files:
            atih = Table(title=f"ATIH files in {escape(self.folder)}", title_justify="left")
            for col, justify in (("file", "left"), ("lines", "right"), ("parsed", "right"),
                                 ("quarantined", "right"), ("balanced", "center")):
                atih.add_column(col, justify=justify)
            for a in self.atih_files:
                atih.add_row(escape(a.name), f"{a.lines_read:,}", f"{a.lines_parsed:,}", f"{a.lines_quarantined:,}",
                             "✓" if a.balanced else "✗")
            console.print(atih)
            atih_reasons = [(a.name, r, n) for a in self.atih_files for r, n in a.reasons.items()]
            if atih_reasons:
                lines = Table(title="ATIH lines quarantined before the tables (a line has one reason)", title_justify="left")
                for col in ("file", "reason", "lines"):
                    lines.add_column(col, justify="right" if col == "lines" else "left")
                for name, reason, n in atih_reasons:
                    lines.add_row(escape(name), escape(reason), f"{n:,}")
                console.print(lines)
            if self.superseded:
                console.print(
                    "Superseded by a later month (M1…M12 are cumulative; not read): " + ", ".join(map(escape, self.superseded))
                )
        title = "SNDS-shaped tables parsed from them" if self.atih_files else f"PMSI MCO tables in {escape(self.folder)}"
        files = Table(title=title, title_justify="left")
        for col, justify in (("file", "left"), ("format", "left"), ("read", "right"), ("loaded", "right"),
                             ("quarantined", "right"), ("balanced", "center")):
            files.add_column(col, justify=justify)
        for t in self.tables:
            files.add_row(t.label, t.format, f"{t.rows_read:,}", f"{t.rows_loaded:,}", f"{t.rows_quarantined:,}",
                          "✓" if t.balanced else "✗")
        console.print(files)

        reasons = Table(title="Quarantine reasons (a row may have several)", title_justify="left")
        reasons.add_column("file")
        reasons.add_column("reason")
        reasons.add_column("rows", justify="right")
        for t in self.tables:
            for reason, n in t.reasons.items():
                reasons.add_row(t.label, escape(reason), f"{n:,}")
        if reasons.row_count:
            console.print(reasons)
        absent = [(t.label, c) for t in self.tables for c in t.absent_optional_columns]
        if absent:
            console.print(
                "Optional columns absent (treated as empty): "
                + "; ".join(f"{label}.{c}" for label, c in absent)
            )

        filters = Table(title="Stays: quality filters, in order", title_justify="left")
        for col, justify in (("filter", "left"), ("what it catches", "left"), ("on", "center"),
                             ("excluded", "right"), ("clinical only", "right"), ("flagged", "right")):
            filters.add_column(col, justify=justify)
        for f in self.filters:
            clinical = f"{f.clinical_only:,}" if f.effect != "excluded" else "–"
            excluded = f"{f.excluded:,}" if f.effect == "excluded" else "–"
            filters.add_row(f.name, f.title, "yes" if f.enabled else "no", excluded, clinical, f"{f.flagged:,}")
        console.print(f"Stays loaded (valid T_MCOaaB rows): {self.stays_loaded:,}")
        console.print(filters)
        for f in self.filters:
            if f.causes:
                console.print(f"{f.name}, by cause: " + "; ".join(f"{cause}: {n:,}" for cause, n in f.causes.items()))
        console.print(f"Séances kept apart (CMD 28): {self.sessions_kept:,}")
        console.print(f"[bold]Stays kept: {self.stays_kept:,}[/]")
        if self.stays_clinical_only:
            console.print(
                "Kept for clinical events only (residence not used, or not counted as a stay; "
                f"séances included): {self.stays_clinical_only:,}"
            )
        if self.diagnoses:
            console.print(
                "Diagnoses of kept stays and séances: "
                + ", ".join(f"{pos} {n:,}" for pos, n in sorted(self.diagnoses.items()))
            )
        verdict = "[green]every row is accounted for[/]" if self.balanced else "[red]counts do not add up[/]"
        console.print(verdict)
