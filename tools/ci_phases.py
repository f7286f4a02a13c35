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


# ---------------------------------------------------------------------------------------- phase 2's work queue
# pytest-xdist (``--dist loadfile``) hands a worker the next file of its queue when the file it runs has two tests
# left. By default it sorts that queue by the number of tests per file, so a file of one 31 s test (the student's
# re-run) or five tests of 86 s (kill and resume) came last and one worker ran it while the other had finished: ~25 s
# of the phase's ~510 s wall (measured 2026-12-07). The queue goes longest first instead (``tools/suite.py`` passes
# ``--no-loadscope-reorder`` so xdist keeps the order the root conftest gives), the short files filling the end.
# Seconds measured on 2026-12-07 (clean run, two workers with one torch thread each, reference step 5.7 s): only the
# order depends on them, so a stale figure costs seconds of wall, never a result.
MEASURED_FILE_SECONDS = {
    "tests/test_resume.py": 86, "tests/test_grade.py": 59, "tests/test_sanity_preflight.py": 42,
    "tests/test_sanity_training.py": 37, "tests/test_student_answers_nb02.py": 31, "tests/test_student_rerun.py": 31,
    "tests/test_samples.py": 27, "notebooks/14_diagnose_the_broken_run.ipynb": 27,
    "tests/test_student_answers_nb10.py": 26, "tests/test_models.py": 21, "tests/test_sanity_v3_special_tokens.py": 21,
    "tests/test_clinic.py": 19, "tests/test_sanity_v3_label_alignment.py": 18, "tests/test_release.py": 15,
    "tests/test_widgets_colab.py": 14, "tests/test_checks_basics.py": 14, "tests/test_stored_results.py": 13,
    "tests/test_lora.py": 13, "tests/test_nbtools.py": 12,
}
# any other file, by phase: a student copy is a kernel start and its cells (5-12 s), a unit-test file a few seconds,
# a module's doctests milliseconds
TYPICAL_FILE_SECONDS = {"nbval students": 8.0, "nbval solutions": 8.0, "unit tests": 2.0, "doctests": 0.0}


def expected_seconds(path: str) -> float:
    """What one file of the suite is expected to cost (setup + call + teardown), for ordering the work queue.

    >>> expected_seconds("tests/test_resume.py"), expected_seconds("notebooks/03_chat_formatting.ipynb")
    (86, 8.0)
    >>> expected_seconds("labhelpers/data/datasets.py")
    0.0
    """
    return MEASURED_FILE_SECONDS.get(path, TYPICAL_FILE_SECONDS.get(ci_phase(path + "::x"), 2.0))


def longest_files_first(nodeids: list[str]) -> list[int]:
    """Indices of ``nodeids`` with the files expected to take longest first; a file's tests keep their order.

    >>> ids = ["labhelpers/a.py::a", "tests/test_x.py::t1", "tests/test_resume.py::t", "tests/test_x.py::t2"]
    >>> [ids[i] for i in longest_files_first(ids)]
    ['tests/test_resume.py::t', 'tests/test_x.py::t1', 'tests/test_x.py::t2', 'labhelpers/a.py::a']
    """
    return sorted(range(len(nodeids)), key=lambda i: -expected_seconds(nodeids[i].split("::")[0]))
