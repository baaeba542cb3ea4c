"""The boards state each disease's denominator (issue 18, item 2): the rates of a disease are per
100,000 inhabitants of its spec's ages in the year, as the indicators and `respop cases validate`
compute them."""

from __future__ import annotations

import polars as pl

from respop.boards import data
from respop.spec.catalogue import ages_label


def test_the_disease_figures_say_whose_rates_they_are(tiny_run):
    url, run = tiny_run.config.store.url, tiny_run.run_id
    territory = int(data.territories(url, run)["territory_id"][0])
    for disease, ages in (("heart_failure", "de 18 ans et plus"), ("diabetes", "de tous âges"), ("copd", "de 40 ans et plus")):
        assert data.rate_unit(url, run, disease, 2023) == f"{data.PER_100K} {ages} en 2023"
        facts = {label: help_ for label, _, help_ in data.disease_facts(url, run, territory, disease, 2023)}
        assert facts["Prévalence standardisée (pour 100\u202f000 hab.)"].startswith(f"{data.PER_100K} {ages} en 2023")
    # the published indicators' population is that denominator: adults for heart failure
    indicators = data.read(url, "indicators", run).filter(
        (pl.col("level") == "area") & (pl.col("year") == 2023) & (pl.col("subtype") == "all")
    )
    population = dict(zip(indicators["disease"], indicators["population"], strict=True))
    assert population["copd"] < population["heart_failure"] < population["diabetes"]


def test_ages_in_french():
    assert ages_label(18, None) == "de 18 ans et plus"
    assert ages_label(None, 64) == "de 64 ans ou moins"
    assert ages_label(40, 64) == "de 40 à 64 ans"
    assert ages_label(None, None) == ages_label(0, None) == "de tous âges"
