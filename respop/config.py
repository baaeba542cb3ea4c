"""Run configuration: one TOML file per territory under ``territories/``.

The file is validated on load: an unknown key, a value of the wrong type or an impossible setting
is a :class:`~respop.errors.ConfigError` that names the file, the key and the value. Paths in the
file are relative to the file's own folder.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from respop.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_years(years: list[int] | None, what: str, absent: str) -> list[int] | None:
    if years is not None:
        if not years:
            raise ValueError(f"give at least one year, or leave the key out {absent}")
        bad = [y for y in years if not 2005 <= y <= 2099]
        if bad:
            raise ValueError(f"{what} must be between 2005 and 2099, got {bad}")
    return years


class InputConfig(_Section):
    """Where the PMSI tables are and how to read them."""

    pmsi_dir: Path | None = Field(None, description="folder holding T_MCOaaB/C/D/UM files")
    workspace_dir: Path | None = Field(
        None, description="private folder for temporary patient-level files (default: the system's temporary folder)"
    )
    reference_dir: Path | None = Field(
        None, description="folder with zones.parquet (GeoParquet), population.parquet, hospitals.parquet"
    )
    format: Literal["auto", "csv", "parquet"] = "auto"
    years: list[int] | None = Field(None, description="exit years to read; all found if absent")
    separator: Literal["auto", ",", ";", "\t", "|"] = "auto"
    encoding: Literal["utf-8", "latin-1", "cp1252"] = "utf-8"

    @field_validator("years")
    @classmethod
    def _plausible_years(cls, years: list[int] | None) -> list[int] | None:
        return _check_years(years, "PMSI years", "to read every year found")


class QualityConfig(_Section):
    """The quality filters applied to stays (see docs/pmsi.md). ``true`` switches a filter on."""

    linkage: bool = True
    legal_entity_duplicates: bool = True
    inter_hospital_services: bool = True
    error_ghm: bool = True
    invalid_residence: bool = True
    residence_abroad: bool = True
    duplicate_stays: bool = True
    sessions_apart: bool = True
    min_date: dt.date = dt.date(2005, 1, 1)
    max_date: dt.date | None = None
    zones_file: Path | None = Field(
        None, description="CSV or Parquet with a zone_code column: the valid residence codes"
    )

    @model_validator(mode="after")
    def _date_window(self) -> QualityConfig:
        if self.max_date is not None and self.max_date < self.min_date:
            raise ValueError(f"max_date {self.max_date} is before min_date {self.min_date}")
        return self


class TerritoriesConfig(_Section):
    """How the health territories are built (see docs/territories.md)."""

    departements: list[str] | None = Field(None, description="scope: these départements (codes such as '29', '2A')")
    zones: list[str] | None = Field(None, description="scope: these zones; neither key means every zone of the reference")
    method: Literal["plurality", "leiden"] = "leiden"
    min_population: int = Field(0, ge=0, description="every territory has at least this many inhabitants")
    target_count: int | None = Field(None, ge=1, description="leiden: number of territories to aim for")
    resolution: float = Field(1.0, gt=0, description="leiden: resolution when no target_count is given")
    seed: int = 0
    hospital_grouping: str = Field("establishment", description="establishment, town, or a CSV/Parquet table (hospital_id, group)")
    years: list[int] | None = Field(None, description="exit years of the flows; all years read if absent")
    adults_only: bool = False
    diagnosis_prefixes: list[str] | None = Field(None, description="only stays whose principal diagnosis starts so, e.g. ['I50']")
    stay_kind: Literal["all", "medical", "surgical"] = "all"
    pins: dict[str, str] = Field(
        default_factory=dict,
        description="manual pins: zone → a zone whose territory it must join, e.g. {'29004' = '29019'}",
    )
    territory_of_interest: str | None = Field(
        None, description="zone code inside the territory the rest of the pipeline works on"
    )

    @model_validator(mode="after")
    def _scope(self) -> TerritoriesConfig:
        if self.departements is not None and self.zones is not None:
            raise ValueError("give departements or zones as the scope, not both")
        return self


class CasesConfig(_Section):
    """Case finding (see docs/case_finding.md)."""

    years: list[int] | None = Field(None, description="index years; every year read if absent")
    residence: Literal["modal", "latest"] = Field("modal", description="how the zone of residence is chosen from the stays")
    residence_years: int | None = Field(
        None, ge=0, le=20, description="years before the index year whose stays give the residence (default: the algorithm's look-back)"
    )
    reference_population: str = Field(
        "population",
        description="standard population of the standardised rates: population (the reference_dir table summed over zones), esp2013, or a CSV file (age_band, population[, sex])",
    )
    confidence: float = Field(0.95, gt=0.5, lt=1, description="level of the confidence intervals")
    algorithms_dir: Path | None = Field(None, description="folder of <disease>.toml specs (default: the shipped algorithms/)")

    @field_validator("years")
    @classmethod
    def _years(cls, years: list[int] | None) -> list[int] | None:
        return _check_years(years, "index years", "for every year read")


class OutputConfig(_Section):
    dir: Path | None = Field(
        None, description="the run's output folder (private: holds patient keys); default output/<name> in the current folder"
    )


class StoreConfig(_Section):
    url: str | None = Field(
        None,
        description="SQLAlchemy URL of the results store; default: SQLite file respop.sqlite in output.dir. "
        "A relative SQLite path is resolved against the configuration file's folder",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"not a database URL ({exc})") from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError(f"the store is SQLite or PostgreSQL, got {url.get_backend_name()!r}")
        return value


class DashboardConfig(_Section):
    access: Literal["public", "password"] = Field(
        "public", description="public: anyone who reaches the board; password: asks for the password first"
    )
    password_hash: str | None = Field(
        None, description="scrypt hash of the board's password, made by `respop dashboard hash-password`"
    )
    meeting_mode: bool = Field(False, description="open the board in meeting mode (large type) by default")

    @model_validator(mode="after")
    def _password(self) -> "DashboardConfig":
        if self.access == "password" and not self.password_hash:
            raise ValueError("access = 'password' needs password_hash (respop dashboard hash-password)")
        return self


class EngineConfig(_Section):
    """Which engine runs the algorithm specs (docs/spark.md)."""

    name: Literal["polars", "spark"] = Field("polars", description="polars (one machine) or spark (PySpark, local or a cluster)")
    spark_master: str | None = Field(
        None, description="Spark master URL: local[*] (default), spark://host:7077, yarn, k8s://…; unset under spark-submit"
    )
    spark_conf: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Spark settings, e.g. {'spark.driver.memory' = '8g', 'spark.sql.shuffle.partitions' = '200'}"
    )


class Config(_Section):
    """A territory's configuration file."""

    name: str = "respop"
    description: str = ""
    diseases: list[Literal["diabetes", "heart_failure"]] = ["diabetes", "heart_failure"]
    input: InputConfig = InputConfig()
    quality: QualityConfig = QualityConfig()
    territories: TerritoriesConfig = TerritoriesConfig()
    cases: CasesConfig = CasesConfig()
    output: OutputConfig = OutputConfig()
    store: StoreConfig = StoreConfig()
    dashboard: DashboardConfig = DashboardConfig()
    engine: EngineConfig = EngineConfig()


