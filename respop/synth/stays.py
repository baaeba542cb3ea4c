"""Hospital stays caused by the persons' states, coded as the PMSI codes them.

For one year and one chunk of persons: background stays of the general population, heart-failure
decompensations, diabetes stays (complications), COPD exacerbations, in-hospital deaths and séances; each gets a
hospital (gravity model of :func:`respop.synth.geography.hospital_choice`), dates, length of stay,
entry and exit modes, a GHM-like code, and diagnoses at the positions the PMSI uses (DP, DR, DAS,
unit-level DP/DR), with coding noise (diabetes only as an associated diagnosis or not coded at
all, the InVS rule's second branch for heart failure and the Santé publique France rule's second
branch for COPD, near-miss codes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from respop.pmsi.canonical import DEATH_EXIT_MODE
from respop.synth.people import COMPLICATIONS, People, after_stay, balanced_draw

# --- rates -----------------------------------------------------------------------------------

_AGE_POINTS = [0, 1, 5, 15, 25, 45, 55, 65, 75, 85, 100]
_BG_MALE = [0.30, 0.10, 0.07, 0.10, 0.11, 0.17, 0.24, 0.36, 0.52, 0.62, 0.62]
_BG_FEMALE = [0.26, 0.08, 0.06, 0.17, 0.24, 0.18, 0.21, 0.30, 0.45, 0.55, 0.55]
"""Background MCO stays per person-year by age (women: pregnancies at 15–44)."""
BACKGROUND_SCALE = 1.08
"""Calibration: scales the background rates so that all stays give about 0.28 per inhabitant."""
HF_STAYS = {1: 0.0071, 2: 0.049, 3: 0.385}
"""Heart-failure stays per person-year by stage (decompensations): advanced heart failure is
re-hospitalised often, stable heart failure rarely; kidney disease raises the rate
(``HF_KIDNEY``), and so does a stay the year before (``HF_STAYS_AFTER_STAY``)."""
HF_KIDNEY = 1.5
HF_STAYS_AFTER_STAY = 2.5
"""Heart-failure stays multiplier in the year after a heart-failure stay (on top of the stage's):
re-hospitalisations cluster in the months after a decompensation (about a quarter to a third of
patients within a year, Tuppin et al. 2014), then the risk falls back to the stage's; with
:data:`respop.synth.people.HF_MORTALITY_AFTER_STAY`, the generator's vulnerable phase."""
HF_FIRST_STAY = 0.41
"""Share of new heart-failure cases hospitalised for it in the year of onset."""
DIABETES_STAYS_BASE = 0.04
DIABETES_STAYS_PER_COMPLICATION = {"kidney": 0.15, "eye": 0.06, "foot": 0.25, "cardiovascular": 0.12}
"""Diabetes stays per person-year added by each complication (the diabetic foot is the most
hospitalised complication)."""
BACKGROUND_PER_COMPLICATION = 0.15
"""Background stays of a diabetic rise by this share per complication (comorbid burden)."""
IN_HOSPITAL_DEATH = 0.55
"""Share of deaths that happen in an MCO hospital."""
COPD_STAYS = {1: 0.0096, 2: 0.124, 3: 0.356}
"""COPD exacerbation stays per person-year by stage: with the infections coded with COPD as DAS,
about the admissions Santé publique France counts (broad definition: 38 and 16 per 10,000 men and
women aged 25 or more in 2007, Fuhrman et al., Respir Med 2011); about a third of patients are
re-admitted within a year of an exacerbation stay (Fuhrman et al., Rev Mal Respir 2017)."""
COPD_FIRST_STAY = 0.093
"""Share of new COPD cases hospitalised for an exacerbation in the year of onset."""
COPD_STAYS_AFTER_STAY = 2.5
"""COPD exacerbation stays multiplier in the year after an exacerbation stay (about a third of
patients are re-admitted within a year: Fuhrman et al. 2017), as :data:`HF_STAYS_AFTER_STAY`."""
COPD_BACKGROUND = 1.25
"""Background stays of a person with COPD rise by this factor (comorbid burden)."""
HF_DEATH_IN_HOSPITAL = 0.5
"""Share of the in-hospital deaths of people with symptomatic or advanced heart failure (stage 2
or more) whose terminal stay is for heart failure (DP I50.0)."""
COPD_DEATH_IN_HOSPITAL = 0.4
"""… of the others with severe COPD (stage 2 or more) whose terminal stay is for COPD (J44.1)."""
CHEMO = (0.004, 6)  # share of people aged 40+ on chemotherapy, séances a year
DIALYSIS = (0.06, 12)  # share of diabetics with kidney disease on dialysis, séances (monthly) a year

# --- codes (all in the French CIM-10; checked by the tests) ----------------------------------

HF_DP = (("I500", 0.55), ("I501", 0.25), ("I509", 0.20))
HF_BRANCH_B_DP = ("I110", "I130", "I132", "J81", "K761")
"""InVS/Santé publique France rule, second branch: these DP with I50 as DR or DAS."""
HF_NEAR_MISS_DP = ("R060", "I119", "J189")
"""A heart-failure stay whose coding misses I50: the case-finding rule cannot see it."""
HF_CODING = (0.80, 0.15, 0.05)  # branch A (DP I50), branch B, near miss
COPD_DP = (("J441", 0.50), ("J440", 0.35), ("J449", 0.15))
COPD_BRANCH_B_DP = ("J9601", "J189", "J22", "J111")
"""Santé publique France rule, second branch: acute respiratory failure, pneumonia, lower
respiratory infection or influenza as DP, with COPD (J44) as DR or DAS."""
COPD_NEAR_MISS_DP = ("J22", "R060", "J9609")
"""A COPD exacerbation stay whose coding misses J44: the case-finding rule cannot see it."""
COPD_CODING = (0.75, 0.20, 0.05)  # branch A (DP J44), branch B, near miss
COPD_DAS_CODED = 0.35
"""Share of the other stays of a person with COPD where it is coded (J44.9 as DAS)."""
COPD_RESPIRATORY_FAILURE_CODED = 0.6
"""Share of the stays of very severe COPD (stage 3) where chronic respiratory failure is coded."""
DIABETES_DAS_CODED = 0.72
"""Share of a diabetic's stays where the diabetes is coded (as DAS)."""
DIABETES_UNSPECIFIED = 0.10
"""Share of coded diabetes written E14 (unspecified) instead of E10/E11."""
T2_DAS = ("E119", "E118", "E117")
T1_DAS = ("E109", "E108")
COMPLICATION_STAY = {
    "kidney": ("N083", "E112"),
    "eye": ("H360", "E113"),
    "foot": ("L97", "E115"),
    "cardiovascular": ("I251", "E115"),
}
"""DP of a diabetes complication stay and the diabetes code put as DAS (E11 for type 2)."""
UNCOMPLICATED_DIABETES_DP = ("E110", "E111", "E119")
BACKGROUND_DP = (
    ("K802", "07", 6), ("K359", "06", 4), ("S7200", "08", 4), ("M170", "08", 6), ("I480", "05", 5),
    ("J189", "04", 6), ("N390", "11", 5), ("H251", "02", 8), ("C509", "09", 3), ("R074", "05", 5),
    ("G459", "01", 3), ("K297", "06", 4), ("I639", "01", 3), ("A099", "06", 4), ("C189", "06", 2),
    ("F100", "20", 3), ("S0600", "01", 2), ("I214", "05", 3), ("K590", "06", 2), ("R55", "05", 3),
    ("E86", "10", 2), ("I10", "05", 2), ("J22", "04", 4), ("N184", "11", 2),
)
"""Background principal diagnoses: (code, CMD, weight). COPD (J44) is never one: its stays come from
the COPD simulation, so that the truth says who has it."""
DELIVERY = ("O800", "14")
NEAR_MISS_DAS = ("R739", "O244")
"""Codes near diabetes that are not diabetes (hyperglycaemia, gestational diabetes)."""
COMORBIDITY_DAS = (
    "I10", "E669", "E785", "Z720", "F171", "Z921", "I480", "E039", "K219", "G473", "F329", "D649",
    "E876", "R296", "Z966", "Z950", "N390", "F101", "E6600", "B962", "R402", "Z515", "L899", "I739",
)
"""Frequent associated diagnoses (neither diabetes, heart failure nor COPD)."""
DAS_PER_STAY = 2.6
"""Mean number of such associated diagnoses per stay: with the disease codes, about 5 diagnoses
per stay in all positions, as in the national PMSI (about 100 million a year for 19 million stays)."""

CMD = {"I": "05", "J": "04", "K": "06", "E": "10", "N": "11", "H": "02", "L": "09", "R": "23"}


@dataclass
class StayFrame:
    """Stays of one year (arrays), before SNDS formatting."""

    table: pl.DataFrame  # one row per stay (see ``make_stays``)
    diagnoses: pl.DataFrame  # stay, code, position (DR/DAS/UM_DP/UM_DR; DP is on the stay)


def _background_rate(age: np.ndarray, sex: np.ndarray) -> np.ndarray:
    male = np.interp(age, _AGE_POINTS, _BG_MALE)
    female = np.interp(age, _AGE_POINTS, _BG_FEMALE)
    return np.where(sex == 1, male, female) * BACKGROUND_SCALE


def _share_of_year_alive(people: People, idx: np.ndarray, year: int) -> np.ndarray:
    """Fraction of ``year`` each person lives (1 for those who do not die in it)."""
    death = people.death_date[idx]
    start = np.datetime64(f"{year}-01-01")
    days = (np.datetime64(f"{year + 1}-01-01") - start).astype(np.int64)
    lived = np.where(np.isnat(death), days, (death - start).astype(np.int64) + 1)
    return np.clip(lived / days, 0.0, 1.0)


def _lookup(keys: np.ndarray, mapping: dict[str, str], default: str) -> np.ndarray:
    """``mapping[key]`` for every key (``default`` when absent), vectorised over the array."""
    if len(keys) == 0:
        return np.array([], dtype=str)
    values = pl.Series(np.asarray(keys, dtype=str)).replace_strict(mapping, default=default, return_dtype=pl.String)
    return values.to_numpy().astype(str)


def _pick(rng: np.random.Generator, options, n: int) -> np.ndarray:
    if options and isinstance(options[0], tuple):
        codes = np.array([o[0] for o in options])
        weights = np.array([o[-1] for o in options], dtype=float)
        return rng.choice(codes, size=n, p=weights / weights.sum())
    return rng.choice(np.array(options), size=n)


def make_stays(
    rng: np.random.Generator,
    people: People,
    year: int,
    alive_at_start: np.ndarray,
    new_hf: np.ndarray,
    new_copd: np.ndarray | None = None,
    hf_stay_last_year: np.ndarray | None = None,
    copd_stay_last_year: np.ndarray | None = None,
) -> StayFrame:
    """The stays of ``year`` for the persons alive at its start (``alive_at_start``, bool);
    ``hf_stay_last_year`` / ``copd_stay_last_year`` (stays per person): the disease's stays of the
    year before (more stays in the year after: :data:`HF_STAYS_AFTER_STAY`, :func:`after_stay`)."""
    idx = np.flatnonzero(alive_at_start)
    age = people.age(year)[idx]
    sex = people.sex[idx]
    has_d = people.diabetes_type[idx] > 0
    stage = people.hf_stage[idx]
    parts: list[dict[str, np.ndarray]] = []

    def add(person: np.ndarray, kind: str, dp: np.ndarray, cmd: np.ndarray, los_mean: float, emergency: float):
        n = len(person)
        if n == 0:
            return
        ambulatory = rng.random(n) < (0.35 if kind == "background" else 0.05)
        los = np.where(ambulatory, 0, 1 + rng.geometric(1 / max(los_mean, 1.01), size=n))
        parts.append(
            dict(
                person=person,
                kind=np.full(n, kind),
                dp=dp,
                cmd=cmd,
                los=los.astype(np.int64),
                emergency=rng.random(n) < emergency,
            )
        )

    # background stays (more for people with the diseases)
    alive = _share_of_year_alive(people, idx, year)
    n_comp = people.complications[idx].sum(axis=1)
    rate = (
        _background_rate(age, sex) * np.where(has_d, 1.4 * (1 + BACKGROUND_PER_COMPLICATION * n_comp), 1.0)
        * np.where(stage > 0, 1.3, 1.0) * np.where(people.copd_stage[idx] > 0, COPD_BACKGROUND, 1.0) * alive
    )
    n_bg = rng.poisson(rate)
    who = np.repeat(idx, n_bg)
    dp = _pick(rng, BACKGROUND_DP, len(who))
    cmd_of = {c: m for c, m, _ in BACKGROUND_DP}
    cmd = _lookup(dp, cmd_of, "05")
    women = people.sex[who] == 2
    wage = people.age(year)[who]
    delivery = women & (wage >= 18) & (wage <= 44) & (rng.random(len(who)) < 0.35)
    dp = np.where(delivery, DELIVERY[0], dp)
    cmd = np.where(delivery, DELIVERY[1], cmd)
    add(who, "background", dp, cmd, 4.0, 0.22)

    # heart failure decompensations: a person's number of stays is, as before, the first stay of a
    # new case (probability HF_FIRST_STAY) plus a Poisson number by stage; who has at least one is
    # drawn by balanced sampling (each person's chance unchanged, the world's number of people
    # hospitalised for heart failure its expected value: people.balanced_draw), then how many
    lam = np.select([stage == 1, stage == 2, stage == 3], [HF_STAYS[1], HF_STAYS[2], HF_STAYS[3]], 0.0)
    hf_recent = after_stay(None if hf_stay_last_year is None else hf_stay_last_year[idx], HF_STAYS_AFTER_STAY, len(idx))
    mu = lam * np.where(people.complications[idx, 0], HF_KIDNEY, 1.0) * hf_recent * alive
    n_hf = _balanced_stays(rng, mu, np.where(np.isin(idx, new_hf), HF_FIRST_STAY, 0.0))
    who = np.repeat(idx, n_hf)
    add(who, "heart_failure", _pick(rng, HF_DP, len(who)), np.full(len(who), "05"), 8.0, 0.65)

    # diabetes stays
    per_comp = people.complications[idx] @ np.array([DIABETES_STAYS_PER_COMPLICATION[c] for c in COMPLICATIONS])
    n_d = rng.poisson(np.where(has_d, DIABETES_STAYS_BASE + per_comp, 0) * alive)
    who = np.repeat(idx, n_d)
    comps = people.complications[who]
    choice = np.full(len(who), -1)
    for k in range(len(who)):  # a few per thousand persons: pick one of the person's complications
        options = np.flatnonzero(comps[k])
        if len(options):
            choice[k] = options[rng.integers(len(options))]
    dp = _pick(rng, UNCOMPLICATED_DIABETES_DP, len(who))
    for j, name in enumerate(COMPLICATIONS):
        dp = np.where(choice == j, COMPLICATION_STAY[name][0], dp)
    add(who, "diabetes", dp, _lookup(np.char.ljust(dp, 1).astype("U1"), CMD, "10"), 5.0, 0.3)

    # COPD exacerbations: as heart failure's, who has at least one is a balanced draw
    copd = people.copd_stage[idx]
    lam = np.select([copd == 1, copd == 2, copd == 3], [COPD_STAYS[1], COPD_STAYS[2], COPD_STAYS[3]], 0.0)
    new = np.isin(idx, new_copd) if new_copd is not None else np.zeros(len(idx), bool)
    copd_recent = after_stay(None if copd_stay_last_year is None else copd_stay_last_year[idx], COPD_STAYS_AFTER_STAY, len(idx))
    n_copd = _balanced_stays(rng, lam * copd_recent * alive, np.where(new, COPD_FIRST_STAY, 0.0))
    who = np.repeat(idx, n_copd)
    add(who, "copd", _pick(rng, COPD_DP, len(who)), np.full(len(who), "04"), 8.0, 0.6)

    # séances (kept apart by the quality filters): chemotherapy and dialysis
    chemo = idx[(age >= 40) & (rng.random(len(idx)) < CHEMO[0])]
    dial = idx[has_d & people.complications[idx, 0] & (rng.random(len(idx)) < DIALYSIS[0])]
    for who_s, n_s, code in ((chemo, CHEMO[1], "Z511"), (dial, DIALYSIS[1], "Z491")):
        who_s = np.repeat(who_s, n_s)
        n = len(who_s)
        if n:
            parts.append(dict(person=who_s, kind=np.full(n, "session"), dp=np.full(n, code),
                              cmd=np.full(n, "28"), los=np.zeros(n, dtype=np.int64), emergency=np.zeros(n, bool)))

    # in-hospital deaths: the terminal stay
    died = idx[(~np.isnat(people.death_date[idx])) & (people.death_date[idx].astype("datetime64[Y]").astype(int) + 1970 == year)]
    # balanced draws (people.balanced_draw), within each heart-failure stage
    died = died[balanced_draw(rng, np.full(len(died), IN_HOSPITAL_DEATH), strata=people.hf_stage[died])]
    hf_death = balanced_draw(rng, np.where(people.hf_stage[died] >= 2, HF_DEATH_IN_HOSPITAL, 0.0))
    dp = np.where(hf_death, "I500", _pick(rng, BACKGROUND_DP, len(died)) if len(died) else np.array([], dtype=str))
    cmd = np.where(hf_death, "05", _lookup(dp, cmd_of, "05"))
    copd_death = balanced_draw(rng, np.where(~hf_death & (people.copd_stage[died] >= 2), COPD_DEATH_IN_HOSPITAL, 0.0))
    dp = np.where(copd_death, "J441", dp)
    cmd = np.where(copd_death, "04", cmd)
    add(died, "death", dp.astype("U5"), cmd.astype("U2"), 9.0, 0.7)

    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}
    return _dates_and_codes(rng, people, year, cols)


