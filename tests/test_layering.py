"""Leaves are leaves: the modules of bebert/ that everyone imports import nothing above them.

Every module of `bebert/` is a leaf except the application modules (`APPLICATION`: the API,
the command line, the demo and the design-space package), which may import the rest. A leaf
must not import `bebert.model`, `bebert.compiler`, `bebert.sim` or `bebert.hw`, neither at
import time (checked in a fresh interpreter) nor lazily inside a function (checked in the
source), and docs/ARCHITECTURE.md lists every leaf and every application module.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys

import pytest

from conftest import ROOT

ABOVE = ("bebert.model", "bebert.compiler", "bebert.sim", "bebert.hw")
APPLICATION = {"api", "cli", "demo", "dse"}
LEAVES = sorted(p.stem for p in (ROOT / "bebert").glob("*.py") if p.stem != "__init__" and p.stem not in APPLICATION)


def test_the_leaves_are_the_modules_we_think():
    assert {"config", "isa", "program", "numerics", "vector", "layout", "integer_ops", "target", "tokens",
            "files", "program_check", "ensemble_shape", "shipped"} <= set(LEAVES)


@pytest.mark.parametrize("leaf", LEAVES)
def test_importing_a_leaf_loads_nothing_above_it(leaf):
    code = (f"import json, sys; import bebert.{leaf}; "
            f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({ABOVE!r}))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout) == [], f"bebert.{leaf} pulls in {r.stdout.strip()}"


def _imported(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


@pytest.mark.parametrize("leaf", LEAVES)
def test_a_leaf_imports_nothing_above_it_even_lazily(leaf):
    tree = ast.parse((ROOT / "bebert" / f"{leaf}.py").read_text())
    upward = sorted(n for n in _imported(tree) if n.startswith(ABOVE))
    assert not upward, f"bebert/{leaf}.py imports {upward}"


def test_the_architecture_doc_lists_every_leaf_and_application_module():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    listed = set(re.findall(r"^\| `bebert/(\w+)(?:\.py|/)`", text, re.M))
    assert set(LEAVES) | APPLICATION <= listed, sorted(set(LEAVES) | APPLICATION - listed)


def test_the_command_and_the_api_still_import():
    r = subprocess.run([sys.executable, "-c", "from bebert import api; from bebert.cli import main; "
                        "raise SystemExit(main(['--help']))"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0 and "compile" in r.stdout
