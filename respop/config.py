"""Run configuration: one TOML file per territory under ``territories/``.

The file is validated on load: an unknown key, a value of the wrong type or an impossible setting
is a :class:`~respop.errors.ConfigError` that names the file, the key and the value. Paths in the
file are relative to the file's own folder.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from respop.errors import ConfigError
from respop.tomlfiles import LOCATED, explain_validation_error, load_toml_model  # noqa: F401 - re-exported


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
    format: Literal["auto", "csv", "parquet", "atih"] = Field(
        "auto",
        description="auto (detected), csv or parquet (SNDS tables), atih (RSA and ANO files; docs/pmsi.md)",
    )
    years: list[int] | None = Field(None, description="exit years to read; all found if absent")
    separator: Literal["auto", ",", ";", "\t", "|"] = "auto"
    encoding: Literal["utf-8", "latin-1", "cp1252"] = "utf-8"
    staged_dir: Path | None = Field(
        None,
        description="private folder of the staged input, validated once and read by every later run with the same "
        "inputs (default: <output.dir>/staged-input; docs/pmsi.md, Staged input)",
    )
    deaths: Literal["auto", "ignore"] = Field(
        "auto",
        description="the SNDS referential IR_BEN_R (death dates) in pmsi_dir: 'auto' uses it when present, "
        "'ignore' leaves it aside (docs/pmsi.md, Deaths)",
    )

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


HOSPITAL_KINDS = ("CHU", "CH", "local", "private")
"""The values of the optional ``kind`` column of hospitals.parquet (docs/territories.md, The reference
tables): a CHU (centre hospitalier universitaire, or régional), a CH (centre hospitalier), a local
hospital (hôpital de proximité, ex hôpital local) and a private clinic."""


class TerritoriesConfig(_Section):
    """How the health territories are built (see docs/territories.md)."""

    departements: list[str] | None = Field(None, description="scope: these départements (codes such as '29', '2A')")
    zones: list[str] | None = Field(None, description="scope: these zones; neither key means every zone of the reference")
    method: Literal["plurality", "leiden"] = "leiden"
    min_population: int = Field(0, ge=0, description="every territory has at least this many inhabitants")
    target_count: int | None = Field(None, ge=1, description="leiden: number of territories to aim for (a warning says why when it cannot be met)")
    resolution: float | None = Field(None, gt=0, description="leiden: one fit at this resolution when no target_count is given; neither: the count is chosen from the flows")
    min_containment: float = Field(1.5, ge=0, description="leiden, automatic count: a territory's residents use its hospitals at least this many times as much as those of any adjacent territory")
    min_localization: float = Field(0.0, ge=0, le=1, description="leiden, automatic count: every territory's localization index is at least this")
    anchor_kinds: list[str] = Field(
        ["CH", "CHU"],
        description="leiden, automatic count: every territory holds a hospital of one of these kinds (the kind column "
        "of hospitals.parquet); [] switches the rule off",
    )
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

    @field_validator("anchor_kinds")
    @classmethod
    def _anchor_kinds(cls, kinds: list[str]) -> list[str]:
        unknown = [k for k in kinds if k not in HOSPITAL_KINDS]
        if unknown:
            raise ValueError(f"unknown hospital kind(s) {', '.join(map(repr, unknown))}: the kinds of hospitals.parquet "
                             f"are {', '.join(HOSPITAL_KINDS)} (case matters); [] switches the anchor rule off")
        return list(dict.fromkeys(kinds))

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
    drop_unseen_years: int | None = Field(
        None, ge=1, le=20,
        description="drop a patient from the index year when none of their stays exits in it or the years before "
        "it, this many years in all (off by default; for runs without the death referential: docs/case_finding.md)",
    )

    @field_validator("years")
    @classmethod
    def _years(cls, years: list[int] | None) -> list[int] | None:
        return _check_years(years, "index years", "for every year read")


class OutputConfig(_Section):
    dir: Path | None = Field(
        None, description="the run's output folder (private: holds patient keys); default output/<name> in the current folder"
    )


STORE_URL_ENV = "RESPOP_STORE_URL"
"""Environment variable holding the store's URL: it overrides ``[store] url`` and ``url_file``."""
PASSWORD_HASH_ENV = "RESPOP_DASHBOARD_PASSWORD_HASH"
"""Environment variable holding the board password's hash: it overrides ``[dashboard]
password_hash`` and ``password_hash_file``."""