def _balanced_stays(rng: np.random.Generator, mu: np.ndarray, first_p: np.ndarray) -> np.ndarray:
    """Number of stays of each person: a first stay with probability ``first_p`` (a new case) plus
    a Poisson number of mean ``mu``, as independent draws would give it person by person; who has
    at least one (probability 1 - (1 - first_p) exp(-mu)) is a balanced draw
    (:func:`respop.synth.people.balanced_draw`), then how many given at least one."""
    any_p = 1 - (1 - first_p) * np.exp(-mu)
    hospitalised = np.flatnonzero(balanced_draw(rng, any_p))
    first = rng.random(len(hospitalised)) < first_p[hospitalised] / any_p[hospitalised]
    n = np.zeros(len(mu), dtype=np.int64)
    n[hospitalised] = first + np.where(first, rng.poisson(mu[hospitalised]), _zero_truncated_poisson(rng, mu[hospitalised]))
    return n


def _zero_truncated_poisson(rng: np.random.Generator, mu: np.ndarray) -> np.ndarray:
    """A Poisson number of mean ``mu`` given that it is at least 1 (inverse of its distribution
    function; ``mu`` = 0 gives 1)."""
    mu = np.asarray(mu, dtype=float)
    zero = np.exp(-mu)
    u = zero + rng.random(len(mu)) * (1 - zero)
    k = np.ones(len(mu), dtype=np.int64)
    pmf = mu * zero
    cdf = zero + pmf
    for _ in range(100):
        short = cdf < u * (1 - 1e-12)
        if not short.any():
            break
        k[short] += 1
        pmf = np.where(short, pmf * mu / k, pmf)
        cdf = np.where(short, cdf + pmf, cdf)
    return k


