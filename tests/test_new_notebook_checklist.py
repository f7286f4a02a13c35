"""Every solution notebook is wired into each place that must know it (solutions/README.md lists them): a new
lesson that misses one fails here with the list of what is missing, notebook by notebook."""

from __future__ import annotations

import re
from pathlib import Path

from labhelpers.model.hardware import recipe_for
from tools import gpu_rehearsal, runtime_estimate

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted(ROOT.glob("solutions/[0-9][0-9]_*.ipynb"))
PLACES = ("tools/runtime_estimate.py", "tools/gpu_rehearsal/jobs.py", "README.md", "labhelpers/checks/", "notebooks/")


def _missing(number: str, stem: str, readme: str, estimates: dict, checks: set[str]) -> list[str]:
    missing = []
    if number not in estimates:
        missing.append("tools/runtime_estimate.py: notebook_work() has no entry (its first cell's T4 minutes)")
    if number not in gpu_rehearsal.ESTIMATE_S:
        missing.append("tools/gpu_rehearsal/jobs.py: ESTIMATE_S has no job (the GPU rehearsal would skip it)")
    if not re.search(rf"^\| {number} \|", readme, flags=re.MULTILINE):
        missing.append("README.md: no row in the lesson table ('| NN | topic | ... |')")
    if f"| {number} " not in next((line for line in readme.splitlines() if line.startswith("| notebook | 01")), ""):
        missing.append("README.md: no column in the series cost table ('| notebook | 01 | ...')")
    if "solution" in (ROOT / "solutions" / f"{stem}.ipynb").read_text() and f"nb{stem}" not in checks:
        missing.append(f"labhelpers/checks/nb{stem}.py: its TODO checks' module")
    if not (ROOT / "notebooks" / f"{stem}.ipynb").is_file():
        missing.append("notebooks/: no student copy (run ./lab.sh build)")
    return missing


def test_every_solution_is_wired_into_every_place():
    readme = (ROOT / "README.md").read_text()
    estimates = runtime_estimate.notebook_work(recipe_for("cpu", "ci"), row_tokens=150.0)
    checks = {p.stem for p in (ROOT / "labhelpers" / "checks").glob("nb*.py")}
    problems = {p.stem: m for p in SOLUTIONS if (m := _missing(p.name[:2], p.stem, readme, estimates, checks))}
    assert not problems, "\n".join(f"{stem}: " + "; ".join(m) for stem, m in problems.items())


def test_the_solutions_readme_lists_the_places():
    text = (ROOT / "solutions" / "README.md").read_text()
    assert all(place in text for place in PLACES), [p for p in PLACES if p not in text]