def _check_database_url(value: str) -> str:
    """``value`` if it is a SQLite or PostgreSQL URL; ValueError (without the URL) otherwise."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError("not a database URL") from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"the store is SQLite or PostgreSQL, got {url.get_backend_name()!r}")
    return value


class StoreConfig(_Section):
    url: str | None = Field(
        None,
        description="SQLAlchemy URL of the results store; default: SQLite file respop.sqlite in output.dir. "
        "A relative SQLite path is resolved against the configuration file's folder. A URL with a password "
        "belongs in RESPOP_STORE_URL or url_file, not here",
    )
    url_file: Path | None = Field(
        None, description="file holding the store's URL (one line), e.g. with its password; the environment "
        "variable RESPOP_STORE_URL overrides it"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return value if value is None else _check_database_url(value)

    @model_validator(mode="after")
    def _one_source(self) -> "StoreConfig":
        if self.url is not None and self.url_file is not None:
            raise ValueError("give url or url_file, not both")
        return self


class DashboardConfig(_Section):
    access: Literal["public", "password"] = Field(
        "public", description="public: anyone who reaches the board; password: asks for the password first"
    )
    password_hash: str | None = Field(
        None, description="scrypt hash of the board's password, made by `respop dashboard hash-password`"
    )
    password_hash_file: Path | None = Field(
        None, description="file holding the password's hash instead; RESPOP_DASHBOARD_PASSWORD_HASH overrides both"
    )
    meeting_mode: bool = Field(False, description="open the board in meeting mode (large type) by default")

    @model_validator(mode="after")
    def _password(self) -> "DashboardConfig":
        if self.password_hash and self.password_hash_file is not None:
            raise ValueError("give password_hash or password_hash_file, not both")
        if self.access == "password" and not (self.password_hash or self.password_hash_file or os.environ.get(PASSWORD_HASH_ENV)):
            raise ValueError(
                f"access = 'password' needs password_hash, password_hash_file or {PASSWORD_HASH_ENV} "
                "(respop dashboard hash-password)"
            )
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


class DisclosureConfig(_Section):
    """Disclosure control of what the store publishes (docs/store.md, threat model)."""

    protection: int = Field(
        3, ge=1, le=10,
        description="every count of 1 to 10 keeps a feasible interval (max − min) at least this wide under every "
        "relation a viewer can derive, across every visible run (1: only 'not determined exactly')",
    )


class EvaluationConfig(_Section):
    """The evaluation of the experiment (docs/evaluation.md): the pilot territories, the year each
    started, the outcomes and the donor pool of the comparison territories."""

    pilots: dict[str, int] = Field(
        ..., description="pilot territory (its id or its name in territories.parquet) = the year its intervention started"
    )
    outcomes: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_:]*$")]] | None = Field(
        None, description="outcomes as '<disease>.<outcome>' (docs/evaluation.md lists them); default: every outcome of every disease"
    )
    donors: list[str] | None = Field(None, description="the comparison territories (ids or names); default: every territory that is not a pilot")
    exclude_neighbours: bool = Field(False, description="leave the territories adjacent to a pilot out of the donors (spill-over)")
    min_pre_years: int = Field(3, ge=2, le=20, description="years of data before each pilot's start, at least")
    deprivation_file: Path | None = Field(
        None, description="zone-level deprivation index (zone_code, deprivation); default: deprivation.parquet of input.reference_dir when present"
    )
    confidence: float = Field(0.95, gt=0.5, lt=1, description="level of the confidence intervals")
    power_populations: list[Annotated[int, Field(gt=0)]] = Field(
        [50000, 100000, 200000, 500000], description="territory populations of the power table"
    )

    @field_validator("pilots")
    @classmethod
    def _pilots(cls, pilots: dict[str, int]) -> dict[str, int]:
        if not pilots:
            raise ValueError("name at least one pilot territory and the year it started, e.g. pilots = { \"3\" = 2021 }")
        _check_years(list(pilots.values()), "start years", "")
        return pilots


FINESS_PATTERN = r"^[0-9][0-9AB][0-9]{7}$"
"""A FINESS number: 9 characters, the second a digit or A/B (Corsica, 2A/2B)."""


class HospitalConfig(_Section):
    """Hospital mode (docs/hospital.md): the run works on one hospital's own stays, whatever its
    patients' residence, publishes nothing, and ``respop liste`` writes the private lists of its
    strata for its DIM."""

    finess: list[Annotated[str, Field(pattern=FINESS_PATTERN)]] = Field(
        ..., description="the hospital's FINESS number(s) (a hospital may send its files under several geographic FINESS)"
    )
    lists_dir: Path | None = Field(
        None, description="private folder of the lists and their access log (default: <output.dir>/listes)"
    )
    year: int | None = Field(None, description="index year of the lists (default: the last index year)")

    @field_validator("finess", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("finess")
    @classmethod
    def _finess(cls, finess: list[str]) -> list[str]:
        if not finess:
            raise ValueError("give the hospital's FINESS number(s), e.g. finess = [\"750712184\"]")
        return list(dict.fromkeys(finess))

    @field_validator("year")
    @classmethod
    def _year(cls, year: int | None) -> int | None:
        if year is not None:
            _check_years([year], "the lists' year", "for the last index year")
        return year


class Config(_Section):
    """A territory's configuration file."""

    name: str = "respop"
    description: str = ""
    diseases: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]] | None = Field(
        None, description="the diseases to run, each a <disease>.toml of cases.algorithms_dir (default: every spec file there)"
    )
    input: InputConfig = InputConfig()
    quality: QualityConfig = QualityConfig()
    territories: TerritoriesConfig = TerritoriesConfig()
    cases: CasesConfig = CasesConfig()
    output: OutputConfig = OutputConfig()
    store: StoreConfig = StoreConfig()
    dashboard: DashboardConfig = DashboardConfig()
    engine: EngineConfig = EngineConfig()
    disclosure: DisclosureConfig = DisclosureConfig()
    evaluation: EvaluationConfig | None = Field(None, description="the evaluation of the experiment; absent: no evaluation step")
    hospital: HospitalConfig | None = Field(
        None, description="hospital mode (docs/hospital.md): one hospital's own stays, nothing published; absent: population mode"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        # the default output folder is output/<name>: the name must stay one folder name
        if not name.strip() or ".." in name or "/" in name or "\\" in name or name.strip() == ".":
            raise ValueError("the name names the output folder output/<name>: give a name without '..', '/' or '\\'")
        return name


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML configuration; relative paths become relative to its folder."""
    config = with_credentials(load_toml_model(path, Config, "configuration file"), Path(path))
    config = _resolve_paths(config, Path(path).parent)
    _check_output_dir(config.output.dir, Path(path))
    return with_diseases(hospital_mode(config), Path(path))


def hospital_mode(config: Config) -> Config:
    """In hospital mode (``[hospital]``) the SNDS death referential is not read: a hospital does not
    receive it, and the run behaves as on the hospital's own files (docs/hospital.md)."""
    if config.hospital is None or config.input.deaths == "ignore":
        return config
    return config.model_copy(update={"input": config.input.model_copy(update={"deaths": "ignore"})})


POPULATION_ONLY = (
    "mode hôpital ([hospital]) : {fr} ne s'applique qu'aux données d'une population, pas à celles d'un "
    "établissement (docs/hospital.md) / hospital mode ([hospital]): {en} needs population data, not one "
    "hospital's (docs/hospital.md)"
)


def require_population(config: Config, fr: str, en: str) -> None:
    """A :class:`ConfigError` (French and English) when a population-level step (territories, the
    evaluation, publishing to the store) is asked of a hospital-mode configuration."""
    if config.hospital is not None:
        raise ConfigError(POPULATION_ONLY.format(fr=fr, en=en))


def with_diseases(config: Config, path: Path | None = None) -> Config:
    """The configuration with ``diseases`` listed: those of the file, each with its spec file in
    ``cases.algorithms_dir`` (else a :class:`ConfigError` naming the file), or every spec there."""
    from respop.spec.loaders import configured_diseases

    try:
        diseases = configured_diseases(config.diseases, config.cases.algorithms_dir)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}" if path is not None else str(exc)) from None
    return config.model_copy(update={"diseases": diseases})


