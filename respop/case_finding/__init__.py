"""Case finding: declarative algorithm specs (``algorithms/*.toml``), compiled to polars.

>>> spec = load_spec("algorithms/heart_failure.toml")            # doctest: +SKIP
>>> cases = find_cases(spec, data.stays, data.diagnoses, [2023])   # a LazyFrame
"""

from respop.case_finding.engine import CASE_SCHEMA, RESIDENCE_SCHEMA, attach_residence, find_cases
from respop.spec.algorithm import AlgorithmSpec
from respop.spec.loaders import load_spec, load_specs

__all__ = ["CASE_SCHEMA", "RESIDENCE_SCHEMA", "AlgorithmSpec", "attach_residence", "find_cases", "load_spec", "load_specs"]
