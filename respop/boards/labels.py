"""French labels and number formats for everything a clinician reads on a board or in a dossier.

Numbers the French way: thousands separated by a narrow no-break space (U+202F, "12 345"), a
decimal comma ("339,3"), a narrow no-break space before "%" ("12,3 %"), a true minus sign (U+2212).
Masked counts are ``None`` in the store: :func:`fr_int` shows them as :data:`MASKED` ("s", the one
symbol of every suppressed cell, explained once on each page by :data:`MASKED_NOTE`); a rate or a
share built on a masked count is ``None`` too and shows as :data:`MISSING`. NaN is treated as
``None``.

Labels: :func:`label` looks a store key up (level, column, transition target, indicator) and falls
back to the key itself, so that an unknown code still shows. Nothing here is about one disease: the
diseases' names, sub-types, strata and features are the run's published catalogue
(:func:`respop.boards.data.disease_name` and the functions beside it).
"""

from __future__ import annotations

import math
from numbers import Real

MASKED = "s"
"""What a masked count shows: counts of 1 to 10 *and* the complementary suppressions (cells of any
size masked so that a small one cannot be found by subtraction). The store cannot tell the two
apart (on purpose), so the boards never write "< 11": one symbol, as INSEE's "s" (secret
statistique)."""

MASKED_NOTE = ("« s » : secret statistique (effectif de 1 à 10, ou masqué pour qu'un petit effectif "
               "ne puisse pas être retrouvé par soustraction)")
"""The one sentence that explains :data:`MASKED`, once on each page and in the dossier."""

MISSING = "–"
"""What a masked or missing rate, share or decimal shows (an en dash)."""

MASKED_LEGEND = "s : secret statistique"
"""The legend entry of masked cells on maps."""

NNBSP = "\u202f"
"""Narrow no-break space: French thousands separator and space before "%"."""

MINUS = "\u2212"

PER_100K = f"pour 100{NNBSP}000 habitants"
"""The unit of the indicators' rates: "pour 100 000 habitants" (no break inside the number)."""


def _is_missing(x: object) -> bool:
    if x is None:
        return True
    try:
        return math.isnan(float(x))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _group(digits_text: str) -> str:
    """'12345.67' (no sign) → '12 345,67'."""
    whole, _, frac = digits_text.partition(".")
    groups = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    out = NNBSP.join(groups)
    return f"{out},{frac}" if frac else out


def _signed(value: float, digits: int) -> str:
    text = f"{abs(value):.{digits}f}"
    negative = value < 0 and float(text) != 0.0  # no "−0,0"
    return (MINUS if negative else "") + _group(text)


def fr_int(n: Real | None) -> str:
    """A count the French way: 12 345; ``None`` (masked) → "< 11". Non-integers are rounded."""
    if _is_missing(n):
        return MASKED
    return _signed(float(round(n)), 0)  # type: ignore[arg-type]


def fr_dec(x: Real | None, digits: int = 1) -> str:
    """A decimal number the French way: 1 234,5 (``digits`` after the comma); ``None`` → "–"."""
    if _is_missing(x):
        return MISSING
    return _signed(float(x), digits)  # type: ignore[arg-type]


def fr_pct(x: Real | None, digits: int = 1) -> str:
    """A share (0 to 1) as a French percentage: 0.123 → "12,3 %"; ``None`` → "–"."""
    if _is_missing(x):
        return MISSING
    return f"{fr_dec(float(x) * 100.0, digits)}{NNBSP}%"  # type: ignore[arg-type]


def fr_rate(x: Real | None) -> str:
    """A rate per 100,000 inhabitants: 339.27 → "339,3"; ``None`` → "–"."""
    return fr_dec(x, 1)


def parse_fr_number(text: str) -> float:
    """The inverse of the formats above (for tests and exports): "12 345,6" → 12345.6.

    Raises ``ValueError`` on "< 11" and "–": a masked value has no number."""
    cleaned = text.replace(NNBSP, "").replace("\u00a0", "").replace(" ", "").replace(MINUS, "-")
    cleaned = cleaned.removesuffix("%").replace(",", ".")
    return float(cleaned)


# -------------------------------------------------------------------------------------------- labels

LEVELS: dict[str, str] = {
    "zone": "Zone",
    "territory": "Territoire",
    "area": "Région étudiée",
}

CARE_USE: dict[str, str] = {
    "people": "Personnes",
    "stays": "Séjours",
    "emergency_stays": "Arrivées par les urgences",
    "bed_days": "Journées d'hospitalisation",
    "readmissions_30d": "Réhospitalisations à 30 jours",
    "deaths": "Décès",
}
"""The counts of the ``care_use`` table; ``<count>_per_person`` is "<label> par personne"."""

CARE_USE_PER_PERSON: dict[str, str] = {
    f"{k}_per_person": f"{v} par personne" for k, v in CARE_USE.items() if k != "people"
}

TRANSITION_TARGETS: dict[str, str] = {
    "deces": "Décès",
    "non_revu": "Non revu",
    "all": "Total",
}
"""The targets of the ``transitions`` table besides the strata ('all' is the row total)."""

INDICATORS: dict[str, str] = {
    "cases": "Cas",
    "incident_cases": "Cas incidents",
    "population": "Population",
    "prevalence_crude": "Prévalence brute",
    "prevalence_std": "Prévalence standardisée",
    "incidence_crude": "Incidence brute",
    "incidence_std": "Incidence standardisée",
    "cases_outside": "Cas hors du périmètre",
    "cases_unstandardised": "Cas non standardisables",
    "complete_history": "Historique complet",
}
"""The columns of the ``indicators`` table; rates are per 100,000 inhabitants (:data:`PER_100K`).
``<rate>_low`` / ``<rate>_high`` are the bounds of its confidence interval."""

BOUNDS: dict[str, str] = {
    "_low": "borne basse de l'intervalle de confiance",
    "_high": "borne haute de l'intervalle de confiance",
}

OTHER: dict[str, str] = {
    "year": "Année",
    "subtype": "Sous-type",
    "disease": "Maladie",
    "stratum": "Strate",
    "territory_name": "Territoire",
    "zone_code": "Zone",
    "unit_name": "Unité",
    "hospital": "Établissement",
}

LABELS: dict[str, str] = {
    **LEVELS, **CARE_USE, **CARE_USE_PER_PERSON, **TRANSITION_TARGETS, **INDICATORS, **OTHER,
}
"""Every known key → its French label."""


def label(key: object) -> str:
    """The French label of a store key ("bed_days" → "Journées d'hospitalisation",
    "prevalence_std_low" → "Prévalence standardisée (borne basse de l'intervalle de confiance)");
    any other key is returned as text, unchanged; ``None`` → ""."""
    if key is None:
        return ""
    text = str(key)
    if text in LABELS:
        return LABELS[text]
    for suffix, words in BOUNDS.items():
        base = text.removesuffix(suffix)
        if base != text and base in INDICATORS:
            return f"{INDICATORS[base]} ({words})"
    return text
