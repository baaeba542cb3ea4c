"""Diseases are data (issue 17): no shipped disease identifier or French disease label in the code
of respop/, outside the synthetic world (respop/synth) and the boards (respop/boards).

"Code" is what runs: names (variables, attributes, arguments, functions, classes) and string
literals. Comments and documentation strings (a bare string statement: module, class, function
and attribute docstrings) may mention a disease as an example."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import respop
from respop.spec.loaders import available_diseases, load_specs

PACKAGE = Path(respop.__file__).parent
EXCLUDED = ("synth", "boards")


def _words() -> dict[str, re.Pattern]:
    """The shipped specs' identifiers and French labels (disease name, sub-type labels)."""
    words = {}
    for spec in load_specs(available_diseases()):
        words[spec.disease] = re.compile(rf"(?<![a-z0-9]){re.escape(spec.disease)}(?![a-z0-9])", re.IGNORECASE)
        for label in (spec.algorithm.name, *(t.label for t in spec.subtypes.types)):
            words[label] = re.compile(re.escape(label), re.IGNORECASE)
    return words


def _code_texts(source: str) -> list[tuple[int, str]]:
    """(line, text) of every name and non-documentation string literal of a module."""
    tree = ast.parse(source)
    documentation = {
        id(node.value) for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    }
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in documentation:
            out.append((node.lineno, node.value))
        elif isinstance(node, ast.Name):
            out.append((node.lineno, node.id))
        elif isinstance(node, ast.Attribute):
            out.append((node.lineno, node.attr))
        elif isinstance(node, ast.arg):
            out.append((node.lineno, node.arg))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.append((node.lineno, node.name))
        elif isinstance(node, ast.keyword) and node.arg:
            out.append((node.lineno, node.arg))
        elif isinstance(node, ast.alias):
            out.append((node.lineno, node.asname or node.name))
    return out


def disease_mentions(source: str, words: dict[str, re.Pattern]) -> list[tuple[int, str]]:
    return sorted({(line, word) for line, text in _code_texts(source) for word, pattern in words.items() if pattern.search(text)})


def test_no_disease_named_in_respop_code():
    words = _words()
    assert {"diabetes", "heart_failure", "copd"} <= set(words)  # the shipped specs were read
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in EXCLUDED:
            continue
        for line, word in disease_mentions(path.read_text(encoding="utf-8"), words):
            found.append(f"respop/{relative.as_posix()}:{line}: {word}")
    assert not found, "diseases named in respop's code (put them in algorithms/*.toml):\n" + "\n".join(found)


def test_mentions_are_found_in_code_not_in_documentation():
    words = _words()
    source = '''
"""Module about heart_failure: documentation."""
RATES = {"heart_failure": 339.3}
def case_of_copd(x):
    """Diabète in a docstring."""
    # Insuffisance cardiaque in a comment
    return x.label == "Insuffisance cardiaque"
'''
    assert disease_mentions(source, words) == [(3, "heart_failure"), (4, "copd"), (7, "Insuffisance cardiaque")]
