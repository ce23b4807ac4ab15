"""The import rules of docs/architecture.md, checked: layers only import downwards, costs is pure."""

from __future__ import annotations

import sys
from pathlib import Path

import grimp
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]


def test_packages_import_only_downwards():
    """The contracts in .importlinter: the package layers, calibrate's and plan's modules."""
    assert lint_imports(str(ROOT / ".importlinter"), no_cache=True) == 0, \
        "an import breaks a layer of .importlinter (run `lint-imports` for the chain)"


def test_costs_reads_only_the_standard_library():
    """The costs layer imports nothing but the standard library and rnnscope.errors."""
    graph = grimp.build_graph("rnnscope", include_external_packages=True)
    outside = set()
    for module in graph.find_children("rnnscope.costs") | {"rnnscope.costs"}:
        for imported in graph.find_modules_directly_imported_by(module):
            top = imported.split(".")[0]
            if top == "rnnscope":
                if not imported.startswith(("rnnscope.costs", "rnnscope.errors")):
                    outside.add((module, imported))
            elif top not in sys.stdlib_module_names:
                outside.add((module, imported))
    assert not outside, f"costs must stay pure: {sorted(outside)}"