def _dates_and_codes(rng: np.random.Generator, people: People, year: int, cols: dict) -> StayFrame:
    person = cols["person"]
    n = len(person)
    kind = cols["kind"]
    start = np.datetime64(f"{year}-01-01")
    end = np.datetime64(f"{year}-12-31")
    los = cols["los"]
    death = people.death_date[person]
    is_death = kind == "death"
    # exit dates uniform over the days the person is alive and, for a disease stay of a new case,
    # after its onset; the terminal stay ends on the day of death
    last_day = np.where(np.isnat(death), end, death)
    first_day = np.full(n, start)
    for disease, onset in (
        ("heart_failure", people.hf_onset[person]), ("diabetes", people.diabetes_onset[person]), ("copd", people.copd_onset[person])
    ):
        new_case = (kind == disease) & ~np.isnat(onset) & (onset >= start)
        first_day = np.where(new_case, np.minimum(onset, last_day), first_day)
    span = (last_day - first_day).astype(np.int64) + 1
    exit_ = first_day + (rng.random(n) * span).astype(np.int64).astype("timedelta64[D]")
    exit_ = np.where(is_death, last_day, exit_)
    entry = exit_ - los.astype("timedelta64[D]")
    entry = np.maximum(entry, start - np.timedelta64(60, "D"))
    los = (exit_ - entry).astype(np.int64)
    age = np.maximum((year - people.birth_year[person]) - (entry < start), 0)
    exit_mode = np.where(is_death, DEATH_EXIT_MODE, np.where(rng.random(n) < 0.04, "7", "8"))
    session = kind == "session"
    exit_mode = np.where(session, "8", exit_mode)
    surgical = np.isin(cols["cmd"], ["06", "07", "08", "02", "09"]) & (rng.random(n) < 0.6)
    level = np.where(session, "Z", np.where(los == 0, "J", rng.choice(np.array(["1", "2", "3", "4"]), size=n, p=[0.5, 0.3, 0.15, 0.05])))
    number = rng.integers(1, 30, size=n)
    ghm = np.char.add(np.char.add(np.char.add(cols["cmd"].astype("U2"), np.where(session, "Z", np.where(surgical, "C", "M"))),
                                  np.char.zfill(number.astype(str), 2)), level)
    ghm = np.where(kind == "heart_failure", np.char.add("05M09", np.where(los == 0, "J", level)), ghm)
    ghm = np.where(kind == "copd", np.char.add("04M08", np.where(los == 0, "J", level)), ghm)
    ghm = np.where(session & (cols["dp"] == "Z511"), "28Z07Z", np.where(session, "28Z04Z", ghm))

    stay = np.arange(n)
    dp = cols["dp"].astype("U6")
    # coding of heart-failure stays: branch B and near misses
    hf = kind == "heart_failure"
    branch = rng.choice(3, size=n, p=HF_CODING)
    b_branch = hf & (branch == 1)
    miss = hf & (branch == 2)
    dp = np.where(b_branch, rng.choice(np.array(HF_BRANCH_B_DP), size=n), dp)
    dp = np.where(miss, rng.choice(np.array(HF_NEAR_MISS_DP), size=n), dp)
    # coding of COPD exacerbation stays: the second branch and near misses
    copd = kind == "copd"
    copd_branch = rng.choice(3, size=n, p=COPD_CODING)
    copd_b = copd & (copd_branch == 1)
    copd_miss = copd & (copd_branch == 2)
    dp = np.where(copd_b, rng.choice(np.array(COPD_BRANCH_B_DP), size=n), dp)
    dp = np.where(copd_miss, rng.choice(np.array(COPD_NEAR_MISS_DP), size=n), dp)
    dx_stay, dx_code, dx_pos = [], [], []

    def put(mask: np.ndarray, codes: np.ndarray, position: str) -> None:
        dx_stay.append(stay[mask])
        dx_code.append(np.asarray(codes)[mask] if np.ndim(codes) else np.full(mask.sum(), codes))
        dx_pos.append(np.full(mask.sum(), position))

    hf_code = rng.choice(np.array(["I500", "I501", "I509"]), size=n)
    as_dr = rng.random(n) < 0.3
    put(b_branch & as_dr, hf_code, "DR")
    put(b_branch & ~as_dr, hf_code, "DAS")
    # heart failure known in other stays of the person: DAS I50 (sometimes)
    person_hf = (people.hf_stage[person] > 0) & (people.hf_onset[person] <= exit_)
    put(person_hf & ~hf & ~session & (rng.random(n) < 0.5), hf_code, "DAS")
    # COPD: J44 as DR or DAS of the second branch's stays; known COPD as DAS of other stays (sometimes);
    # chronic respiratory failure of very severe COPD
    copd_code = rng.choice(np.array(["J441", "J440", "J449"]), size=n)
    copd_as_dr = rng.random(n) < 0.3
    put(copd_b & copd_as_dr, copd_code, "DR")
    put(copd_b & ~copd_as_dr, copd_code, "DAS")
    person_copd = (people.copd_stage[person] > 0) & (people.copd_onset[person] <= exit_)
    put(person_copd & ~copd & ~session & (dp != "J441") & (rng.random(n) < COPD_DAS_CODED), np.full(n, "J449"), "DAS")
    put(person_copd & (people.copd_stage[person] == 3) & ~session & (rng.random(n) < COPD_RESPIRATORY_FAILURE_CODED),
        np.full(n, "J96110"), "DAS")
    # diabetes as DAS, with its type, unspecified or not coded at all
    dtype = np.where(people.diabetes_onset[person] <= exit_, people.diabetes_type[person], 0)
    coded = (dtype > 0) & ~session & (rng.random(n) < DIABETES_DAS_CODED)
    d_code = np.where(dtype == 1, rng.choice(np.array(T1_DAS), size=n), rng.choice(np.array(T2_DAS), size=n))
    d_code = np.where(rng.random(n) < DIABETES_UNSPECIFIED, "E149", d_code)
    comp_stay = (kind == "diabetes") & ~np.isin(dp, np.array(UNCOMPLICATED_DIABETES_DP))
    comp_das = {v[0]: v[1] for v in COMPLICATION_STAY.values()}
    comp_code = _lookup(dp, comp_das, "E119").astype("U6")
    comp_code = np.where(dtype == 1, np.char.replace(comp_code, "E11", "E10"), comp_code)
    put(comp_stay, comp_code, "DAS")
    put(coded & ~comp_stay & (kind != "diabetes"), d_code, "DAS")
    # kidney disease and other comorbidities
    kidney = people.complications[person, 0]
    put(kidney & ~session & (rng.random(n) < 0.6), rng.choice(np.array(["N183", "N184", "N185"]), size=n), "DAS")
    n_das = np.where(session, 0, rng.poisson(DAS_PER_STAY, size=n))
    extra = np.repeat(stay, n_das)
    dx_stay.append(extra)
    dx_code.append(rng.choice(np.array(COMORBIDITY_DAS), size=len(extra)))
    dx_pos.append(np.full(len(extra), "DAS"))
    # near-miss codes of diabetes for people without it
    put((dtype == 0) & ~session & (rng.random(n) < 0.004), np.full(n, NEAR_MISS_DAS[0]), "DAS")
    put((dp == DELIVERY[0]) & (rng.random(n) < 0.08), np.full(n, NEAR_MISS_DAS[1]), "DAS")
    # medical units: the first unit's DP is the stay's DP; a second unit for some stays
    put(np.ones(n, dtype=bool), dp, "UM_DP")
    two_units = ~session & (los > 2) & (rng.random(n) < 0.2)
    put(two_units, np.where(hf & ~miss, hf_code, np.where(copd & ~copd_miss, copd_code, dp)), "UM_DP2")

    table = pl.DataFrame(
        {
            "stay": stay,
            "person": person,
            "kind": kind,
            "entry_date": entry.astype("datetime64[D]"),
            "exit_date": exit_.astype("datetime64[D]"),
            "length_of_stay": los,
            "age": age,
            "via_emergency": cols["emergency"],
            "exit_mode": exit_mode,
            "ghm": ghm,
            "principal_diagnosis": dp,
        }
    )
    diagnoses = pl.DataFrame(
        {
            "stay": np.concatenate(dx_stay),
            "code": np.concatenate(dx_code).astype(str),
            "position": np.concatenate(dx_pos),
        }
    )
    return StayFrame(table=table, diagnoses=diagnoses)
