"""The specification layer: what the rules say, without any engine.

- :mod:`respop.spec.algorithm`: the case-finding algorithm of a disease (``algorithms/<disease>.toml``);
- :mod:`respop.spec.strata`: its ``[strata]`` part (ordered levels, conditions, protocols);
- :mod:`respop.spec.conditions`: the condition language, parsed into an engine-neutral tree;
- :mod:`respop.spec.features`: the features catalogue (computed, case-of, code features);
- :mod:`respop.spec.loaders`: reading an algorithms folder (the diseases are its spec files);
- :mod:`respop.spec.catalogue`: a run's frozen copy of the specs it used.

The engines (``respop.case_finding.engine``, ``respop.strata.engine``, ``respop.spark``) compile
these; nothing here imports polars, Spark, the store or the boards (tests/spec/test_layering.py).
"""

from respop.spec.algorithm import AlgorithmSpec, Criterion
from respop.spec.catalogue import Catalogue, freeze, read_catalogue, run_catalogue, start_catalogue
from respop.spec.features import FeaturesSpec, load_features
from respop.spec.loaders import available_diseases, load_spec, load_specs, shipped_algorithms_dir, spec_path

__all__ = [
    "AlgorithmSpec",
    "Catalogue",
    "Criterion",
    "FeaturesSpec",
    "available_diseases",
    "freeze",
    "load_features",
    "load_spec",
    "load_specs",
    "read_catalogue",
    "run_catalogue",
    "shipped_algorithms_dir",
    "spec_path",
    "start_catalogue",
]
