"""Persons of the synthetic world and their true yearly states (vectorised with numpy).

Each person has a 17-character pseudonymous key, a sex, a birth year, a zone of residence per
year (a few percent move each year, mostly to a neighbouring zone), a death date or none, and
the target diseases: type 2 (and some type 1) diabetes with complications, heart failure with a
severity stage that drives decompensations, and chronic obstructive pulmonary disease (COPD,
BPCO) with a severity stage that drives exacerbations. Diabetes raises the risk of heart failure.

Rates are rough published orders of magnitude (see ``synthetic_data/README.md``); the calibration
report (``respop synth --report``) compares what comes out with the published figures.

The prevalent cases of the first year (and their stages) and the yearly events that make the
calibrated figures (new cases, progression, deaths) are drawn by balanced sampling
(:func:`balanced_draw`): each person's chance is the rate, and the world's number of events is its
expected number rather than that plus binomial noise, so that a region-sized world reproduces the
published rates on every seed (issue 18). Moves and complications are independent draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from respop.synth.profiles import AGE_BANDS

KEY_ALPHABET = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", dtype=np.uint8)

# Prevalence at the start and yearly incidence, by age (5-year bands from 0 to 100).
_AGES = np.arange(0, 105, 5)
T2D_PREVALENCE = 0.72 * np.interp(np.arange(105), _AGES, [0, 0, 0, 0.001, 0.002, 0.004, 0.008, 0.015, 0.03, 0.05, 0.07, 0.095, 0.12, 0.14, 0.16, 0.17, 0.17, 0.16, 0.15, 0.14, 0.13])
"""Share of people with type 2 diabetes by age at the start (overall about 5.5%)."""
T1D_PREVALENCE = 0.003
"""Type 1 diabetes: about 0.3% of the population, from childhood."""
HF_PREVALENCE = 1.15 * np.interp(np.arange(105), _AGES, [0, 0, 0, 0, 0.0003, 0.0005, 0.0008, 0.0012, 0.002, 0.003, 0.004, 0.007, 0.012, 0.02, 0.035, 0.055, 0.085, 0.12, 0.16, 0.2, 0.22])
"""Share of people with heart failure by age at the start, before the diabetes effect."""
DIABETES_TARGET = 0.052
"""Diabetes (types 1 and 2) in the population at the start: Santé publique France, about 5-6%."""
HF_TARGET_ADULTS = 0.0235
"""Heart failure among adults at the start of the first year; with the year's new cases, about
the 2.6% of adults of Santé publique France 2022."""
HF_STAGES = (0.72, 0.22, 0.06)
"""Heart-failure stages at the start: 1 stable, 2 symptomatic, 3 advanced."""
HF_DIABETES_RISK = 2.0
"""Relative risk of heart failure with diabetes."""
T2D_INCIDENCE_RATIO = 1 / 15
"""Yearly incidence ≈ prevalence at that age / 15 (keeps the prevalence steady with deaths)."""
HF_INCIDENCE_RATIO = 1 / 5
COPD_PREVALENCE = np.interp(np.arange(105), _AGES, [0, 0, 0, 0, 0, 0, 0, 0.001, 0.004, 0.009, 0.016, 0.025, 0.035, 0.045, 0.055, 0.062, 0.066, 0.066, 0.062, 0.058, 0.055])
"""Share of people with COPD by age at the start (shape only: scaled to ``COPD_TARGET_40PLUS``)."""
COPD_SEX = {1: 1.35, 2: 0.75}
"""Relative COPD risk of men (1) and women (2): about 58% of treated COPD patients are men."""
COPD_TARGET_40PLUS = 0.038
"""Diagnosed (treated) COPD among people aged 40 or more at the start: 3.8% (1.9% of all ages),
Laurendeau et al., Rev Mal Respir 2015 (EGB 2011). Undiagnosed COPD (5-10% of adults over 45 by
spirometry) is not simulated: the truth is the disease a health system knows of."""
COPD_STAGES = (0.86, 0.08, 0.06)
"""COPD stages at the start: 1 mild or moderate, 2 severe, 3 very severe with chronic respiratory
failure (Laurendeau et al. 2015: 71.9% mild, 13.8% moderate, 8.1% severe, 6.2% very severe)."""
COPD_INCIDENCE_RATIO = 1 / 18
COPD_MORTALITY = {1: 1.3, 2: 2.0, 3: 8.0}
"""Mortality multiplier by COPD stage: very severe COPD with chronic respiratory failure (long-term
oxygen or ventilation) loses about a quarter of its patients a year (x4 until 75be052, when it
fared no worse than repeated exacerbations; synthetic_data/README.md)."""
COPD_MORTALITY_AFTER_STAY = 2.2
"""… and on top of it in the year after an exacerbation stay (about one in five patients dies in
the year after an exacerbation hospitalisation: Fuhrman et al., Rev Mal Respir 2017), as
:data:`HF_MORTALITY_AFTER_STAY`."""
COPD_PROGRESSION = 0.04
"""Yearly probability of moving up one COPD stage, without an exacerbation stay."""
COPD_PROGRESSION_AFTER_STAY = 0.30
"""… the year after an exacerbation stay, which also leaves at least stage 2 (GOLD: a hospitalised
exacerbation puts the patient at high risk)."""
MOVE_RATE = 0.035
"""Share of people moving home each year; 70% of moves go to a neighbouring zone."""
BIRTH_RATE = 0.011

# Annual probability of death: Gompertz in age, raised by the diseases.
def _mortality(age: np.ndarray) -> np.ndarray:
    return np.clip(np.exp(-10.2 + 0.092 * age), 0.0002, 0.45)


HF_MORTALITY = {1: 1.5, 2: 3.0, 3: 6.0}
"""Mortality multiplier by heart-failure stage (1 stable, 2 symptomatic, 3 advanced)."""
COMPLICATION_MORTALITY = {"kidney": 1.6, "eye": 1.0, "foot": 1.8, "cardiovascular": 1.5}
"""Mortality multipliers of the diabetes complications (chronic kidney disease, diabetic foot and
atheromatous disease roughly double mortality in cohort studies; retinopathy alone does not)."""
DIABETES_MORTALITY = 1.4
HF_PROGRESSION = 0.10
"""Yearly probability of moving up one heart-failure stage, without a decompensation."""
HF_PROGRESSION_AFTER_STAY = 0.45
"""… the year after a heart-failure stay: decompensations mark (and drive) progression, so that
people hospitalised for heart failure are at higher risk afterwards, as in cohorts."""
HF_MORTALITY_AFTER_STAY = 1.3
"""Mortality multiplier, on top of the stage's, in the year after a heart-failure stay: the
months after a decompensation are the most dangerous (about 29% of patients die within a year of
a first heart-failure hospitalisation in France, against about 8-10% a year for stable heart
failure: Tuppin et al., Arch Cardiovasc Dis 2014; French-DataHF 2025). The generator's years are
calendar years, so the vulnerable phase after a stay falls in the next year; its excess then
stops (the stage reached stays). Without it, the strata "hospitalised this year" and
"hospitalised 1 to 5 years ago" had the same outcomes (issue 18, strata order)."""
COMPLICATIONS = ("kidney", "eye", "foot", "cardiovascular")
COMPLICATION_INCIDENCE = {"kidney": 0.02, "eye": 0.025, "foot": 0.012, "cardiovascular": 0.025}
"""Yearly probability that a person with diabetes acquires each complication."""


def balanced_draw(rng: np.random.Generator, p: np.ndarray, strata: np.ndarray | None = None) -> np.ndarray:
    """Who has an event of probability ``p`` (one per person, in [0, 1]): a bool array.

    Each person is drawn with probability exactly ``p[i]``, as with independent Bernoulli draws
    (``rng.random(n) < p``), but by systematic sampling (Madow's design, used by survey
    statisticians): the persons are put in a random order (within ``strata``, in the strata's
    order, when given), their probabilities laid end to end on a line, and every point ``u + k``
    (``u`` uniform in [0, 1), k = 0, 1, …) picks the person whose segment holds it. The number
    drawn is the expected number ``p.sum()`` rounded up or down (and, with ``strata``, so is each
    stratum's), where independent draws would add binomial noise to it.

    Why the generator uses it: a 300,000-inhabitant world has about 800 adults hospitalised for
    heart failure a year, and independent draws move that count by about 3.5% from seed to seed on
    top of every earlier draw's noise (prevalence, stages, deaths), so that the published rate
    could not be met within 5% on every seed. Each person's risk is the same; what is removed is
    the chance variation of the world's totals (a real region's yearly count varies by chance
    too; the synthetic world is a region whose counts are their expected values). Smaller groups
    (a zone, an age band) still vary, as the selected persons are spread at random."""
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    n = len(p)
    drawn = np.zeros(n, dtype=bool)
    if n == 0:
        return drawn
    order = rng.permutation(n) if strata is None else np.lexsort((rng.random(n), strata))
    end = np.cumsum(p[order])
    start = end - p[order]
    u = rng.random()
    drawn[order] = np.floor(end - u) > np.floor(start - u)
    return drawn


AFTER_STAY_COUNT_CAP = 2
"""The vulnerable phase's excess grows with the number of the disease's stays of the year before,
up to this many (two decompensations in a year mark a worse prognosis than one: Setoguchi et al.,
Am Heart J 2007)."""


def after_stay(stays_last_year: np.ndarray | None, multiplier: float, n: int) -> np.ndarray:
    """The risk multiplier of the year after the disease's stays: 1 without a stay the year
    before, ``multiplier`` after one, 1 + 2 (``multiplier`` − 1) after two or more
    (:data:`AFTER_STAY_COUNT_CAP`). ``stays_last_year``: stays per person the year before (None:
    nobody was hospitalised; ``n`` persons)."""
    if stays_last_year is None:
        return np.ones(n)
    return 1.0 + (multiplier - 1.0) * np.minimum(stays_last_year, AFTER_STAY_COUNT_CAP)


def person_keys(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random 17-character keys (A-Z, 0-9), as a numpy array of str."""
    codes = KEY_ALPHABET[rng.integers(0, len(KEY_ALPHABET), size=(n, 17))]
    return np.ascontiguousarray(codes).view("S17").ravel().astype("U17")


