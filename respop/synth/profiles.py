"""Profiles of synthetic PMSI-shaped worlds (``synthetic_data/<name>.toml``).

A profile fixes the size of the world (region, zones, population, hospitals, planted health
territories) and the rates of the simulation. ``tiny`` is for tests, ``demo`` is one region of
about 300,000 inhabitants, ``national`` is France-sized.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from respop.config import explain_validation_error
from respop.errors import ConfigError
from respop.resources import synthetic_profiles_dir

PROFILES_DIR = synthetic_profiles_dir()
"""Where the shipped profiles live (the repository's ``synthetic_data/``, copied into the wheel)."""

AGE_BANDS: tuple[str, ...] = tuple(f"{a:02d}-{a + 4:02d}" for a in range(0, 85, 5)) + ("85+",)
"""Five-year age bands of the population tables: 00-04 … 80-84, 85+."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GeographyProfile(_Section):
    """The region: a rectangle tiled by zones grouped in départements, with planted territories."""

    width_km: float = Field(gt=0)
    height_km: float = Field(gt=0)
    zones: int = Field(ge=4, description="number of PMSI geographic zones")
    departements: int = Field(ge=1)
    first_departement: int = Field(1, ge=1, le=95, description="code of the first département")
    territories: int = Field(ge=1, description="planted health territories, one hub hospital each")
    population: int = Field(ge=1000)
    min_zone_population: int = Field(1000, ge=1, description="ATIH: each zone has at least 1,000 inhabitants")
    chu: int = Field(1, ge=0, description="university hospitals (CHU), referral centres of the region")
    local_hospitals_per_territory: float = Field(1.0, ge=0, description="small public hospitals besides the hub")
    private_clinics_per_territory: float = Field(1.0, ge=0)
    distance_decay_km: float = Field(15.0, gt=0, description="gravity model: scale of exp(-distance/scale)")
    territory_loyalty: float = Field(3.0, ge=1, description="gravity model: attraction multiplier of the own territory's hospitals")
    chu_referral_share: float = Field(0.08, ge=0, le=1, description="share of stays referred to a CHU whatever the distance")
    far_stay_share: float = Field(0.02, ge=0, le=1, description="share of stays in a hospital chosen at random (holidays, work)")
    # Shapes that real France has (0/false: the plain world, drawn exactly as before they existed)
    small_territories: int = Field(0, ge=0, description="planted territories made small and peripheral: the smallest towns' hubs on the edge of the region, with a short reach")
    metropole_chu: int = Field(0, ge=0, description="extra university hospitals (CHU) in the largest town: a metropole with several CHUs in one territory")
    coast: bool = Field(False, description="the northern edge is a coast: every town on it, the hinterland rural")
    border_hospitals: int = Field(0, ge=0, description="hospitals just beyond the eastern edge (a neighbouring region, outside the zones) that border zones use")

    @model_validator(mode="after")
    def _sizes(self) -> GeographyProfile:
        if self.departements > self.zones:
            raise ValueError(f"departements ({self.departements}) > zones ({self.zones})")
        if self.territories > self.zones:
            raise ValueError(f"territories ({self.territories}) > zones ({self.zones})")
        if self.population < self.zones * self.min_zone_population:
            raise ValueError(
                f"population {self.population} cannot give {self.zones} zones of at least "
                f"{self.min_zone_population} inhabitants"
            )
        last = self.first_departement + self.departements - 1
        if self.first_departement <= 20 <= last:
            last += 1  # 20 is skipped (Corsica is 2A and 2B)
        if last > 95:
            raise ValueError("département codes would go past 95")
        if self.zones > 998 * self.departements:
            raise ValueError(f"{self.zones} zones cannot fit in {self.departements} départements of at most 998 zones")
        if self.chu_referral_share + self.far_stay_share > 1:
            raise ValueError("chu_referral_share + far_stay_share exceeds 1")
        if self.small_territories >= self.territories:
            raise ValueError(f"small_territories ({self.small_territories}) must be fewer than territories ({self.territories})")
        if self.border_hospitals and last + 1 > 95:
            raise ValueError("border_hospitals need a free département code after the last one")
        return self


INTERVENTION_KINDS: tuple[str, ...] = ("heart_failure", "diabetes", "copd")
"""The generator's disease stay kinds an intervention can act on (``truth/stays``' ``kind``)."""


class InterventionProfile(_Section):
    """A planted intervention (issue 20): from its start year, each stay of a disease's kind of a
    person resident that year in a pilot planted territory is avoided with probability −effect
    (effect < 0), or followed by one more stay with probability effect (effect > 0); the disease
    course (stages, deaths, the vulnerable phase after a stay) is that of the world without it.
    So the pilots' expected stays of that kind are (1 + effect) × what they would have been."""

    pilots: list[int] = Field(min_length=1, description="planted territory ids (truth/territories.parquet, 1..territories)")
    start_years: list[int] = Field(min_length=1, description="the year each pilot starts, one per pilot (may differ)")
    effects: dict[str, float] = Field(min_length=1, description="relative effect on each disease's stays, e.g. heart_failure = -0.15")

    @model_validator(mode="after")
    def _check(self) -> InterventionProfile:
        if len(self.start_years) != len(self.pilots):
            raise ValueError(f"start_years has {len(self.start_years)} years for {len(self.pilots)} pilots: give one per pilot")
        if len(set(self.pilots)) != len(self.pilots):
            raise ValueError(f"pilots are repeated: {self.pilots}")
        for kind, effect in self.effects.items():
            if kind not in INTERVENTION_KINDS:
                raise ValueError(f"effects: unknown disease {kind!r} (expected one of {', '.join(INTERVENTION_KINDS)})")
            if not -1.0 < effect <= 1.0:
                raise ValueError(f"effects: {kind} = {effect} is outside (-1, 1] (a relative effect: -0.15 is 15% fewer stays)")
        return self

    def check_world(self, territories: int, years: list[int] | None = None) -> None:
        """Raise ValueError when a pilot is not a planted territory of a world of ``territories``
        or a start year is not one of the written ``years`` (when given)."""
        outside = [p for p in self.pilots if not 1 <= p <= territories]
        if outside:
            raise ValueError(f"pilots {outside} are not planted territories of this world (1 to {territories})")
        late = [y for y in self.start_years if years is not None and y not in years]
        if late:
            raise ValueError(f"start_years {late} are outside the years generated ({years[0]}-{years[-1]})")


