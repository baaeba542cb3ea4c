"""Hospital mode end to end on ``tiny`` (docs/hospital.md): ``respop run`` on the CHU's stays,
``respop liste``, its access log, the refusal without ``[hospital]``, and a scan of the store: no
list, stay number or patient key reaches it."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
import sys
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import inspect, text

from respop import cli
from respop.config import load_config
from respop.hospital import ACCESS_LOG, COLUMNS
from respop.store.db import Store
from tests.store.conftest import tiny_run  # noqa: F401 - the session's tiny pipeline run and its store


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["respop", *args])
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    captured = capsys.readouterr()
    return exit_.value.code, captured.out + captured.err


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def hospital(tiny_run, tmp_path_factory):  # noqa: F811
    """The CHU of tiny in hospital mode, on the whole tiny folder (other FINESS left out), with a
    copy of the population run's store as its [store] url."""
    base = tmp_path_factory.mktemp("hospital")
    data = tiny_run.base / "data"
    hospitals = pl.read_parquet(data / "reference" / "hospitals.parquet")
    finess = hospitals.filter(pl.col("kind") == "CHU")["hospital_id"].item()
    store = base / "store.sqlite"
    shutil.copy(Path(tiny_run.config.store.url.removeprefix("sqlite:///")), store)
    config = base / "chu.toml"
    config.write_text(
        f'name = "chu"\n[input]\npmsi_dir = "{data / "pmsi"}"\nreference_dir = "{data / "reference"}"\n'
        f'[quality]\nzones_file = "{data / "reference" / "zones.parquet"}"\n[output]\ndir = "run"\n'
        f'[store]\nurl = "sqlite:///{store}"\n[hospital]\nfiness = "{finess}"\n',
        encoding="utf-8",
    )
    before = sha256(store)
    from typer.testing import CliRunner

    result = CliRunner().invoke(cli.app, ["run", str(config)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    listed = CliRunner().invoke(cli.app, ["liste", str(config)], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    return {"base": base, "config": config, "finess": finess, "data": data, "store": store, "store_before": before,
            "run_output": result.output, "liste_output": listed.output, "cfg": load_config(config)}


def patient_keys(data: Path) -> set[str]:
    return set(pl.concat([pl.read_parquet(p, columns=["NIR_ANO_17"]) for p in sorted((data / "pmsi").glob("T_MCO*C.parquet"))])
               ["NIR_ANO_17"].drop_nulls().to_list())


def test_the_run_says_hospital_mode_and_publishes_nothing(hospital):
    out = " ".join(hospital["run_output"].split())
    assert "Mode hôpital" in out and "Rien n'est publié" in out and "territories, evaluation, store" in out
    run = hospital["cfg"].output.dir
    # staged-input: the PMSI validated once, kept for the next runs (respop.pmsi.stage)
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == ["cases", "input", "listes", "staged-input", "strata"]
    report = json.loads((run / "input" / "report.json").read_text(encoding="utf-8"))
    scope = report["hospital"]
    assert scope["finess"] == [hospital["finess"]] and scope["stays_other_finess"] > 0 and scope["other_finess"] > 0
    assert report["deaths"]["known"] is False  # no death referential in hospital mode
    assert not (run / "cases" / "indicators.parquet").exists()  # no denominators
    assert not (run / "strata" / "prediction").exists() and not (run / "strata" / "survival").exists()
    # the hospital's stays only, whatever the residence of its patients
    stays = pl.read_parquet(run / "cases" / "hospital_stays.parquet")
    assert stays["hospital_id"].unique().to_list() == [hospital["finess"]]
    assert stays.height == scope["stays_kept"][hospital["finess"]]


def test_the_lists(hospital):
    cfg = hospital["cfg"]
    year = 2023
    folder = cfg.hospital.lists_dir / str(year)
    person_strata = pl.read_parquet(cfg.output.dir / "strata" / "person_strata.parquet").filter(pl.col("year") == year)
    stays = pl.read_parquet(cfg.output.dir / "cases" / "hospital_stays.parquet")
    keys = patient_keys(hospital["data"])
    for disease in cfg.diseases:
        frame = pl.read_parquet(folder / f"{disease}.parquet")
        csv = pl.read_csv(folder / f"{disease}.csv", separator=";", infer_schema=False)
        assert frame.columns == csv.columns == list(COLUMNS) and frame.height == csv.height > 0
        assert frame["finess"].unique().to_list() == [hospital["finess"]]
        assert stat.S_IMODE((folder / f"{disease}.csv").stat().st_mode) == 0o600
        raw = (folder / f"{disease}.csv").read_text(encoding="utf-8-sig")
        assert not any(k in raw for k in keys)
        # per stratum, as many persons as the strata step put there; each person's every stay here
        mine = person_strata.filter(pl.col("disease") == disease)
        expected = mine.group_by("stratum").len().sort("stratum")
        got = frame.group_by(pl.col("strate").alias("stratum")).agg(pl.col("personne").n_unique().cast(pl.UInt32).alias("len")).sort("stratum")
        assert got.equals(expected)
        assert frame.height == stays.join(mine.select("patient_key"), on="patient_key", how="semi").height
        # the counts per stratum shown in the terminal (numbers only: the labels may wrap in their cells)
        shown = hospital["liste_output"]
        cells = shown.replace("│", " ")
        assert "personnes" in shown and all(f" {n:,} ".replace(",", "\u202f") in cells for n in got["len"].to_list())
    assert "Fichiers écrits dans" in hospital["liste_output"]


def test_the_access_log(hospital, monkeypatch, capsys):
    log = hospital["cfg"].hospital.lists_dir / ACCESS_LOG
    before = log.read_text(encoding="utf-8").splitlines()
    code, _ = run_main(monkeypatch, capsys, "liste", str(hospital["config"]), "--annee", "2022")
    assert code == 0
    code, output = run_main(monkeypatch, capsys, "liste", str(hospital["config"]), "--annee", "2015")
    assert code == 2 and "2015" in output
    lines = log.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(before) + 2
    done, refused = (json.loads(line) for line in lines[-2:])
    assert set(done) == {"date_heure", "utilisateur", "commande", "configuration", "finess", "annee", "fichiers", "resultat"}
    assert done["annee"] == 2022 and done["resultat"] == "listes écrites" and done["commande"].startswith("respop liste")
    assert all(n > 0 for n in done["fichiers"].values()) and len(done["fichiers"]) == 2 * len(hospital["cfg"].diseases)
    assert refused["resultat"].startswith("refusé") and refused["fichiers"] == {}
    keys = patient_keys(hospital["data"])
    assert not any(k in log.read_text(encoding="utf-8") for k in keys)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_liste_refuses_a_configuration_without_hospital(tiny_run, monkeypatch, capsys):  # noqa: F811
    code, output = run_main(monkeypatch, capsys, "liste", str(tiny_run.config_path))
    assert code == 2
    assert "n'a pas de section [hospital]" in output and "has no [hospital] section" in output
    assert not (tiny_run.config.output.dir / "listes").exists()


def test_nothing_of_the_lists_reaches_the_store(hospital, monkeypatch, capsys):
    store_path = hospital["store"]
    assert sha256(store_path) == hospital["store_before"]  # respop run in hospital mode did not touch it
    code, output = run_main(monkeypatch, capsys, "store", "publish", str(hospital["config"]))
    assert code == 2 and "publishing to the store and the boards needs population data" in " ".join(output.split())
    assert sha256(store_path) == hospital["store_before"]
    folder = hospital["cfg"].hospital.lists_dir / "2023"
    lists = pl.concat([pl.read_parquet(p) for p in sorted(folder.glob("*.parquet"))])
    numbers = set(lists["numero_rsa"].to_list())
    keys = patient_keys(hospital["data"])
    store = Store(f"sqlite:///{store_path}")
    try:
        assert all(r["name"] != "chu" for r in store.runs())
        inspector = inspect(store.engine)
        with store.engine.connect() as connection:
            for name in inspector.get_table_names():
                described = inspector.get_columns(name)
                columns = [c["name"] for c in described]
                assert not {"patient_key", "rsa_num", "numero_rsa", "finess", "personne"} & set(columns), name
                for column in (c["name"] for c in described if "BLOB" not in str(c["type"]).upper()):
                    values = connection.execute(text(f'SELECT DISTINCT CAST("{column}" AS TEXT) FROM "{name}"')).scalars().all()
                    texts = {v for v in values if v is not None}
                    assert not numbers & texts, (name, column)
                    assert not keys & texts, (name, column)
    finally:
        store.close()


def test_the_step_commands_give_the_same_strata(hospital, tmp_path):
    """``respop cases run`` then ``respop strata run`` on the hospital configuration (French counts,
    no rates) give the person-years of ``respop run``."""
    from typer.testing import CliRunner

    text = hospital["config"].read_text(encoding="utf-8").replace('dir = "run"', f'dir = "{tmp_path / "steps"}"')
    config = tmp_path / "chu.toml"
    config.write_text(text, encoding="utf-8")
    cases = CliRunner().invoke(cli.app, ["cases", "run", str(config)], env={"COLUMNS": "200"})
    assert cases.exit_code == 0, cases.output
    said = " ".join(cases.output.split())
    assert "Cas repérés parmi les patients de l'établissement" in said and "pas de taux" in said
    strata = CliRunner().invoke(cli.app, ["strata", "run", str(config)], env={"COLUMNS": "200"})
    assert strata.exit_code == 0, strata.output
    ours = pl.read_parquet(tmp_path / "steps" / "strata" / "person_strata.parquet")
    theirs = pl.read_parquet(hospital["cfg"].output.dir / "strata" / "person_strata.parquet")
    assert ours.equals(theirs)


@pytest.mark.parametrize(
    ("command", "words"),
    [(("territories", "build"), "building territories"), (("evaluate",), "the evaluation")],
)
def test_population_steps_refuse_a_hospital_configuration(hospital, monkeypatch, capsys, command, words):
    code, output = run_main(monkeypatch, capsys, *command, str(hospital["config"]))
    output = " ".join(output.split())
    assert code == 2 and f"{words} needs population data" in output and "mode hôpital" in output
