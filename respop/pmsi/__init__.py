"""PMSI input layer: SNDS PMSI MCO tables → canonical stays and diagnoses (see docs/pmsi.md)."""

from respop.pmsi.canonical import DIAGNOSIS_SCHEMA, POSITIONS, STAY_SCHEMA
from respop.pmsi.nomenclatures import cim10, icd10_label, is_icd10
from respop.pmsi.quality import FILTERS
from respop.pmsi.reader import PmsiData, read_pmsi
from respop.pmsi.report import PmsiReport

__all__ = [
    "DIAGNOSIS_SCHEMA",
    "FILTERS",
    "POSITIONS",
    "STAY_SCHEMA",
    "PmsiData",
    "PmsiReport",
    "cim10",
    "icd10_label",
    "is_icd10",
    "read_pmsi",
]
