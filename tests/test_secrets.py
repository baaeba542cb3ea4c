"""Secrets never stored nor shown (respop.secrets): the configuration text stored with a run is
redacted, errors lose URL passwords, and credentials come from the environment or from files
outside the configuration (respop.config)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from urllib.parse import quote

import polars as pl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from respop import config as config_module
from respop.config import PASSWORD_HASH_ENV, STORE_URL_ENV, load_config
from respop.errors import ConfigError
from respop.secrets import (
    HIDDEN,
    UNREADABLE,
    hide_url_password,
    is_secret_key,
    redact_text,
    redacted_config_text,
)

PASSWORD = "S3cretPass"
PG_URL = f"postgresql+psycopg://respop:{PASSWORD}@127.0.0.1:5432/x"
HASH = "scrypt$16384$8$1$00112233445566778899aabbccddeeff$" + "ab" * 32

CONFIG = f"""name = "demo"
description = "Territoire de démonstration"
[store]
url = "{PG_URL}"
[dashboard]
access = "password"
password_hash = "{HASH}"
meeting_mode = true
"""


@pytest.fixture(autouse=True)
def _no_credentials_in_environment(monkeypatch):
    monkeypatch.delenv(STORE_URL_ENV, raising=False)
    monkeypatch.delenv(PASSWORD_HASH_ENV, raising=False)
    monkeypatch.setattr(config_module, "_WARNED", set())


# ------------------------------------------------------------------------ redacting the text


def test_the_stored_configuration_keeps_everything_but_its_secrets():
    out = redacted_config_text(CONFIG)
    assert PASSWORD not in out and HASH not in out
    data = tomllib.loads(out)
    assert data["store"]["url"] == "postgresql+psycopg://respop:***@127.0.0.1:5432/x"
    assert data["dashboard"] == {"access": "password", "password_hash": HIDDEN, "meeting_mode": True}
    assert data["name"] == "demo" and data["description"] == "Territoire de démonstration"
    assert out.splitlines()[0] == 'name = "demo"'  # layout kept
    assert redacted_config_text(out) == out  # redacting again changes nothing (the board does)


def test_text_without_secrets_is_stored_as_it_is():
    text = '# a comment\nname = "t"\n[store]\nurl = "sqlite:///../stores/r.sqlite"\n[output]\ndir = "run"\n'
    assert redacted_config_text(text) == text
    assert redacted_config_text("") == ""


def test_secrets_in_comments_literal_strings_queries_and_other_keys():
    text = (
        "# before: postgresql://old:OldPass9@db.example/respop\n"
        "[store]\n"
        "url = 'postgresql+psycopg://respop@db/x?password=QueryPass7&sslmode=require'\n"
        "[engine]\n"
        'spark_conf = { "spark.ssl.keyPassword" = "KeyPass123", "spark.driver.memory" = "8g" }\n'
        "[extra]\n"
        "api_token = 123456789\n"
        'secrets = ["ListSecret1", "ListSecret2"]\n'
        'password_hash_file = "secrets/board.hash"\n'
    )
    out = redacted_config_text(text)
    for secret in ("OldPass9", "QueryPass7", "KeyPass123", "123456789", "ListSecret1", "ListSecret2"):
        assert secret not in out, (secret, out)
    data = tomllib.loads(out)
    assert data["store"]["url"] == "postgresql+psycopg://respop@db/x?password=***&sslmode=require"
    assert data["engine"]["spark_conf"] == {"spark.ssl.keyPassword": HIDDEN, "spark.driver.memory": "8g"}
    assert data["extra"]["api_token"] == HIDDEN and data["extra"]["secrets"] == [HIDDEN, HIDDEN]
    assert data["extra"]["password_hash_file"] == "secrets/board.hash"  # a path, not a secret
    assert out.startswith("# before: postgresql://old:***@db.example/respop\n")


def test_unreadable_text_is_not_stored():
    for text in ('[store]\nurl = "postgresql://u:TopSecret@h/db"\n[[broken', "name = \n"):
        assert redacted_config_text(text) == UNREADABLE
    assert tomllib.loads(UNREADABLE) == {}  # itself TOML (a comment), redacted to itself
    assert redacted_config_text(UNREADABLE) == UNREADABLE


def test_a_secret_written_with_escapes_is_not_kept():
    # "\u0053" is "S": the text never holds the hash as written, the parsed value does
    text = '[dashboard]\npassword_hash = "\\u0053crypt$16384$8$1$aa$bb"\n'
    out = redacted_config_text(text)
    assert "crypt$16384$8$1$aa$bb" not in out
    assert out == UNREADABLE or tomllib.loads(out)["dashboard"]["password_hash"] == HIDDEN


def test_secret_key_names():
    assert all(map(is_secret_key, ["password_hash", "api_token", "client_secret", "PASSWORD", "spark.ssl.keyPassword"]))
    assert not any(map(is_secret_key, ["url", "password_hash_file", "url_file", "access", "name"]))


_PASSWORDS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=6, max_size=30)
_PLACES = st.sampled_from(["basic", "literal", "comment", "description", "both"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(password=_PASSWORDS, salt=st.binary(min_size=16, max_size=16), digest=st.binary(min_size=32, max_size=32),
       place=_PLACES, user=st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True))
def test_property_no_url_password_nor_hash_survives(password, salt, digest, place, user):
    """Any configuration whose text holds a store URL with a password and a board password hash:
    the redacted text holds neither (whatever the password's characters, wherever the URL is)."""
    password_hash = f"scrypt$16384$8$1${salt.hex()}${digest.hex()}"
    url = f"postgresql+psycopg://{user}:{quote(password, safe='')}@db.example:5432/respop"
    escaped = url.replace("\\", "\\\\").replace('"', '\\"')
    lines = ['name = "t"']
    if place == "description":
        lines.append(f'description = "base : {escaped}"')
    if place == "comment":
        lines.append(f"# ancienne base : {url}")
    lines.append("[store]")
    if place in ("basic", "both"):
        lines.append(f'url = "{escaped}"')
    elif place == "literal" and "'" not in url:
        lines.append(f"url = '{url}'")
    if place == "both":
        lines.append(f"# la même : {url}")
    lines += ["[dashboard]", 'access = "password"', f'password_hash = "{password_hash}"']
    text = "\n".join(lines) + "\n"
    tomllib.loads(text)  # the configuration is TOML
    # the password cannot be told apart from the fixed text around it: nothing to test
    fixed = text.replace(quote(password, safe=""), "").replace(password_hash, "")
    assume(password not in fixed + UNREADABLE + HIDDEN and quote(password, safe="") not in fixed + UNREADABLE)

    out = redacted_config_text(text)
    assert password not in out and quote(password, safe="") not in out
    assert password_hash not in out and digest.hex() not in out
    if out != UNREADABLE:
        data = tomllib.loads(out)
        assert data["dashboard"]["password_hash"] == HIDDEN
        if "url" in data.get("store", {}):
            assert data["store"]["url"] == f"postgresql+psycopg://{user}:***@db.example:5432/respop"


# ---------------------------------------------------------------------- errors and URLs


def test_error_messages_lose_url_passwords():
    message = (f"OperationalError: could not connect with {PG_URL} "
               "(conninfo: host=db password=DsnPass42 user=respop); Could not parse SQLAlchemy URL from 'pg://u:p%40ss@h'")
    out = redact_text(message, PG_URL)
    for secret in (PASSWORD, "DsnPass42", "p%40ss", "p@ss"):
        assert secret not in out
    assert "postgresql+psycopg://respop:***@127.0.0.1:5432/x" in out
    assert redact_text("no secret here: sqlite:////tmp/x.sqlite") == "no secret here: sqlite:////tmp/x.sqlite"
    # a known password however it is written (percent-encoded in the URL, decoded by the driver)
    assert "ab@cd/ef" not in redact_text("password authentication failed: ab@cd/ef", "postgresql://u:ab%40cd%2Fef@h/db")


def test_hide_url_password():
    assert hide_url_password(PG_URL) == "postgresql+psycopg://respop:***@127.0.0.1:5432/x"
    assert hide_url_password("sqlite:////tmp/a b.sqlite") == "sqlite:////tmp/a b.sqlite"
    assert "QP" not in hide_url_password("postgresql://u@h/db?password=QP")
    assert "bad" not in hide_url_password("not a url://u:bad@h")


def test_the_store_repr_and_a_failed_runs_error_hide_the_password(tmp_path, monkeypatch):
    from respop.store import schema
    from respop.store.db import Store
    from respop.store.publish import Publication, _empty

    assert PASSWORD not in repr(Store(PG_URL))  # the engine is lazy: nothing connects
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    publication = Publication(
        run={"name": "t", "config_toml": "", "config_sha256": "0" * 64, "results_sha256": "0" * 64, "code_version": "0"},
        tables={t.name: _empty(t) for t in schema.RESULT_TABLES},
    )

    def failing(connection, table, run_id, frame: pl.DataFrame):
        raise RuntimeError(f"could not copy to {PG_URL}: connection refused")

    monkeypatch.setattr(Store, "_insert", staticmethod(failing))
    with pytest.raises(RuntimeError):
        store.write(publication)
    error = store.runs("t")[0]["error"]
    store.close()
    assert PASSWORD not in error and "respop:***@127.0.0.1" in error


# -------------------------------------------------------------- credentials out of the file


def _config(tmp_path: Path, body: str, name: str = "t") -> Path:
    path = tmp_path / "conf" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('name = "t"\n[output]\ndir = "run"\n' + body, encoding="utf-8")
    return path


def test_store_url_from_the_environment_overrides_the_file(tmp_path, monkeypatch, capsys):
    path = _config(tmp_path, '[store]\nurl = "sqlite:///in-file.sqlite"\n')
    monkeypatch.setenv(STORE_URL_ENV, PG_URL)
    assert load_config(path).store.url == PG_URL
    monkeypatch.setenv(STORE_URL_ENV, "sqlite:///stores/env.sqlite")  # relative: to the configuration's folder
    assert load_config(path).store.url == f"sqlite:///{(path.parent / 'stores' / 'env.sqlite').resolve()}"
    monkeypatch.setenv(STORE_URL_ENV, "mysql://u:EnvPass1@h/db")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert STORE_URL_ENV in str(caught.value) and "EnvPass1" not in str(caught.value)
    assert capsys.readouterr().err == ""  # nothing to warn about: no password in the file


def test_store_url_from_a_file(tmp_path, monkeypatch):
    path = _config(tmp_path, '[store]\nurl_file = "../secrets/store-url"\n')
    secret = tmp_path / "secrets" / "store-url"
    secret.parent.mkdir()
    secret.write_text(PG_URL + "\n", encoding="utf-8")
    cfg = load_config(path)
    assert cfg.store.url == PG_URL and cfg.store.url_file == secret.resolve()
    monkeypatch.setenv(STORE_URL_ENV, "sqlite:////tmp/env.sqlite")
    assert load_config(path).store.url == "sqlite:////tmp/env.sqlite"  # the environment first
    monkeypatch.delenv(STORE_URL_ENV)
    secret.write_text("  \n", encoding="utf-8")
    with pytest.raises(ConfigError, match="store.url_file.*is empty"):
        load_config(path)
    secret.unlink()
    with pytest.raises(ConfigError, match="store.url_file.*file not found"):
        load_config(path)
    secret.write_text("mysql://u:FilePass1@h/db", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "url_file" in str(caught.value) and "FilePass1" not in str(caught.value)
    both = _config(tmp_path, '[store]\nurl = "sqlite:///a.sqlite"\nurl_file = "u"\n', "both")
    with pytest.raises(ConfigError, match="url or url_file, not both"):
        load_config(both)


def test_a_password_written_in_the_configuration_works_with_one_warning(tmp_path, capsys):
    path = _config(tmp_path, f'[store]\nurl = "{PG_URL}"\n')
    assert load_config(path).store.url == PG_URL
    load_config(path)
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and STORE_URL_ENV in err and "[store] url holds a password" in err
    assert PASSWORD not in err


def test_board_password_hash_from_the_environment_or_a_file(tmp_path, monkeypatch):
    public = _config(tmp_path, "", "public")
    locked = _config(tmp_path, '[dashboard]\naccess = "password"\n', "locked")
    with pytest.raises(ConfigError, match="password_hash"):
        load_config(locked)
    monkeypatch.setenv(PASSWORD_HASH_ENV, HASH)
    assert load_config(locked).dashboard.password_hash == HASH
    assert load_config(public).dashboard.access == "public"
    monkeypatch.delenv(PASSWORD_HASH_ENV)

    from_file = _config(tmp_path, '[dashboard]\naccess = "password"\npassword_hash_file = "board.hash"\n', "from_file")
    (from_file.parent / "board.hash").write_text(HASH + "\n", encoding="utf-8")
    cfg = load_config(from_file)
    assert cfg.dashboard.password_hash == HASH
    assert cfg.dashboard.password_hash_file == (from_file.parent / "board.hash").resolve()
    monkeypatch.setenv(PASSWORD_HASH_ENV, "scrypt$from$env")
    assert load_config(from_file).dashboard.password_hash == "scrypt$from$env"  # the environment first
    monkeypatch.delenv(PASSWORD_HASH_ENV)
    (from_file.parent / "board.hash").unlink()
    with pytest.raises(ConfigError, match="dashboard.password_hash_file.*file not found"):
        load_config(from_file)
    both = _config(tmp_path, f'[dashboard]\npassword_hash = "{HASH}"\npassword_hash_file = "h"\n', "both")
    with pytest.raises(ConfigError, match="password_hash or password_hash_file, not both"):
        load_config(both)
