"""Hand-written SNDS PMSI MCO tables for tests: a few stays whose every value is known.

``SndsYear(2022).stay(...)`` adds a stay (rows in B, C, and optionally D and UM) with valid
defaults that a test overrides; ``write(folder, "parquet" | "csv")`` writes T_MCO22B… files.
Parquet files use the SNDS types (ETA_NUM and RSA_NUM as integers in B and C, strings in D and
UM) to exercise the reader's normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

B_DEFAULTS = {
    "AGE_ANN": "67",
    "COD_SEX": "1",
    "BDI_COD": "01001",
    "BDI_DEP": "01",
    "DGN_PAL": "I500",
    "DGN_REL": None,
    "ENT_MOD": "8",
    "ENT_PRV": "5",
    "SOR_MOD": "8",
    "SEJ_NBJ": "5",
    "GRG_GHM": "05M09T",
    "SEJ_TYP": None,
    "SOR_ANN": None,
    "SOR_MOI": "03",
}
C_DEFAULTS = {
    "NIR_ANO_17": "PATIENT0000000001",
    "EXE_SOI_DTD": "01Mar{year}:10:00:00",
    "EXE_SOI_DTF": "06Mar{year}:12:30:00",
    **{code: "0" for code in ("NIR_RET", "NAI_RET", "SEX_RET", "SEJ_RET", "FHO_RET", "PMS_RET", "DAT_RET")},
}
INT_COLUMNS_BC = ("ETA_NUM", "RSA_NUM")


@dataclass
class SndsYear:
    year: int
    b: list[dict] = field(default_factory=list)
    c: list[dict] = field(default_factory=list)
    d: list[dict] = field(default_factory=list)
    um: list[dict] = field(default_factory=list)
    _next_rsa: int = 1

    def stay(
        self,
        eta: str = "010000024",
        rsa: str | None = None,
        das: tuple[str, ...] = (),
        units: tuple[tuple[str | None, str | None], ...] = (),
        c: dict | None = None,
        with_c: bool = True,
        **b,
    ) -> int:
        """Add a stay; return its canonical stay id. ``b`` overrides B columns, ``c`` C columns."""
        if rsa is None:
            rsa = f"{self._next_rsa:010d}"
            self._next_rsa += 1
        row_b = {"ETA_NUM": eta, "RSA_NUM": rsa, **B_DEFAULTS, "SOR_ANN": str(self.year), **b}
        self.b.append(row_b)
        if with_c:
            row_c = {"ETA_NUM": eta, "RSA_NUM": rsa, **C_DEFAULTS, **(c or {})}
            row_c = {k: (v.format(year=self.year) if isinstance(v, str) else v) for k, v in row_c.items()}
            self.c.append(row_c)
        for code in das:
            self.d.append({"ETA_NUM": eta, "RSA_NUM": rsa, "ASS_DGN": code})
        for rank, (dp, dr) in enumerate(units, start=1):
            self.um.append({"ETA_NUM": eta, "RSA_NUM": rsa, "DGN_PAL": dp, "DGN_REL": dr, "UM_ORD_NUM": str(rank)})
        return self.year * 1_000_000_000 + len(self.b)  # stay_id: year and row of the stay in B

    def frames(self, typed: bool) -> dict[str, pl.DataFrame]:
        out = {}
        for table, rows, template in (
            ("B", self.b, {"ETA_NUM": None, "RSA_NUM": None, **B_DEFAULTS}),
            ("C", self.c, {"ETA_NUM": None, "RSA_NUM": None, **C_DEFAULTS}),
            ("D", self.d, {"ETA_NUM": None, "RSA_NUM": None, "ASS_DGN": None}),
            ("UM", self.um, {"ETA_NUM": None, "RSA_NUM": None, "DGN_PAL": None, "DGN_REL": None, "UM_ORD_NUM": None}),
        ):
            columns = list(dict.fromkeys([*template, *(k for r in rows for k in r)]))
            df = pl.DataFrame(
                {col: [r.get(col) for r in rows] for col in columns},
                schema={col: pl.String for col in columns},
            )
            if typed and table in ("B", "C"):
                df = df.with_columns(pl.col(c).cast(pl.Int64) for c in INT_COLUMNS_BC)
            out[table] = df
        return out

    def write(self, folder: Path, fmt: str = "parquet", separator: str = ";") -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        yy = f"{self.year % 100:02d}"
        for table, df in self.frames(typed=fmt == "parquet").items():
            path = folder / f"T_MCO{yy}{table}.{fmt}"
            if fmt == "parquet":
                df.write_parquet(path)
            else:
                df.write_csv(path, separator=separator)
        return folder
