"""The import rules of docs/architecture.md, checked: layers only import downwards, costs is pure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
# in a process of its own: import-linter configures logging, which would silence other tests'
LINT = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(sys.argv[1], no_cache=True))"


def test_packages_import_only_downwards():
    """The contracts in .importlinter: the package layers, calibrate's and plan's modules."""
    done = subprocess.run([sys.executable, "-c", LINT, str(ROOT / ".importlinter")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


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


def test_the_planner_reads_its_tables_without_torch():
    """plan/ and costs/ import neither torch nor numpy (a fresh process, to see what loads)."""
    code = ("import sys; import rnnscope.plan.table, rnnscope.plan.timeline, rnnscope.costs.traffic, "
            "rnnscope.costs.units; print(sorted({'torch', 'numpy'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr
