"""Entry script for ``spark-submit``: ``respop run CONFIG --engine spark`` on a cluster.

    spark-submit --master yarn --deploy-mode client \\
        "$(python -c 'import respop.spark.submit as m; print(m.__file__)')" territories/x.toml

The master, executors and memory come from ``spark-submit`` (the configuration's
``[engine] spark_master`` is ignored under it); everything else is ``respop run`` (docs/spark.md).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from respop.cli import main as cli_main

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0].startswith("-"):
        print("usage: spark-submit [options] respop/spark/submit.py CONFIG [respop run options]", file=sys.stderr)
        return 2
    sys.argv = ["respop", "run", *args, "--engine", "spark"]
    try:
        cli_main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