def _check_output_dir(folder: Path, path: Path) -> None:
    """respop replaces its steps' folders under ``output.dir``: refuse the file system's root, the
    home folder, and a folder that exists, is not empty and was not created by respop."""
    from respop.fsutil import output_folder_problem

    resolved = folder.resolve()
    try:
        home = Path.home().resolve()
    except RuntimeError:  # no home folder known
        home = None
    if resolved == Path(resolved.anchor):
        raise ConfigError(f"{path}: key 'output.dir': {folder} is the root of the file system; give a folder for respop's outputs")
    if resolved == home:
        raise ConfigError(f"{path}: key 'output.dir': {folder} is your home folder; give a folder for respop's outputs, e.g. {folder / 'respop'}")
    problem = output_folder_problem(resolved)
    if problem is not None:
        raise ConfigError(f"{path}: key 'output.dir': {folder} {problem}")


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
                    "staged_dir": resolve(config.input.staged_dir),
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
            "evaluation": config.evaluation and config.evaluation.model_copy(
                update={"deprivation_file": resolve(config.evaluation.deprivation_file)}
            ),
            "hospital": config.hospital and config.hospital.model_copy(
                update={"lists_dir": resolve(config.hospital.lists_dir) or output_dir / "listes"}
            ),
            "store": config.store.model_copy(
                update={"url": _store_url(config.store.url, base, output_dir), "url_file": resolve(config.store.url_file)}
            ),
        }
    )


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    """Print a warning on stderr, once per process (the board loads its configuration on every page)."""
    if message not in _WARNED:
        _WARNED.add(message)
        print(f"respop: warning: {message}", file=sys.stderr)


