"""Test-session environment shared by pytest, the papermill tests and nbval's kernels.

Every notebook executed by the suite writes into one temporary run folder (never ``runs/`` of the
checkout), in the small ``ci`` profile unless the caller chose otherwise.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("LAB_PROFILE", "ci")
os.environ.setdefault("LAB_RUN_DIR", tempfile.mkdtemp(prefix="sft-lab-test-run-"))
os.environ.setdefault("MPLBACKEND", "Agg")

from tools.ci_phases import record, slowest_files, summary_lines  # noqa: E402  (after the environment above is set)


def pytest_runtest_logreport(report):
    record(report.nodeid, report.duration, report.when)


def pytest_terminal_summary(terminalreporter):
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
