"""``./lab.sh test``: the whole suite as CI runs it, in two phases that share one run folder.

1. **the series**: the ci series (papermill over the solutions, out of order, two notebooks at a time with one torch
   thread each, as ``./lab.sh run`` does: ``tools.series.execute_in_lanes``) and the check that it wrote only in its
   run folder, alone on the machine: its wall time is what ``./lab.sh run`` costs;
2. **the rest** (the Ampere-contract pass, unit tests, doctests, nbval on the student copies) on two pytest-xdist
   workers with one torch thread each, a test file per worker at a time (an nbval notebook's cells share one kernel;
   the Ampere pass's notebooks share a run folder, in order): small forwards, kernel starts, imports and tokenizing
   keep two threads of one process far from two cores' worth of work. Its tests read what the series measured from
   the shared run folder (``series_result``).

With a test path or a selection (``./lab.sh test tests/test_data.py -k masking``) it is plain pytest in one process.

    python -m tools.suite -ra --durations=30     # what .ci/run calls, through ./lab.sh test
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# the items of phase 1, as node-id prefixes (tests/test_notebooks.py; the root conftest runs them in this order)
SERIES_PHASE = ("tests/test_notebooks.py::test_solution_executes_with_papermill",
                "tests/test_notebooks.py::test_series_stayed_in_its_lane")
WORKERS = 2
SELECTING = ("-k", "-m", "--deselect", "--lf", "--last-failed", "--co", "--collect-only", "--pdb")


def selects_tests(args: list[str]) -> bool:
    """Whether ``args`` choose tests (a path or node id that exists, or a selection option): then plain pytest.

    >>> selects_tests(["-ra", "--durations=30"]), selects_tests(["--durations", "30"])
    (False, False)
    >>> selects_tests(["tests/test_data.py::test_x", "-q"]), selects_tests(["-k", "masking"])
    (True, True)
    """
    return any(arg.split("=")[0] in SELECTING or Path(arg.split("::")[0]).exists() for arg in args)


def phase_commands(args: list[str]) -> list[list[str]]:
    """The two pytest command lines (the options given go to both).

    >>> first, second = phase_commands(["-ra"])
    >>> first[3:], second[3:9]
    (['-ra', 'tests/test_notebooks.py::test_solution_executes_with_papermill', \
'tests/test_notebooks.py::test_series_stayed_in_its_lane'], ['-ra', '-n', '2', '--dist', 'loadfile', '--no-loadscope-reorder'])
    """
    pytest = [sys.executable, "-m", "pytest"]
    rest = [f"--deselect={prefix}" for prefix in SERIES_PHASE]
    # xdist keeps the conftest's order (the longest files first) instead of sorting the files by their number of tests
    return [pytest + args + list(SERIES_PHASE),
            pytest + args + ["-n", str(WORKERS), "--dist", "loadfile", "--no-loadscope-reorder", *rest]]


def run_phases(args: list[str]) -> int:
    """Both phases in one run folder (made here and removed after unless ``LAB_RUN_DIR`` is set or
    ``LAB_KEEP_TEST_RUN=1``); the second runs even when the first failed, so one CI log lists every failure."""
    made = "LAB_RUN_DIR" not in os.environ
    run = os.environ.get("LAB_RUN_DIR") or tempfile.mkdtemp(prefix="sft-lab-test-run-")
    env = dict(os.environ, LAB_RUN_DIR=run)
    try:
        first, second = phase_commands(args)
        print(f"phase 1 of 2: the ci series, alone (run folder {run})", flush=True)
        code_first = subprocess.call(first, env=env)
        if code_first not in (0, 1):  # interrupted, or a usage / internal error: the second phase would repeat it
            return code_first
        print(f"phase 2 of 2: the Ampere pass, unit tests, doctests, the student copies on {WORKERS} workers",
              flush=True)
        code_second = subprocess.call(second, env=dict(env, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1"))
        return code_first or code_second
    finally:
        if made and not os.environ.get("LAB_KEEP_TEST_RUN"):
            shutil.rmtree(run, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if selects_tests(args):
        return subprocess.call([sys.executable, "-m", "pytest", *args])
    return run_phases(args)


if __name__ == "__main__":
    sys.exit(main())
