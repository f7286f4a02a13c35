"""Where the suite's time goes, per CI phase: unit tests, doctests, papermill (the ci series, and the smoke pass under
the Ampere contract), nbval on the student copies (and on solutions, when a run collects them).

The root ``conftest.py`` feeds every test report to :func:`record` and prints :func:`summary_lines` at the end of a
run, so each CI log says which phase to cut (``.ci/run`` prints the machine's reference step beside it).
"""

from __future__ import annotations

PHASES = ("papermill (solutions)", "nbval solutions", "nbval students", "unit tests", "doctests",
          "papermill ampere-cpu (smoke)")
_seconds: dict[str, list[float]] = {}
_file_seconds: dict[str, list[float]] = {}  # unit tests only, per test file: where to look when that phase grows


def ci_phase(nodeid: str) -> str:
    """The CI phase a test belongs to.

    >>> [ci_phase(n) for n in ("tests/test_notebooks.py::test_solution_executes_with_papermill[06_sft_trainer]",
    ...                        "solutions/06_sft_trainer.ipynb::Cell 3", "notebooks/06_sft_trainer.ipynb::Cell 3",
    ...                        "tests/test_data.py::test_x", "labhelpers/data/datasets.py::labhelpers.data.datasets.load_chat_dataset",
    ...                        "tests/test_notebooks.py::test_solution_keeps_the_ampere_contract[02_baseline_generation]")]
    ['papermill (solutions)', 'nbval solutions', 'nbval students', 'unit tests', 'doctests', 'papermill ampere-cpu (smoke)']
    """
    if "test_solution_executes_with_papermill" in nodeid:
        return PHASES[0]
    if "test_solution_keeps_the_ampere_contract" in nodeid:
        return PHASES[5]
    if nodeid.startswith("solutions/"):
        return PHASES[1]
    if nodeid.startswith("notebooks/"):
        return PHASES[2]
    return PHASES[3] if nodeid.startswith("tests/") else PHASES[4]


def record(nodeid: str, seconds: float, when: str, into: dict[str, list[float]] | None = None) -> None:
    """Add one report's duration (setup, call or teardown) to its phase; a test is counted at its call."""
    into = _seconds if into is None else into
    phase = ci_phase(nodeid)
    entries = [into.setdefault(phase, [0.0, 0])]
    if phase == PHASES[3] and into is _seconds:
        entries.append(_file_seconds.setdefault(nodeid.split("::")[0], [0.0, 0]))
    for entry in entries:
        entry[0] += seconds
        entry[1] += when == "call"


def summary_lines(seconds: dict[str, list[float]] | None = None) -> list[str]:
    """One line per phase, the slowest first, with its share of the suite.

    >>> times = {}
    >>> record("tests/test_a.py::test_x", 3.0, "call", times); record("tests/test_a.py::test_x", 1.0, "setup", times)
    >>> record("solutions/01_setup_and_hardware.ipynb::Cell 0", 12.0, "call", times)
    >>> print("\\n".join(summary_lines(times)))
    nbval solutions            12.0 s   75%  (1 test)
    unit tests                  4.0 s   25%  (1 test)
    """
    seconds = _seconds if seconds is None else seconds
    total = sum(s for s, _ in seconds.values()) or 1.0
    return [f"{phase:<22} {s:8.1f} s  {s / total:4.0%}  ({count} test{'' if count == 1 else 's'})"
            for phase, (s, count) in sorted(seconds.items(), key=lambda item: -item[1][0])]


def slowest_files(n: int = 12, seconds: dict[str, list[float]] | None = None) -> list[str]:
    """The ``n`` unit-test files that took longest, one line each (the unit-test phase's own breakdown).

    >>> print("\\n".join(slowest_files(2, {"tests/test_a.py": [30.0, 4], "tests/test_b.py": [2.5, 1], "tests/c.py": [9.0, 2]})))
    tests/test_a.py                                  30.0 s  (4 tests)
    tests/c.py                                        9.0 s  (2 tests)
    """
    seconds = _file_seconds if seconds is None else seconds
    ranked = sorted(seconds.items(), key=lambda item: -item[1][0])[:n]
    return [f"{name:<46} {s:6.1f} s  ({count} test{'' if count == 1 else 's'})" for name, (s, count) in ranked]
