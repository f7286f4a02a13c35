"""Test-session environment shared by pytest, the papermill tests and nbval's kernels.

Every notebook executed by the suite writes into one temporary run folder (never ``runs/`` of the
checkout), in the small ``ci`` profile unless the caller chose otherwise.
"""

from __future__ import annotations

import os
import shutil
import tempfile

os.environ.setdefault("LAB_PROFILE", "ci")
# A run folder made here is removed when the session ends (~4 GB with the series' checkpoints: repeated runs filled
# this machine's disk on 2026-12-06); LAB_KEEP_TEST_RUN=1 keeps it to read afterwards; a LAB_RUN_DIR given is kept.
_MADE_RUN_DIR = "LAB_RUN_DIR" not in os.environ
os.environ.setdefault("LAB_RUN_DIR", tempfile.mkdtemp(prefix="sft-lab-test-run-"))
os.environ.setdefault("MPLBACKEND", "Agg")

from tools.ci_phases import longest_files_first, record, slowest_files, summary_lines  # noqa: E402  (after the environment above is set)


# In one process (plain pytest) the ci series (papermill over the solutions) runs first, then the Ampere-contract pass
# and the check that both wrote only in their run folders, then the rest in collection order: a unit test that checks
# what a notebook of the series already measured (12's memory peak) reads it from the shared run folder (the
# ``series_result`` fixture) instead of measuring it again; run alone, such a test measures it itself. ``./lab.sh test``
# (tools/suite.py) runs the series and its lane check alone first, then the rest on two workers, where this order puts
# the Ampere pass, the longest file, first, and the other files longest first (``tools.ci_phases.longest_files_first``:
# the short ones fill the end, so neither worker waits long for the other).
SERIES_FIRST = ("tests/test_notebooks.py::test_solution_executes_with_papermill",
                "tests/test_notebooks.py::test_solution_keeps_the_ampere_contract",
                "tests/test_notebooks.py::test_series_stayed_in_its_lane")


def pytest_collection_modifyitems(session, config, items):
    first = [item for item in items if item.nodeid.startswith(SERIES_FIRST)]
    rest = [item for item in items if not item.nodeid.startswith(SERIES_FIRST)]
    items[:] = first + [rest[i] for i in longest_files_first([item.nodeid for item in rest])]


def pytest_runtest_logreport(report):
    record(report.nodeid, report.duration, report.when)


def series_summary_lines() -> list[str]:
    """The ci series as ``./lab.sh run`` summarises it, from the papermill pass of this session (nothing when it did not
    run): time per notebook, in reference steps when ``.ci/run`` measured one (``LAB_REFERENCE_STEP_S``), and what the
    notebooks measured (loss, house format, cut and looping replies, what tuning cost)."""
    import json
    from pathlib import Path

    from tools.series import summary_lines as series_lines

    run = Path(os.environ["LAB_RUN_DIR"])
    timings_file = run / "metrics" / "papermill_timings.json"
    if not timings_file.is_file():
        return []
    reference = os.environ.get("LAB_REFERENCE_STEP_S")
    wall_file = run / "metrics" / "papermill_wall.json"
    wall = json.loads(wall_file.read_text()) if wall_file.is_file() else {}
    return series_lines(run, json.loads(timings_file.read_text()), float(reference) if reference else None,
                        wall.get("wall_s"), wall.get("lanes", 1))


def pytest_terminal_summary(terminalreporter):
    series = series_summary_lines()
    if series:
        terminalreporter.section("the ci series (papermill pass): time per notebook, what it measured")
        for line in series:
            terminalreporter.write_line(line)
    lines = summary_lines()
    if lines:
        terminalreporter.section("time per CI phase (setup + call + teardown)")
        for line in lines:
            terminalreporter.write_line(line)
    files = slowest_files()
    if files:
        terminalreporter.section("slowest unit-test files (setup + call + teardown)")
        for line in files:
            terminalreporter.write_line(line)


def pytest_unconfigure(config):
    if _MADE_RUN_DIR and not os.environ.get("LAB_KEEP_TEST_RUN"):
        shutil.rmtree(os.environ["LAB_RUN_DIR"], ignore_errors=True)
