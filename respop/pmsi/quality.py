"""Quality filters of SNDS analysts, applied to the canonical stays.

Each filter is documented here and in docs/pmsi.md, switched on or off in the ``[quality]``
section of the configuration, and counted in the run report. A filter has one of two effects
(:attr:`QualityFilter.effect`):

- :data:`EXCLUDE`: the stay is not a usable stay (no person, sent twice, not grouped): it is left
  out of everything. A stay is excluded by the first enabled such filter that flags it (in the
  order of :data:`FILTERS`), so that the report's counts add up: ``stays loaded = stays kept +
  séances kept apart + Σ stays excluded per filter``. Excluded stays stay available
  (``PmsiData.excluded_stays``) with the filter that excluded them: nothing is dropped silently.
- :data:`CLINICAL_ONLY`: the stay is a true clinical event of a person (its diagnoses, its
  in-hospital death), so it stays among the kept stays for case finding and outcomes, but part of
  its use is withheld, said by two columns (:data:`USE_SCHEMA`): ``residence_used`` (its residence
  code feeds the flows zone → hospital and the residence attachment) and ``stay_counted`` (it
  counts as a hospital stay of its own: flows, care-use counts). ``clinical_only_by`` names the
  first enabled such filter that flags a kept stay.

  * ``invalid_residence``, ``residence_abroad``: an unusable residence code says nothing of the
    person's disease: ``residence_used`` false.
  * ``inter_hospital_services`` (SEJ_TYP = B, *prestation inter-établissements*): the SNDS
    documentation excludes these stays when **counting stays** — the patient is temporarily sent
    (under two days) by hospital A to hospital B for a service; A's stay is suspended, not closed,
    "la même prestation figure alors dans les remontées des 2 établissements" (documentation
    collaborative du SNDS, formation, "Séjours des ES ex-DG et ex-OQN en MCO", filtres
    principaux: ``B.SEJ_TYP <> 'B' OR B.SEJ_TYP IS NULL``). Santé publique France's requête type
    for **selecting stays by diagnosis** (fiche "Requête type dans le PMSI-MCO",
    pmsi_mco_select_sejours_par_diag.sas) filters the AP-HP/AP-HM/HCL duplicates, CMD 90 and the
    linkage return codes, and not SEJ_TYP; the CNAM's Cartographie des pathologies selects
    hospitalisations by the DP of any RUM, with no SEJ_TYP filter either. respop does both: the
    PIE stay is not counted as a stay (``stay_counted`` and ``residence_used`` false: not in the
    flows, the care-use counts or the residence attachment; its activity and residence are the
    sending hospital's stay's), and its diagnoses and death are clinical events (case finding,
    outcomes, deaths).

The report also gives, per filter, every stay it flags, which may overlap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import polars as pl

from respop.config import QualityConfig
from respop.pmsi.validate import repeated
from respop.resources import data_path

EXCLUDED_BY = "excluded_by"
"""Column naming the filter that excluded a stay (null for kept stays)."""
CLINICAL_ONLY_BY = "clinical_only_by"
"""Column naming the first enabled :data:`CLINICAL_ONLY` filter that flags a kept stay (null when
none does, and for excluded stays)."""

EXCLUDE = "excluded"
"""Effect of a filter: the stay is left out of everything (``PmsiData.excluded_stays``)."""
CLINICAL_ONLY = "clinical events only"
"""Effect of a filter: the stay is kept for case finding and outcomes (diagnoses, in-hospital
death), but not used for what the filter withholds (:data:`USE_SCHEMA`)."""

RESIDENCE_USED = "residence_used"
"""Kept stays: the residence code is used (flows zone → hospital, residence attachment)."""
STAY_COUNTED = "stay_counted"
"""Kept stays: the stay counts as a hospital stay of its own (flows, care-use counts)."""
USE_SCHEMA: dict[str, pl.DataType] = {RESIDENCE_USED: pl.Boolean, STAY_COUNTED: pl.Boolean}
"""Columns the kept stays and séances carry beside the canonical STAY_SCHEMA."""

ZONE_PATTERN = r"^(?:[0-9]{2}|2[AB])[0-9A-Z]{3}$"
"""PMSI geographic codes: 5 characters, two digits or 2A/2B (the département) then 3 letters or
digits. The pattern checks the form only; a zone list (quality.zones_file) checks existence."""
UNKNOWN_ZONE = "99999"
"""Residence code for an unknown place of residence."""
ABROAD_PREFIX = "99"
"""Residence codes 99xxx (other than 99999) mean residence abroad (99 + INSEE country code)."""
FICTITIOUS_KEY = r"^.[Xx]{16}$"
"""Placeholder patient keys (xxxxxxxxxxxxxxxxx, BXXXXXXXXXXXXXXXX…) given when the NIR is unknown."""


@dataclass(frozen=True)
class QualityFilter:
    """One quality filter: its configuration key, a short title and what it flags."""

    name: str
    title: str
    description: str
    flags: Callable[[frozenset[str] | None], pl.Expr]
    effect: str = EXCLUDE
    """:data:`EXCLUDE` or :data:`CLINICAL_ONLY`."""
    withholds: tuple[str, ...] = ()
    """For a :data:`CLINICAL_ONLY` filter: the uses (columns of :data:`USE_SCHEMA`) it turns off."""


@cache
def legal_entity_duplicates() -> frozenset[str]:
    """Geographic FINESS of AP-HP, AP-HM and HCL whose stays are also sent under the legal FINESS."""
    df = pl.read_csv(data_path("snds", "finess_legal_duplicates.csv"), separator=";", infer_schema=False)
    return frozenset(df["eta_num"].to_list())


def _zone_invalid(zones: frozenset[str] | None) -> pl.Expr:
    zone = pl.col("residence_zone")
    bad = zone.is_null() | ~zone.str.contains(ZONE_PATTERN) | (zone == UNKNOWN_ZONE)
    if zones is not None:
        bad = bad | (~zone.is_in(sorted(zones)) & ~zone.str.starts_with(ABROAD_PREFIX))
    return bad


FILTERS: tuple[QualityFilter, ...] = (
    QualityFilter(
        "linkage",
        "unusable patient key",
        "The patient key (NIR_ANO_17) cannot be trusted: no linkage row in T_MCOaaC, a linkage "
        "return code (NIR_RET, NAI_RET, SEX_RET, SEJ_RET, FHO_RET, PMS_RET, DAT_RET) other than "
        "0, or a missing or placeholder key (xxxxxxxxxxxxxxxxx). Such stays cannot be attached to "
        "a person.",
        lambda zones: (
            ~pl.col("_linked")
            | ~pl.col("_return_codes_ok")
            | pl.col("patient_key").is_null()
            | pl.col("patient_key").str.contains(FICTITIOUS_KEY)
        ),
    ),
    QualityFilter(
        "legal_entity_duplicates",
        "AP-HP/AP-HM/HCL geographic duplicates",
        "Stays of the geographic FINESS of AP-HP, AP-HM and HCL, whose activity is transmitted "
        "twice (also under the legal-entity FINESS); the SNDS documentation's list of 46 numbers.",
        lambda zones: pl.col("hospital_id").is_in(sorted(legal_entity_duplicates())),
    ),
    QualityFilter(
        "inter_hospital_services",
        "inter-hospital services (SEJ_TYP = B)",
        "Prestations inter-établissements: a patient sent for a service (under two days) by "
        "another hospital, whose stay is counted there. Not counted as a stay (flows, care use) "
        "nor used for the residence; its diagnoses and death are kept for case finding and "
        "outcomes (the SNDS documentation's counting filters; Santé publique France's selection "
        "by diagnosis).",
        lambda zones: (pl.col("stay_type") == "B").fill_null(False),
        CLINICAL_ONLY,
        (RESIDENCE_USED, STAY_COUNTED),
    ),
    QualityFilter(
        "error_ghm",
        "grouping error (CMD 90)",
        "GHM in CMD 90 (90Z00Z…): the stay could not be grouped, its coding is in error.",
        lambda zones: pl.col("ghm").str.starts_with("90").fill_null(False),
    ),
    QualityFilter(
        "invalid_residence",
        "invalid or missing residence code",
        "BDI_COD missing, not a 5-character PMSI geographic code, 99999 (unknown), or — when a "
        "zone list is configured (quality.zones_file) — a code absent from it. The residence is "
        "not used (flows, residence attachment); the stay is kept for case finding and outcomes.",
        _zone_invalid,
        CLINICAL_ONLY,
        (RESIDENCE_USED,),
    ),
    QualityFilter(
        "residence_abroad",
        "residence abroad",
        "BDI_COD 99xxx (99 followed by the INSEE country code): the patient lives outside France. "
        "The residence is not used (flows, residence attachment); the stay is kept for case "
        "finding and outcomes.",
        lambda zones: (
            pl.col("residence_zone").str.starts_with(ABROAD_PREFIX) & (pl.col("residence_zone") != UNKNOWN_ZONE)
        ).fill_null(False),
        CLINICAL_ONLY,
        (RESIDENCE_USED,),
    ),
    QualityFilter(
        "duplicate_stays",
        "duplicated stay",
        "The same stay sent twice under two RSA numbers: same patient, hospital, entry and exit "
        "dates and GHM as another stay not excluded by an earlier filter. The stay with the "
        "smallest stay_id (the first in the files) is kept.",
        lambda zones: pl.lit(False),  # computed in apply_filters: needs the earlier exclusions
    ),
)
"""The quality filters, in the order they are applied."""

DUPLICATE_KEYS = ("patient_key", "hospital_id", "entry_date", "exit_date", "ghm")

SESSIONS_TITLE = "séances (CMD 28), kept apart"


def flag_column(name: str) -> str:
    return f"flag_{name}"


def flag_stays(stays: pl.LazyFrame, config: QualityConfig, zones: frozenset[str] | None = None) -> pl.LazyFrame:
    """The row-wise part of the filters: one ``flag_<filter>`` column per filter but the duplicate
    one, and ``_candidate`` (the stay may be a duplicate: not excluded by an earlier filter,
    every identifying column known, a real patient key; a stay kept for clinical events only is
    a candidate: a clinical event sent twice is still one event)."""
    enabled = {f.name: getattr(config, f.name) for f in FILTERS}
    lf = stays.with_columns(
        [f.flags(zones).fill_null(True).alias(flag_column(f.name)) for f in FILTERS if f.name != "duplicate_stays"]
    )
    excluded_before = pl.any_horizontal(
        [
            pl.col(flag_column(f.name)) & pl.lit(enabled[f.name])
            for f in FILTERS
            if f.name != "duplicate_stays" and f.effect == EXCLUDE
        ]
    )
    # only stays whose identifying columns are all known (and whose patient key is not a
    # placeholder) can be duplicates of one another: missing values are not equal
    candidate = (
        ~excluded_before
        & pl.all_horizontal([pl.col(c).is_not_null() for c in DUPLICATE_KEYS])
        & ~pl.col("patient_key").str.contains(FICTITIOUS_KEY)
    )
    return lf.with_columns(candidate.fill_null(False).alias("_candidate"))


def duplicate_groups(flagged: pl.LazyFrame) -> pl.LazyFrame:
    """Keys of the groups of candidate stays that are duplicates of one another (two stays or
    more) and the id of the first stay of each (``_first_stay_id``), as one lazy plan.
    ``flagged``: the output of :func:`flag_stays`. For national data use
    :func:`find_duplicate_groups`: one group-by on the keys of ~100 million stays needs more
    memory than a 24 GB machine has."""
    return _groups(_candidates(flagged))


def find_duplicate_groups(flagged: pl.LazyFrame, modulus: int | None = None) -> pl.DataFrame:
    """The same table as :func:`duplicate_groups`, in bounded memory, for several national years.

    Two passes over ``flagged``: the 64-bit hash of every candidate's keys (8 bytes a stay,
    sorted in memory) gives the hashes held more than once; then only the candidates with such
    a hash (the duplicates, plus any stays whose hashes collide) are grouped on their keys,
    exactly: a collision costs a few more rows in that group-by, never a wrong group.
    ``modulus`` folds the hashes into fewer values (tests force collisions with it)."""
    candidates = _candidates(flagged)
    hashed = pl.struct(DUPLICATE_KEYS).hash(seed=0)
    if modulus is not None:
        hashed = hashed % modulus
    return _groups(_suspects(candidates, hashed).lazy()).collect(engine="streaming")


def find_duplicate_stays(flagged: pl.LazyFrame, modulus: int | None = None) -> pl.DataFrame:
    """The candidate stays that belong to a group of duplicates (:func:`find_duplicate_groups`,
    the same two passes in bounded memory), one row each: ``stay_id`` and the group's
    ``_first_stay_id``. :func:`finish_filters` joins it on the integer ``stay_id`` rather than on
    the five keys of the group (strings, hashed for every stay)."""
    candidates = _candidates(flagged)
    hashed = pl.struct(DUPLICATE_KEYS).hash(seed=0)
    if modulus is not None:
        hashed = hashed % modulus
    group = list(DUPLICATE_KEYS)
    return (
        _suspects(candidates, hashed)
        .with_columns(pl.col("stay_id").min().over(group).alias("_first_stay_id"), pl.len().over(group).alias("_stays"))
        .filter(pl.col("_stays") > 1)
        .select("stay_id", "_first_stay_id")
    )


def _suspects(candidates: pl.LazyFrame, hashed: pl.Expr) -> pl.DataFrame:
    """The candidates whose hash of the keys is held more than once (the duplicates, and any stays
    whose hashes collide), in memory: a few."""
    hashes = candidates.select(hashed.alias("_hash")).collect(engine="streaming").get_column("_hash")
    held_twice = repeated(hashes)
    del hashes
    return candidates.filter(hashed.is_in(held_twice.implode())).collect(engine="streaming")


def _candidates(flagged: pl.LazyFrame) -> pl.LazyFrame:
    return flagged.filter(pl.col("_candidate")).select(*DUPLICATE_KEYS, "stay_id")


def _groups(candidates: pl.LazyFrame) -> pl.LazyFrame:
    return (
        candidates.group_by(DUPLICATE_KEYS)
        .agg(pl.col("stay_id").min().alias("_first_stay_id"), pl.len().alias("_stays"))
        .filter(pl.col("_stays") > 1)
        .drop("_stays")
    )


def finish_filters(flagged: pl.LazyFrame, config: QualityConfig, duplicates: pl.LazyFrame) -> pl.LazyFrame:
    """Add the duplicate flag (from :func:`duplicate_groups`, joined on the keys, or from
    :func:`find_duplicate_stays`, joined on ``stay_id``), ``excluded_by`` (the first enabled
    :data:`EXCLUDE` filter that flags the stay, or null when the stay is kept),
    ``clinical_only_by`` (for a kept stay, the first enabled :data:`CLINICAL_ONLY` filter that
    flags it) and the uses of :data:`USE_SCHEMA`."""
    enabled = {f.name: getattr(config, f.name) for f in FILTERS}
    on = "stay_id" if "stay_id" in duplicates.collect_schema().names() else list(DUPLICATE_KEYS)
    lf = flagged.join(duplicates, on=on, how="left", maintain_order="left").with_columns(
        (pl.col("_candidate") & (pl.col("stay_id") != pl.col("_first_stay_id")))
        .fill_null(False)
        .alias(flag_column("duplicate_stays"))
    ).drop("_candidate", "_first_stay_id")
    first = pl.lit(None, pl.String)
    clinical = pl.lit(None, pl.String)
    for f in reversed(FILTERS):
        if not enabled[f.name]:
            continue
        if f.effect == EXCLUDE:
            first = pl.when(pl.col(flag_column(f.name))).then(pl.lit(f.name)).otherwise(first)
        else:
            clinical = pl.when(pl.col(flag_column(f.name))).then(pl.lit(f.name)).otherwise(clinical)
    uses = {
        use: ~pl.any_horizontal(
            [pl.lit(False)]
            + [pl.col(flag_column(f.name)) for f in FILTERS if enabled[f.name] and use in f.withholds]
        )
        for use in USE_SCHEMA
    }
    return lf.with_columns(first.alias(EXCLUDED_BY)).with_columns(
        pl.when(pl.col(EXCLUDED_BY).is_null()).then(clinical).alias(CLINICAL_ONLY_BY),
        *[expr.alias(use) for use, expr in uses.items()],
    )


def residence_stays(stays: pl.LazyFrame) -> pl.LazyFrame:
    """The stays whose residence code is used (flows, residence attachment): ``residence_used``
    when the frame has it (the kept stays of respop.pmsi), else every stay given."""
    if RESIDENCE_USED in stays.collect_schema().names():
        return stays.filter(pl.col(RESIDENCE_USED).fill_null(True))
    return stays


def counted_stays(stays: pl.LazyFrame) -> pl.LazyFrame:
    """The stays that count as hospital stays of their own (care-use counts): ``stay_counted``
    when the frame has it, else every stay given."""
    if STAY_COUNTED in stays.collect_schema().names():
        return stays.filter(pl.col(STAY_COUNTED).fill_null(True))
    return stays


def apply_filters(stays: pl.LazyFrame, config: QualityConfig, zones: frozenset[str] | None = None) -> pl.LazyFrame:
    """Add one ``flag_<filter>`` column per filter and ``excluded_by``: the first enabled filter
    that flags the stay, or null when the stay is kept (one lazy plan; see :func:`duplicate_groups`
    for data too large for it)."""
    flagged = flag_stays(stays, config, zones)
    return finish_filters(flagged, config, duplicate_groups(flagged))
