"""The evaluation step end to end on tiny (respop.evaluation.run): the shared tiny run has
``[evaluation]`` (tests/store/conftest.py), one pilot from 2022, the two other territories as donors."""

from __future__ import annotations

import json
import subprocess
import sys

import polars as pl
import pytest

from respop.evaluation.run import MIN_EVENTS, NOTE_SMALL
from tests.store.conftest import tiny_run  # noqa: F401

METHODS = {"did", "synthetic_control"}


@pytest.fixture(scope="module")
def outputs(tiny_run):  # noqa: F811
    return tiny_run.config.output.dir / "evaluation"


def test_the_design_and_its_french_labels_travel_with_the_outputs(outputs, tiny_run):  # noqa: F811
    design = json.loads((outputs / "design.json").read_text(encoding="utf-8"))
    assert [p["start_year"] for p in design["pilots"]] == [2022]
    assert design["pilots"][0]["pre_years"] == 3
    assert len(design["donors"]) == 2
    assert design["min_events"] == MIN_EVENTS
    labels = {(o["disease"], o["outcome"]): o for o in design["outcomes"]}
    hf = labels[("heart_failure", "disease_stays")]
    assert hf["label"] == "Séjours hospitaliers pour insuffisance cardiaque"
    assert hf["unit"] == "pour 100 000 habitants de 18 ans et plus"
    assert ("diabetes", "feature:foot") in labels


def test_every_pilot_outcome_and_method_has_a_row_with_figures_or_a_reason(outputs):
    effects = pl.read_parquet(outputs / "effects.parquet")
    design = json.loads((outputs / "design.json").read_text(encoding="utf-8"))
    pilot = design["pilots"][0]["territory_id"]
    for o in design["outcomes"]:
        for method in METHODS:
            rows = effects.filter((pl.col("disease") == o["disease"]) & (pl.col("outcome") == o["outcome"])
                                  & (pl.col("method") == method) & (pl.col("territory_id") == pilot))
            assert rows.height == 1, (o, method)
            row = rows.row(0, named=True)
            if row["effect"] is None:
                assert row["note"], (o, method)
            else:
                assert row["ci_lower"] <= row["effect"] <= row["ci_upper"]
                assert 0 <= row["p_value"] <= 1
                assert row["effect_abs"] == pytest.approx(row["effect"] * row["counterfactual"])
    # with two donors no synthetic-control test can reach 5 %: the rows say so
    sc = effects.filter((pl.col("method") == "synthetic_control") & pl.col("effect").is_not_null())
    assert sc.height > 0
    assert all("territoires de comparaison" in (n or "") or "non borné" in (n or "") for n in sc["note"])


def test_no_series_with_fewer_than_min_events_enters_an_evaluation(outputs):
    panel = pl.read_parquet(outputs / "panel.parquet")
    used = panel.filter(pl.col("role").is_in(["pilot", "donor"]))
    assert used.height > 0
    assert used["events"].min() >= MIN_EVENTS
    assert used["denominator"].min() >= MIN_EVENTS
    effects = pl.read_parquet(outputs / "effects.parquet")
    small = panel.filter(pl.col("start_year").is_not_null()).group_by("disease", "outcome").agg(pl.col("events").min())
    for disease, outcome, events in small.filter(pl.col("events") < MIN_EVENTS).iter_rows():
        rows = effects.filter((pl.col("disease") == disease) & (pl.col("outcome") == outcome))
        assert rows["effect"].is_null().all()
        assert set(rows["note"]) == {NOTE_SMALL.format(n=MIN_EVENTS)}


def test_the_trajectories_and_weights_belong_to_the_pilot_and_its_donors(outputs):
    design = json.loads((outputs / "design.json").read_text(encoding="utf-8"))
    donors = {d["territory_id"] for d in design["donors"]}
    weights = pl.read_parquet(outputs / "weights.parquet")
    assert set(weights["donor_id"]) <= donors
    sums = weights.group_by("disease", "outcome", "territory_id").agg(pl.col("weight").sum())
    assert sums["weight"].to_list() == pytest.approx([1.0] * sums.height, abs=1e-6)
    trajectories = pl.read_parquet(outputs / "trajectories.parquet")
    assert set(trajectories["year"]) == set(design["years"])


def test_respop_evaluate_prints_the_effects_in_french_and_refuses_a_pilot_that_is_not_a_territory(tiny_run, tmp_path):  # noqa: F811
    import shutil

    shutil.copytree(tiny_run.config.output.dir, tmp_path / "run")
    text = tiny_run.config_path.read_text(encoding="utf-8")
    base = tiny_run.base.as_posix()
    text = text.replace('"data/', f'"{base}/data/').replace('dir = "run"', f'dir = "{tmp_path.as_posix()}/run"')
    good = tmp_path / "tiny.toml"
    good.write_text(text, encoding="utf-8")
    env = {"COLUMNS": "120", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "respop", "evaluate", str(good)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "Territoires pilotes" in done.stdout and "2 territoires de comparaison" in done.stdout
    assert "double différence" in done.stdout and "contrôle synthétique" in done.stdout
    # the analysts' view of the outcomes by deprivation quintile (not published: docs/evaluation.md)
    assert "Selon la défavorisation des zones de résidence, 2023" in done.stdout and "Q5" in done.stdout
    # the same inputs give the same results, to the last bit (the store's fingerprint of a run)
    for name in ("effects", "event_study", "trajectories", "weights", "power", "panel"):
        first = pl.read_parquet(tmp_path / "run" / "evaluation" / f"{name}.parquet")
        assert first.equals(pl.read_parquet(tiny_run.config.output.dir / "evaluation" / f"{name}.parquet")), name
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('pilots = { "1" = 2022 }', 'pilots = { "Paris" = 2022 }'), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "respop", "evaluate", str(bad)], capture_output=True, text=True, env=env)
    assert done.returncode == 2, done.stderr
    assert "'Paris' is not a territory of the build" in done.stderr and "Traceback" not in done.stderr


def test_respop_deprivation_aggregate_writes_the_zone_index_and_counts_what_it_could_not_use(tmp_path):
    (tmp_path / "idx.csv").write_text("codgeo,fdep\n29001,1.5\n29002,-0.5\n29003,x\n", encoding="utf-8")
    (tmp_path / "corr.csv").write_text("commune_code,zone_code,population\n29001,29100,1000\n29002,29100,3000\n29004,29200,500\n",
                                       encoding="utf-8")
    out = tmp_path / "reference" / "deprivation.parquet"
    done = subprocess.run([sys.executable, "-m", "respop", "deprivation", "aggregate", "--index", str(tmp_path / "idx.csv"),
                           "--correspondence", str(tmp_path / "corr.csv"), "--out", str(out), "--index-columns", "codgeo,fdep"],
                          capture_output=True, text=True, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    table = pl.read_parquet(out)
    assert table.to_dicts() == [{"zone_code": "29100", "deprivation": pytest.approx((1.5 * 1000 - 0.5 * 3000) / 4000)}]
    assert "1 zones none of whose communes has an index" in done.stdout
    assert "1 rows of the index without a commune or a numeric index" in done.stdout