@dataclass
class People:
    """The persons of one chunk, with their state in the current year (arrays of equal length)."""

    key: np.ndarray
    sex: np.ndarray  # int8: 1 male, 2 female
    birth_year: np.ndarray
    zone: np.ndarray  # index into the world's zones
    alive: np.ndarray  # bool
    death_date: np.ndarray  # datetime64[D], NaT when alive
    diabetes_type: np.ndarray  # 0 none, 1, 2
    diabetes_onset: np.ndarray  # datetime64[D]
    hf_stage: np.ndarray  # 0 none, 1..3
    hf_onset: np.ndarray
    complications: np.ndarray  # (n, 4) bool, COMPLICATIONS order
    copd_stage: np.ndarray  # 0 none, 1..3
    copd_onset: np.ndarray
    t2d_scale: float = 1.0  # calibration of the age-specific rates to this population's ages
    hf_scale: float = 1.0
    copd_scale: float = 1.0

    def __len__(self) -> int:
        return len(self.key)

    def age(self, year: int) -> np.ndarray:
        return year - self.birth_year


def _band_ages(rng: np.random.Generator, bands: np.ndarray) -> np.ndarray:
    start = np.array([int(AGE_BANDS[b][:2]) for b in range(len(AGE_BANDS))])[bands]
    width = np.where(bands == len(AGE_BANDS) - 1, 15, 5)
    return start + (rng.random(len(bands)) * width).astype(np.int64)


