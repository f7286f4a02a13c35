"""What ``pip install .`` puts in a Colab runtime: the student package only, with its versions from one place."""

from __future__ import annotations

import ast
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


def test_requirements_install_the_pyproject_pins():
    lines = [ln.strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()]
    specs = [ln for ln in lines if ln and not ln.startswith("#")]
    assert specs == ["-e .[lab,dev]"], "versions live in pyproject.toml only; requirements.txt installs its extras"


def test_install_cell_pins_come_from_pyproject():
    from tools import colab

    cell = colab.install_cell_source()
    for requirement in PYPROJECT["project"]["dependencies"] + PYPROJECT["project"]["optional-dependencies"]["lab"]:
        if not requirement.startswith("torch"):
            assert f'"{requirement}"' in cell, requirement
    assert '"torch' not in cell, "Colab's own CUDA torch must stay"
    assert all(f'"{r}"' in cell for r in PYPROJECT["project"]["optional-dependencies"]["flash"])
