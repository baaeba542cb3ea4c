"""The architecture kept true by a machine (issue 17): the layer contracts of pyproject.toml's
``[tool.importlinter]`` hold (``lint-imports``), every module of respop/ sits in a layer, and no
import cycle exists anywhere in respop/ (import-linter has no contract for cycles between
modules: grimp's graph, which import-linter builds, is searched here)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]

SPLIT_PACKAGES = {"respop", "respop.case_finding", "respop.strata", "respop.store", "respop.evaluation"}
"""Packages whose modules sit in different layers: their ``__init__`` is in none."""


def _lint_imports() -> str:
    beside = Path(sys.executable).with_name("lint-imports")
    found = str(beside) if beside.is_file() else shutil.which("lint-imports")
    assert found, "lint-imports not installed: install the dev extra (pip install -e '.[dev]')"
    return found


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]["contracts"]


def _graph(package: str = "respop") -> grimp.ImportGraph:
    # the same graph as import-linter's: imports inside functions count, TYPE_CHECKING ones do not
    return grimp.build_graph(package, exclude_type_checking_imports=True, cache_dir=None)


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Every import cycle between modules: one shortest cycle per strongly connected component
    of more than one module, as the modules in import order, the first one repeated at the end."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph.modules):
        if start in index:
            continue
        # iterative Tarjan: (module, its imports still to visit)
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            module, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[module] = min(low[module], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[module])
            if low[module] == index[module]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == module:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    cycles = []
    for component in components:
        members = set(component)
        first = component[0]
        # shortest way back to `first` inside the component (breadth first)
        previous: dict[str, str] = {}
        frontier = [first]
        while frontier and first not in previous:
            following = []
            for module in frontier:
                for child in sorted(graph.find_modules_directly_imported_by(module) & members):
                    if child not in previous:
                        previous[child] = module
                        following.append(child)
            frontier = following
        path = [first]
        while path[-1] != first or len(path) == 1:
            path.append(previous[path[-1]])
        cycles.append(list(reversed(path)))
    return cycles


def _describe(graph: grimp.ImportGraph, cycle: list[str]) -> str:
    steps = []
    for importer, imported in zip(cycle, cycle[1:]):
        lines = sorted(d["line_number"] for d in graph.get_import_details(importer=importer, imported=imported))
        steps.append(f"{importer} -> {imported} (line {', '.join(map(str, lines))})")
    return "; ".join(steps)


def test_layer_contracts_hold():
    """``lint-imports`` (as CI would run it) keeps every contract of pyproject.toml."""
    result = subprocess.run(
        [_lint_imports(), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False, timeout=600
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert f"Contracts: {len(_contracts())} kept, 0 broken." in result.stdout, result.stdout[-3000:]


def test_every_module_has_a_layer():
    """A new module is placed in the layers (pyproject.toml) before it lands."""
    layers = next(c for c in _contracts() if c["type"] == "layers")["layers"]
    placed = {name.strip() for layer in layers for name in layer.replace("|", ":").split(":")}
    graph = _graph()
    unplaced = sorted(
        m for m in graph.modules
        if m not in SPLIT_PACKAGES and not any(m == p or m.startswith(p + ".") for p in placed)
    )
    assert not unplaced, f"modules in no layer of [tool.importlinter] (pyproject.toml): {unplaced}"


def test_no_import_cycle_in_respop():
    graph = _graph()
    cycles = import_cycles(graph)
    assert not cycles, "import cycles in respop/:\n" + "\n".join(_describe(graph, c) for c in cycles)


def test_import_cycles_are_found_and_named(tmp_path, monkeypatch):
    """The cycle search on a small package: a -> b -> c -> a (one inside a function), d apart."""
    package = tmp_path / "cyclepkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from cyclepkg import b\n")
    (package / "b.py").write_text("import cyclepkg.c\n")
    (package / "c.py").write_text(textwrap.dedent("""
        def later():
            from cyclepkg.a import thing
            return thing
    """))
    (package / "d.py").write_text("import cyclepkg.a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = _graph("cyclepkg")
    cycles = import_cycles(graph)
    assert cycles == [["cyclepkg.a", "cyclepkg.b", "cyclepkg.c", "cyclepkg.a"]]
    assert "cyclepkg.c -> cyclepkg.a (line 3)" in _describe(graph, cycles[0])