def _dates_in_year(rng: np.random.Generator, year: int, n: int) -> np.ndarray:
    start = np.datetime64(f"{year}-01-01")
    days = 366 if year % 4 == 0 else 365
    return start + rng.integers(0, days, size=n).astype("timedelta64[D]")


def initial_people(
    rng: np.random.Generator,
    population: pl.DataFrame,
    zone_index: dict[str, int],
    year: int,
    copd_rng: np.random.Generator | None = None,
    risk: dict[str, np.ndarray] | None = None,
) -> People:
    """The persons living in the chunk's zones at the start of ``year``, with prevalent diseases.

    ``copd_rng``: COPD's own random stream (default ``rng``), so that adding COPD to the world left
    the other diseases' draws where they were. ``risk``: a risk multiplier per zone index for
    ``diabetes`` (type 2), ``heart_failure`` and ``copd`` (the deprivation gradient,
    :mod:`respop.synth.deprivation`; default 1), inside the calibration scales."""
    crng = copd_rng if copd_rng is not None else rng
    band_of = {label: i for i, label in enumerate(AGE_BANDS)}
    counts = population["population"].to_numpy()
    zone = np.repeat(np.array([zone_index[z] for z in population["zone_code"]]), counts)
    sex = np.repeat(population["sex"].to_numpy().astype(np.int8), counts)
    bands = np.repeat(np.array([band_of[b] for b in population["age_band"]]), counts)
    age = _band_ages(rng, bands)
    n = len(zone)
    f_d, f_hf, f_copd = (_zone_risk(risk, name, zone) for name in ("diabetes", "heart_failure", "copd"))
    nat = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    dtype = np.zeros(n, dtype=np.int8)
    # the prevalent cases are drawn by exact sampling stratified by age (balanced_draw): each
    # person's chance is the age-specific rate, and each age has its expected number of cases
    t1 = balanced_draw(rng, T1D_PREVALENCE * (age >= 2), strata=age)
    # scale the age-specific rates so that the targets hold whatever the population's ages
    t2d_scale = (DIABETES_TARGET - T1D_PREVALENCE) * n / max((T2D_PREVALENCE[np.minimum(age, 104)] * f_d).sum(), 1e-9)
    t2 = ~t1 & balanced_draw(rng, np.where(t1, 0.0, t2d_scale * T2D_PREVALENCE[np.minimum(age, 104)] * f_d), strata=age)
    dtype[t1], dtype[t2] = 1, 2
    d_onset = nat.copy()
    has_d = dtype > 0
    years_with = np.minimum(rng.exponential(8, size=n).astype(np.int64), np.maximum(age - 1, 0))
    d_onset[has_d] = _dates_in_year(rng, year - 1, n)[has_d] - (years_with[has_d] * 365).astype("timedelta64[D]")
    hf_risk = HF_PREVALENCE[np.minimum(age, 104)] * np.where(has_d, HF_DIABETES_RISK, 1.0) * f_hf
    adults = age >= 18
    hf_scale = HF_TARGET_ADULTS * adults.sum() / max(hf_risk[adults].sum(), 1e-9)
    hf_risk = hf_risk * hf_scale
    hf = balanced_draw(rng, hf_risk, strata=age)
    stage = _stages(rng, hf, HF_STAGES, age)
    hf_onset = nat.copy()
    hf_years = np.minimum(rng.exponential(3, size=n).astype(np.int64), np.maximum(age - 18, 0))
    hf_onset[hf] = _dates_in_year(rng, year - 1, n)[hf] - (hf_years[hf] * 365).astype("timedelta64[D]")
    comp = (rng.random((n, len(COMPLICATIONS))) < 0.12) & has_d[:, None]
    key = person_keys(rng, n)
    # COPD, from its own stream
    # from age 35, as the new cases (the interpolated curve is above 0 from 31)
    copd_risk = COPD_PREVALENCE[np.minimum(age, 104)] * np.where(sex == 1, COPD_SEX[1], COPD_SEX[2]) * (age >= 35) * f_copd
    over_40 = age >= 40
    copd_scale = COPD_TARGET_40PLUS * over_40.sum() / max(copd_risk[over_40].sum(), 1e-9)
    copd = balanced_draw(crng, copd_risk * copd_scale, strata=age)
    copd_stage = _stages(crng, copd, COPD_STAGES, age)
    copd_onset = nat.copy()
    copd_years = np.minimum(crng.exponential(6, size=n).astype(np.int64), np.maximum(age - 35, 0))
    copd_onset[copd] = _dates_in_year(crng, year - 1, n)[copd] - (copd_years[copd] * 365).astype("timedelta64[D]")
    return People(
        key=key,
        sex=sex,
        birth_year=year - age,
        zone=zone,
        alive=np.ones(n, dtype=bool),
        death_date=nat,
        diabetes_type=dtype,
        diabetes_onset=d_onset,
        hf_stage=stage,
        hf_onset=hf_onset,
        complications=comp,
        copd_stage=copd_stage,
        copd_onset=copd_onset,
        t2d_scale=t2d_scale,
        hf_scale=hf_scale,
        copd_scale=copd_scale,
    )