class Profile(_Section):
    name: str
    description: str = ""
    years: list[int] = Field(default_factory=lambda: [2019, 2020, 2021, 2022, 2023])
    chunk_persons: int = Field(2_000_000, ge=1000, description="persons simulated per chunk (bounded memory)")
    geography: GeographyProfile
    intervention: InterventionProfile | None = Field(None, description="a planted intervention (none by default)")

    @model_validator(mode="after")
    def _intervention_fits(self) -> Profile:
        if self.intervention is not None:
            self.intervention.check_world(self.geography.territories, sorted(self.years))
        return self


def load_intervention(path: str | Path) -> InterventionProfile:
    """An intervention file (``respop synth --intervention FILE.toml``): the keys of a profile's
    ``[intervention]`` section, at the top level or under ``[intervention]``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"intervention file not found: {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not a valid TOML file: {exc}") from None
    if set(data) == {"intervention"}:
        data = data["intervention"]
    try:
        return InterventionProfile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid intervention:\n{explain_validation_error(exc)}") from None


def with_intervention(profile: Profile, intervention: InterventionProfile | None) -> Profile:
    """``profile`` with ``intervention`` planted (replacing its own; None: unchanged)."""
    if intervention is None:
        return profile
    try:
        intervention.check_world(profile.geography.territories)  # the years: by generate, which knows them
    except ValueError as exc:
        raise ConfigError(f"intervention: {exc}") from None
    return profile.model_copy(update={"intervention": intervention})


def load_profile(name_or_path: str | Path) -> Profile:
    """Load a shipped profile by name (``tiny``, ``demo``, ``national``) or a profile file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILES_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        shipped = sorted(p.stem for p in PROFILES_DIR.glob("*.toml") if not p.stem.startswith("intervention"))
        raise ConfigError(f"synthetic-data profile not found: {name_or_path} (shipped: {', '.join(shipped)})")
    try:
        return Profile.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not a valid TOML file: {exc}") from None
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid profile:\n{explain_validation_error(exc)}") from None
