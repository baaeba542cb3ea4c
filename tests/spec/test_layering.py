"""The specification layer imports no engine (issue 17): loading every shipped spec and freezing
a catalogue leaves polars, Spark, the engines, the store and the boards unimported."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = (
    "polars", "pyspark", "respop.case_finding.engine", "respop.strata.engine", "respop.strata.features",
    "respop.spark", "respop.store", "respop.boards", "respop.pmsi",
)


def test_spec_imports_no_engine():
    code = (
        "import json, sys\n"
        "import respop.spec as spec\n"
        "catalogue = spec.freeze(spec.available_diseases(), None)\n"
        "assert catalogue.rows() and catalogue.to_json()\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    bad = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert not bad, bad


def test_engines_depend_on_spec_not_the_reverse():
    """The old places are gone: no module of respop.spec imports back from the engines or steps."""
    from pathlib import Path

    import respop.spec

    folder = Path(respop.spec.__file__).parent
    for path in folder.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        for name in ("respop.case_finding", "respop.strata", "respop.spark", "respop.store", "respop.boards", "polars"):
            assert f"from {name}" not in text and f"import {name}" not in text, (path.name, name)
