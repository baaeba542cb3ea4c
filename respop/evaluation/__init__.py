"""The evaluation of the experiment (docs/evaluation.md): did responsabilité populationnelle change
outcomes in the pilot territories, compared with similar territories?

Modules, by layer (pyproject.toml, [tool.importlinter]):

- engines: ``outcomes`` (the outcome catalogue and the territory × year panel, age-sex
  standardised), ``did`` (difference-in-differences for staggered starts and its event study),
  ``synthetic_control`` (per pilot, placebo-in-space inference), ``power`` (the smallest
  detectable effect);
- steps: ``deprivation`` (the optional zone-level deprivation index, its aggregation from
  communes, quintiles), ``design`` (pilots, start years and donors checked against the territory
  build and the data's years), ``run`` (``respop evaluate``: writes ``<output.dir>/evaluation/``).
"""
