"""The Spark session's checks: what a user without Java or pyspark is told, and spark-submit."""

from __future__ import annotations

import pytest

from respop.errors import ConfigError
from respop.spark import session as spark_session
from respop.spark import submit


def test_without_java_the_reason_names_java(monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(spark_session.shutil, "which", lambda *_a, **_k: None)
    reason = spark_session.unavailable()
    assert reason is not None and "Java 17" in reason
    with pytest.raises(ConfigError, match="Spark engine cannot start: no Java runtime"):
        spark_session.session("local[1]")


def test_without_pyspark_the_reason_says_how_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pyspark(name, *args, **kwargs):
        if name == "pyspark" or name.startswith("pyspark."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyspark)
    assert "pip install 'respop[spark]'" in spark_session.unavailable()


def test_spark_submit_is_recognised_by_its_gateway(monkeypatch):
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    assert not spark_session.launched_by_spark_submit()
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "40000")
    assert spark_session.launched_by_spark_submit()


def test_submit_without_configuration_prints_its_usage(capsys):
    assert submit.main([]) == 2
    assert "usage: spark-submit" in capsys.readouterr().err


def test_submit_runs_respop_run_on_spark(monkeypatch):
    seen = {}

    def fake_main():
        import sys

        seen["argv"] = list(sys.argv)

    monkeypatch.setattr("respop.cli.main", fake_main)
    assert submit.main(["territories/x.toml", "--steps", "cases"]) == 0
    assert seen["argv"] == ["respop", "run", "territories/x.toml", "--steps", "cases", "--engine", "spark"]
