"""The Spark session of a run: master, configuration, and the checks that Spark can start.

``session(master, conf)`` builds (or reuses) one SparkSession. The defaults suit one machine
(``local[*]``); on a cluster the master and the resources come from the configuration's
``[engine]`` section or from ``spark-submit`` (docs/spark.md). The UTC session time zone (dates
are never shifted) is always set; Spark 4's ANSI mode stays on (a bad cast or an overflow fails
loudly instead of giving null); a small number of shuffle partitions is the default on one
machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from collections.abc import Mapping

from respop.errors import ConfigError

DEFAULT_MASTER = "local[*]"
LOG_CONFIG = Path(__file__).with_name("log4j2.properties")
"""Spark's log settings for respop runs (errors only)."""
FIXED_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.showConsoleProgress": "false",
    "spark.ui.enabled": "false",
}
DEFAULT_CONF = {
    "spark.sql.shuffle.partitions": "8",
    "spark.driver.memory": "4g",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
"""Defaults a configuration may override (``[engine.spark_conf]``)."""


def java_version() -> str | None:
    """The first line ``java -version`` prints, or None when no Java runtime is found."""
    java = shutil.which("java", path=os.path.join(os.environ["JAVA_HOME"], "bin") if os.environ.get("JAVA_HOME") else None)
    java = java or shutil.which("java")
    if java is None:
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stderr or out.stdout).strip()
    return text.splitlines()[0] if out.returncode == 0 and text else None


def unavailable() -> str | None:
    """Why Spark cannot run here (no pyspark, no Java), or None when it can."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install 'respop[spark]')"
    if java_version() is None:
        return "no Java runtime found (Spark needs Java 17 or later: set JAVA_HOME or put java on PATH)"
    return None


def launched_by_spark_submit() -> bool:
    """This Python process was started by ``spark-submit`` (its JVM gateway is already running,
    with the master and resources the launcher was given)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def session(master: str | None = None, conf: Mapping[str, str] | None = None, app_name: str = "respop"):
    """A SparkSession on ``master`` (``local[*]`` by default) with ``conf`` over the defaults.

    Under ``spark-submit`` the launcher's master is kept and ``master`` is ignored.
    """
    reason = unavailable()
    if reason:
        raise ConfigError(f"the Spark engine cannot start: {reason}")
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    if not launched_by_spark_submit():  # under spark-submit, the launcher's master wins
        builder = builder.master(master or DEFAULT_MASTER)
    settings = {**DEFAULT_CONF, **dict(conf or {}), **FIXED_CONF}
    quiet = f"-Dlog4j2.configurationFile={LOG_CONFIG.as_uri()}"
    settings["spark.driver.extraJavaOptions"] = " ".join(filter(None, [settings.get("spark.driver.extraJavaOptions"), quiet]))
    for key, value in settings.items():
        builder = builder.config(key, str(value))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
