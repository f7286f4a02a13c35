"""What ``pip install .`` puts in a Colab runtime: the student package only, with its versions from one place."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
TOOLING_IMPORTS = {"nbformat", "papermill", "nbclient", "nbval", "pytest", "tools"}


def test_only_labhelpers_is_installed():
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = find_packages(str(ROOT), include=include)
    assert packages and all(p == "labhelpers" or p.startswith("labhelpers.") for p in packages), packages
    assert "project" not in PYPROJECT or "scripts" not in PYPROJECT["project"], "no console script without a module"


def test_labhelpers_imports_no_tooling():
    offenders = []
    for path in (ROOT / "labhelpers").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in TOOLING_IMPORTS]
    assert offenders == [], offenders


def test_install_cell_pins_exactly_the_locked_colab_group():
    from tools import colab, lock

    cell = colab.install_cell_source()
    pinned = re.findall(r'"([A-Za-z0-9_.-]+)==([^"]+)"', cell)
    locked = {p.name: p.version for p in lock.read_lock().values() if p.group == "colab"}
    assert dict(pinned) == locked, "the install cell must pin exactly the lock's colab group"
    assert len(pinned) == len(locked)
    assert not re.search(r'"(torch|ipykernel|ipython|ipywidgets)[=<>~"]', cell), "Colab's runtime keeps these"
    assert not re.search(r"[<>~]=", cell), "no ranges in the cell: exact pins from the lock only"
    assert "@main" not in cell and colab.labhelpers_source() in cell