def _zone_risk(risk: dict[str, np.ndarray] | None, disease: str, zone: np.ndarray) -> np.ndarray | float:
    """The risk multiplier of ``disease`` for persons living in ``zone`` (1 without ``risk``)."""
    if risk is None or disease not in risk:
        return 1.0
    return risk[disease][zone]


def _stages(rng: np.random.Generator, cases: np.ndarray, shares: tuple[float, ...], age: np.ndarray) -> np.ndarray:
    """Stage 1, 2, … of ``cases`` (0 for the others), in the proportions ``shares`` exactly (each
    stage's number is its share of the cases rounded; :func:`balanced_draw`, stratified by age):
    the highest stage first, then the next among the rest."""
    stage = np.zeros(len(cases), dtype=np.int8)
    left = cases.copy()
    remaining = 1.0
    for k in range(len(shares), 1, -1):
        share = shares[k - 1] / remaining
        chosen = balanced_draw(rng, np.where(left, share, 0.0), strata=age)
        stage[chosen] = k
        left &= ~chosen
        remaining -= shares[k - 1]
    stage[left] = 1
    return stage


def concat(a: People, b: People) -> People:
    """Persons of ``a`` then ``b``; the calibration scales are ``a``'s."""
    arrays = {f: np.concatenate([getattr(a, f), getattr(b, f)]) for f in a.__dataclass_fields__ if not f.endswith("_scale")}
    return People(**arrays, t2d_scale=a.t2d_scale, hf_scale=a.hf_scale, copd_scale=a.copd_scale)