def _read_secret(path: Path, key: str) -> str:
    """The one-line content of a file named by ``key`` (``store.url_file``...); ConfigError, naming
    the key and the file but never the content, when it is missing or empty."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(f"key '{key}': file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"key '{key}': cannot read {path}: {type(exc).__name__}") from None
    if not value:
        raise ConfigError(f"key '{key}': {path} is empty")
    return value


def with_credentials(config: Config, path: Path) -> Config:
    """The configuration with its credentials read from where they are kept outside it: the store's
    URL from RESPOP_STORE_URL, else ``[store] url_file``, else ``[store] url``; the board password's
    hash from RESPOP_DASHBOARD_PASSWORD_HASH, else ``[dashboard] password_hash_file``, else
    ``password_hash``. File paths are relative to the configuration's folder. A URL with a
    password written in the configuration itself still works, with a warning (once)."""
    from respop.secrets import url_password

    base = path.parent
    store, dashboard = config.store, config.dashboard
    if store.url is not None and url_password(store.url):
        _warn_once(f"{path}: [store] url holds a password; put the URL in the environment variable "
                   f"{STORE_URL_ENV} or in a file named by [store] url_file, out of the configuration")
    url, source = store.url, "store.url"
    if os.environ.get(STORE_URL_ENV, "").strip():
        url, source = os.environ[STORE_URL_ENV].strip(), STORE_URL_ENV
    elif store.url_file is not None:
        url_file = store.url_file if store.url_file.is_absolute() else (base / store.url_file).resolve()
        url, source = _read_secret(url_file, "store.url_file"), f"the file {url_file} (store.url_file)"
    if url is not None and source != "store.url":
        try:
            _check_database_url(url)
        except ValueError as exc:
            raise ConfigError(f"{path}: the store URL from {source}: {exc}") from None
    password_hash = dashboard.password_hash
    if os.environ.get(PASSWORD_HASH_ENV, "").strip():
        password_hash = os.environ[PASSWORD_HASH_ENV].strip()
        if dashboard.access != "password":
            _warn_once(f"{path}: {PASSWORD_HASH_ENV} is set but the board is public ([dashboard] access = \"public\"): "
                       "no password is asked")
    elif dashboard.password_hash_file is not None:
        hash_file = dashboard.password_hash_file
        hash_file = hash_file if hash_file.is_absolute() else (base / hash_file).resolve()
        password_hash = _read_secret(hash_file, "dashboard.password_hash_file")
        dashboard = dashboard.model_copy(update={"password_hash_file": hash_file})
    return config.model_copy(
        update={"store": store.model_copy(update={"url": url}),
                "dashboard": dashboard.model_copy(update={"password_hash": password_hash})}
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


def parse_ranges(text: str, option: str, example: str, digits: str = r"\d+") -> list[int]:
    r"""A command-line list of integers and ranges (``1-5``, ``1,3,7``, ``2019-2021,2023``) in the
    order given; a :class:`ConfigError` naming ``option`` for anything else, an empty range or a
    value given twice. ``digits``: the pattern of one number (``\d{4}`` for years)."""
    import re

    values: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(rf"\s*({digits})\s*(?:-\s*({digits})\s*)?", part)
        if not m:
            raise ConfigError(f"{option}: expected e.g. {example}, got {text!r}")
        first, last = int(m[1]), int(m[2] or m[1])
        if last < first:
            raise ConfigError(f"{option}: {first}-{last} is an empty range")
        values.extend(range(first, last + 1))
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ConfigError(f"{option}: {', '.join(map(str, repeated))} given twice")
    return values