M = TypeVar("M", bound=BaseModel)


def load_toml_model(path: str | Path, model: type[M], what: str) -> M:
    """Read a TOML file and validate it as ``model``; every problem is a :class:`ConfigError`
    naming the file (and, for invalid content, each key and value). ``what``: e.g. "configuration"."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a valid TOML file: {exc}") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid {what.removesuffix(' file')}:\n{explain_validation_error(exc)}") from None


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML configuration; relative paths become relative to its folder."""
    config = load_toml_model(path, Config, "configuration file")
    return _resolve_paths(config, Path(path).parent)


LOCATED = "located error: key '"
"""Start of a validator's message that names its own key (a check across several keys)."""


def explain_validation_error(exc: ValidationError) -> str:
    """One line per problem: the key (dotted path), what is wrong, and the value given."""
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        if LOCATED in err["msg"]:
            lines.append("  - key '" + err["msg"].split(LOCATED, 1)[1])
        elif err["type"] == "extra_forbidden":
            lines.append(f"  - unknown key '{key}' (value {err['input']!r})")
        else:
            lines.append(f"  - key '{key}': {err['msg']} (value {err['input']!r})")
    return "\n".join(lines)


def _resolve_paths(config: Config, base: Path) -> Config:
    def resolve(p: Path | None) -> Path | None:
        if p is None or p.is_absolute():
            return p
        return (base / p).resolve()

    grouping = config.territories.hospital_grouping
    if grouping not in ("establishment", "town"):
        grouping = str(resolve(Path(grouping)))
    reference = config.cases.reference_population
    if reference not in ("population", "esp2013"):
        reference = str(resolve(Path(reference)))
    output_dir = resolve(config.output.dir) if config.output.dir else (Path("output") / config.name).resolve()
    return config.model_copy(
        update={
            "input": config.input.model_copy(
                update={
                    "pmsi_dir": resolve(config.input.pmsi_dir),
                    "reference_dir": resolve(config.input.reference_dir),
                    "workspace_dir": resolve(config.input.workspace_dir),
                }
            ),
            "quality": config.quality.model_copy(update={"zones_file": resolve(config.quality.zones_file)}),
            "territories": config.territories.model_copy(update={"hospital_grouping": grouping}),
            "cases": config.cases.model_copy(
                update={
                    "algorithms_dir": resolve(config.cases.algorithms_dir),
                    "reference_population": reference,
                }
            ),
            "output": config.output.model_copy(update={"dir": output_dir}),
            "store": config.store.model_copy(update={"url": _store_url(config.store.url, base, output_dir)}),
        }
    )


def _store_url(url: str | None, base: Path, output_dir: Path) -> str:
    """The store's URL with a relative SQLite path resolved against ``base``; default: SQLite file
    ``respop.sqlite`` in the output folder."""
    from sqlalchemy.engine import make_url

    if url is None:
        return f"sqlite:///{(output_dir / 'respop.sqlite').as_posix()}"
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() == "sqlite" and database and database != ":memory:" and not database.startswith("file:"):
        if not Path(database).is_absolute():
            return parsed.set(database=str((base / database).resolve())).render_as_string(hide_password=False)
    return url