def births(rng: np.random.Generator, people: People, n_zones: int, year: int) -> People:
    """Newborns of ``year``, in proportion to each zone's living population."""
    living = np.bincount(people.zone[people.alive], minlength=n_zones)
    n_born = rng.poisson(living * BIRTH_RATE)
    n = int(n_born.sum())
    nat = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    return People(
        key=person_keys(rng, n),
        sex=rng.choice(np.array([1, 2], dtype=np.int8), size=n, p=[0.512, 0.488]),
        birth_year=np.full(n, year),
        zone=np.repeat(np.arange(n_zones), n_born),
        alive=np.ones(n, dtype=bool),
        death_date=nat,
        diabetes_type=np.zeros(n, dtype=np.int8),
        diabetes_onset=nat.copy(),
        hf_stage=np.zeros(n, dtype=np.int8),
        hf_onset=nat.copy(),
        complications=np.zeros((n, len(COMPLICATIONS)), dtype=bool),
        copd_stage=np.zeros(n, dtype=np.int8),
        copd_onset=nat.copy(),
    )


@dataclass
class YearEvents:
    """What happened to the persons during one year (indices into People)."""

    moved: np.ndarray  # indices of persons who moved
    moved_from: np.ndarray
    new_diabetes: np.ndarray
    new_hf: np.ndarray
    died: np.ndarray
    new_copd: np.ndarray


