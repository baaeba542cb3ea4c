"""Configuration files: validated on load, errors name the file, the key and the value."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from respop.config import load_config
from respop.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_demo_configuration_loads_and_resolves_paths():
    cfg = load_config(ROOT / "territories" / "demo.toml")
    assert cfg.name == "demo"
    assert cfg.input.pmsi_dir == (ROOT / "output" / "demo" / "data" / "pmsi").resolve()
    assert cfg.quality.zones_file == (ROOT / "output" / "demo" / "data" / "reference" / "zones.parquet").resolve()
    assert cfg.quality.min_date == dt.date(2005, 1, 1)


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ("[input]\npmsi_directory = 'x'\n", ["unknown key 'input.pmsi_directory'", "'x'"]),
        ("[quality]\nlinkage = 'maybe'\n", ["key 'quality.linkage'", "'maybe'"]),
        ("[input]\nyears = [1999]\n", ["key 'input.years'", "between 2005 and 2099"]),
        ("[input]\nyears = []\n", ["key 'input.years'", "at least one year"]),
        ("[input]\nseparator = ':'\n", ["key 'input.separator'", "':'"]),
        ("[quality]\nmin_date = 2020-01-01\nmax_date = 2019-01-01\n", ["max_date 2019-01-01 is before min_date"]),
        ("[quality\n", ["not a valid TOML file"]),
        ("[territories]\nmethode = 'leiden'\n", ["unknown key 'territories.methode'"]),
        ("[territories]\nmethod = 'kmeans'\n", ["key 'territories.method'", "'kmeans'"]),
        ("[territories]\ndepartements = ['29']\nzones = ['29001']\n", ["not both"]),
        ("diseases = ['asthma']\n", ["key 'diseases'", "'asthma'", "asthma.toml not found"]),
        ("diseases = ['Asthme!']\n", ["key 'diseases.0'", "'Asthme!'"]),
    ],
)
def test_invalid_configuration_names_file_key_and_value(tmp_path, text, pieces):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message
    for piece in pieces:
        assert piece in message


def test_missing_configuration_file(tmp_path):
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "nope.toml")


def test_store_url_relative_sqlite_path_default_and_postgres(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "t.toml"
    path.write_text('name = "t"\n[output]\ndir = "run"\n[store]\nurl = "sqlite:///../stores/r.sqlite"\n')
    assert load_config(path).store.url == f"sqlite:///{(tmp_path / 'stores' / 'r.sqlite').resolve()}"
    path.write_text('name = "t"\n[output]\ndir = "run"\n')
    assert load_config(path).store.url == f"sqlite:///{(tmp_path / 'sub' / 'run' / 'respop.sqlite').resolve()}"
    path.write_text('name = "t"\n[store]\nurl = "postgresql+psycopg://u:p@h:5432/db"\n')
    assert load_config(path).store.url == "postgresql+psycopg://u:p@h:5432/db"


@pytest.mark.parametrize(
    "text, pieces",
    [
        ('[store]\nurl = "mysql://h/db"\n', ["store.url", "SQLite or PostgreSQL"]),
        ('[store]\nurl = "not a url"\n', ["store.url", "not a database URL"]),
        ('[dashboard]\naccess = "password"\n', ["dashboard", "password_hash"]),
        ('[dashboard]\naccess = "secret"\n', ["dashboard.access", "secret"]),
    ],
)
def test_invalid_store_and_dashboard_sections(tmp_path, text, pieces):
    path = tmp_path / "t.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    for piece in pieces:
        assert piece in str(info.value)