def advance(
    rng: np.random.Generator,
    people: People,
    year: int,
    neighbours: list[np.ndarray],
    zone_weights: np.ndarray,
    hf_stay_last_year: np.ndarray | None = None,
    copd_stay_last_year: np.ndarray | None = None,
    copd_rng: np.random.Generator | None = None,
    risk: dict[str, np.ndarray] | None = None,
) -> YearEvents:
    """Simulate ``year`` in place: moves (at the start of the year), new cases, progression, deaths.

    ``neighbours[i]``: zone indices adjacent to zone i; ``zone_weights``: where long moves go;
    ``hf_stay_last_year`` (stays per person): heart-failure stays of the year before;
    ``copd_stay_last_year``: COPD exacerbation stays. COPD draws from ``copd_rng`` (default
    ``rng``), after the deaths: its mortality uses the stage at the start of the year, and its new
    cases are drawn among the year's survivors. New cases, progression and deaths are balanced
    draws (:func:`balanced_draw`; deaths within each heart-failure × COPD stage). ``risk``: the
    diseases' incidence multipliers per zone index (:func:`initial_people`), by the zone lived
    in after the year's moves.
    """
    n = len(people)
    alive = people.alive.copy()
    age = people.age(year)
    # moves
    moving = alive & (rng.random(n) < MOVE_RATE)
    idx = np.flatnonzero(moving)
    origin = people.zone[idx].copy()
    near = rng.random(len(idx)) < 0.7
    dest = rng.choice(len(zone_weights), size=len(idx), p=zone_weights)
    for k in np.flatnonzero(near):  # loop over movers only (a few percent)
        options = neighbours[origin[k]]
        if len(options):
            dest[k] = options[rng.integers(len(options))]
    changed = dest != origin
    idx, origin, dest = idx[changed], origin[changed], dest[changed]
    people.zone[idx] = dest
    # new diabetes (type 2)
    at_risk = alive & (people.diabetes_type == 0)
    p_d = people.t2d_scale * T2D_PREVALENCE[np.clip(age, 0, 104)] * T2D_INCIDENCE_RATIO * _zone_risk(risk, "diabetes", people.zone)
    new_d = np.flatnonzero(balanced_draw(rng, np.where(at_risk, p_d, 0.0)))
    people.diabetes_type[new_d] = 2
    people.diabetes_onset[new_d] = _dates_in_year(rng, year, len(new_d))
    has_d = people.diabetes_type > 0
    # complications
    for j, name in enumerate(COMPLICATIONS):
        people.complications[:, j] |= alive & has_d & (rng.random(n) < COMPLICATION_INCIDENCE[name])
    # heart failure: incidence and progression
    at_risk = alive & (people.hf_stage == 0) & (age >= 18)
    p_hf = (
        people.hf_scale * HF_PREVALENCE[np.clip(age, 0, 104)] * HF_INCIDENCE_RATIO * np.where(has_d, HF_DIABETES_RISK, 1.0)
        * _zone_risk(risk, "heart_failure", people.zone)
    )
    new_hf = np.flatnonzero(balanced_draw(rng, np.where(at_risk, p_hf, 0.0)))
    recent = hf_stay_last_year > 0 if hf_stay_last_year is not None else np.zeros(n, dtype=bool)
    p_progress = np.where(recent, HF_PROGRESSION_AFTER_STAY, HF_PROGRESSION)
    progress = balanced_draw(rng, np.where(alive & (people.hf_stage > 0) & (people.hf_stage < 3), p_progress, 0.0))
    people.hf_stage[progress] += 1
    # a decompensation leaves at least symptomatic heart failure
    people.hf_stage[alive & recent & (people.hf_stage == 1)] = 2
    people.hf_stage[new_hf] = 1
    people.hf_onset[new_hf] = _dates_in_year(rng, year, len(new_hf))
    # deaths
    risk = _mortality(age.astype(float))
    for stage, mult in HF_MORTALITY.items():
        risk = np.where(people.hf_stage == stage, risk * mult, risk)
    risk = np.where(has_d, risk * DIABETES_MORTALITY, risk)
    for j, name in enumerate(COMPLICATIONS):
        risk = np.where(people.complications[:, j], risk * COMPLICATION_MORTALITY[name], risk)
    for stage, mult in COPD_MORTALITY.items():
        risk = np.where(people.copd_stage == stage, risk * mult, risk)
    # the vulnerable phase after a stay
    risk = risk * after_stay(hf_stay_last_year, HF_MORTALITY_AFTER_STAY, n) * after_stay(copd_stay_last_year, COPD_MORTALITY_AFTER_STAY, n)
    # deaths balanced within each heart-failure and COPD stage: each stage loses its expected number
    died = np.flatnonzero(balanced_draw(rng, np.where(alive, np.clip(risk, 0, 0.9), 0.0),
                                        strata=people.hf_stage * 4 + people.copd_stage))
    people.alive[died] = False
    people.death_date[died] = _dates_in_year(rng, year, len(died))
    # a disease that started this year started before the death
    for onset in (people.hf_onset, people.diabetes_onset):
        late = ~np.isnat(onset[died]) & (onset[died] > people.death_date[died])
        onset[died[late]] = people.death_date[died[late]]
    # COPD: progression (faster after an exacerbation stay) and new cases, among the survivors
    survivors = alive & people.alive
    recent = copd_stay_last_year > 0 if copd_stay_last_year is not None else np.zeros(n, dtype=bool)
    p_progress = np.where(recent, COPD_PROGRESSION_AFTER_STAY, COPD_PROGRESSION)
    crng = copd_rng if copd_rng is not None else rng
    progress = balanced_draw(crng, np.where(survivors & (people.copd_stage > 0) & (people.copd_stage < 3), p_progress, 0.0))
    people.copd_stage[progress] += 1
    people.copd_stage[survivors & recent & (people.copd_stage == 1)] = 2
    at_risk = survivors & (people.copd_stage == 0) & (age >= 35)
    p_copd = (
        people.copd_scale * COPD_PREVALENCE[np.clip(age, 0, 104)] * np.where(people.sex == 1, COPD_SEX[1], COPD_SEX[2])
        * COPD_INCIDENCE_RATIO * _zone_risk(risk, "copd", people.zone)
    )
    new_copd = np.flatnonzero(balanced_draw(crng, np.where(at_risk, p_copd, 0.0)))
    people.copd_stage[new_copd] = 1
    people.copd_onset[new_copd] = _dates_in_year(crng, year, len(new_copd))
    return YearEvents(moved=idx, moved_from=origin, new_diabetes=new_d, new_hf=new_hf, died=died, new_copd=new_copd)


DEATH_COMPLETENESS = 0.99
"""Share of deaths the beneficiaries' referential (IR_BEN_R) records: nearly all (deaths of people
who left the health insurance, or recorded late, are missing)."""
DEATH_MONTH_ONLY = 0.03
"""Share of the recorded deaths known by their year and month only (BEN_DCD_AME, no BEN_DCD_DTE)."""
LIVING_PLACEHOLDER = 0.3
"""Share of the living written with the placeholder death date 1600-01-01 (BEN_DCD_AME 160001)
rather than empty, as SNDS extractions do for part of the living."""
REFERENTIAL_FAULTS = {
    "bad_date": 0.0005,
    "short_key": 0.0003,
    "month_mismatch": 0.0003,
    "death_before_birth": 0.0002,
    "duplicate": 0.0005,
}
"""Share of the referential's rows given each messy value (one per row at most); the reader must
quarantine every one of them with a reason (respop.pmsi.deaths)."""


def beneficiaries_referential(rng: np.random.Generator, people: People) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The SNDS beneficiaries' referential IR_BEN_R of ``people`` (one row per person, as text, in
    the SNDS export format), with realistic completeness (:data:`DEATH_COMPLETENESS`,
    :data:`DEATH_MONTH_ONLY`) and a few messy values (:data:`REFERENTIAL_FAULTS`); and the truth
    of each row (person_key, the death recorded, the fault planted)."""
    n = len(people)
    dead = ~np.isnat(people.death_date)
    recorded = dead & (rng.random(n) < DEATH_COMPLETENESS)
    month_only = recorded & (rng.random(n) < DEATH_MONTH_ONLY)
    placeholder = ~dead & (rng.random(n) < LIVING_PLACEHOLDER)
    fault = np.full(n, None, dtype=object)
    u = rng.random(n)
    edge = 0.0
    for name, share in REFERENTIAL_FAULTS.items():
        fault[(u >= edge) & (u < edge + share)] = name
        edge += share
    # a fault about the death only where there is one
    fault[~recorded & np.isin(fault, ["month_mismatch", "death_before_birth", "bad_date"])] = None
    fault[month_only & np.isin(fault, ["month_mismatch", "death_before_birth", "bad_date"])] = None
    df = pl.DataFrame(
        {
            "person_key": people.key,
            "sex": people.sex,
            "birth_year": people.birth_year.astype(np.int32),
            "death_date": people.death_date,
            "recorded": recorded,
            "month_only": month_only,
            "placeholder": placeholder,
            "fault": fault.tolist(),
        },
        schema_overrides={"fault": pl.String},
    )
    sas = lambda d: d.dt.strftime("%d%b%Y:00:00:00").str.to_uppercase()  # noqa: E731
    death = pl.col("death_date")
    f = pl.col("fault")
    written_date = (
        pl.when(pl.col("recorded") & ~pl.col("month_only"))
        .then(
            pl.when(f == "bad_date").then(pl.lit("31FEB") + death.dt.year().cast(pl.String) + pl.lit(":00:00:00"))
            .when(f == "death_before_birth").then(sas(pl.date(pl.col("birth_year") - 3, 6, 1)))
            .otherwise(sas(death))
        )
        .when(pl.col("placeholder")).then(pl.lit("01JAN1600:00:00:00"))
    )
    month = death.dt.strftime("%Y%m")
    written_month = (
        pl.when(pl.col("recorded"))
        .then(
            pl.when(f == "month_mismatch").then(death.dt.offset_by("-2mo").dt.strftime("%Y%m"))
            .when(f == "death_before_birth").then((pl.col("birth_year") - 3).cast(pl.String) + pl.lit("06"))
            .otherwise(month)
        )
        .when(pl.col("placeholder")).then(pl.lit("160001"))
    )
    table = df.select(
        pl.when(f == "short_key").then(pl.col("person_key").str.slice(0, 16)).otherwise(pl.col("person_key")).alias("BEN_NIR_PSA"),
        pl.lit("1").alias("BEN_RNG_GEM"),
        pl.col("sex").cast(pl.String).alias("BEN_SEX_COD"),
        pl.col("birth_year").cast(pl.String).alias("BEN_NAI_ANN"),
        written_date.alias("BEN_DCD_DTE"),
        written_month.alias("BEN_DCD_AME"),
        pl.col("fault"),
    )
    copies = table.filter(f == "duplicate")
    table = pl.concat([table.with_columns(pl.when(f != "duplicate").then(f).alias("fault")), copies])
    order = rng.permutation(table.height)
    table = table[order]
    truth = df.select(
        "person_key",
        pl.when(pl.col("recorded")).then(death).alias("recorded_death_date"),
        "month_only",
        "fault",
    )
    return table.drop("fault"), truth
