"""Phase 2's work queue (tools.ci_phases.longest_files_first, the root conftest, tools/suite.py): the files expected
to take longest go first, so neither xdist worker idles while the other finishes a long file at the end."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

from tools.ci_phases import MEASURED_FILE_SECONDS, expected_seconds
from tools.suite import phase_commands

ROOT = Path(__file__).resolve().parents[1]


def test_every_measured_file_exists():
    """A renamed or removed file would leave its figure behind and its successor at the typical cost."""
    missing = [path for path in MEASURED_FILE_SECONDS if not (ROOT / path).is_file()]
    assert missing == [], f"tools.ci_phases.MEASURED_FILE_SECONDS names files that are gone: {missing}"


def test_phase_two_keeps_the_conftest_order():
    """xdist sorts the files by their number of tests unless told not to (one 31 s test would then come last)."""
    _, second = phase_commands(["-ra"])
    assert "--no-loadscope-reorder" in second and second[second.index("--dist") + 1] == "loadfile"


def test_collected_order_puts_the_long_files_first_and_the_doctests_last():
    """The root conftest's ordering, as phase 2's workers receive it: the Ampere pass first, then the measured long
    files in decreasing order, the student copies before the short unit-test files, the doctests at the end; the tests
    of one file keep their order."""
    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")  # not tests/conftest.py
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    ids = ["labhelpers/run/folder.py::labhelpers.run.folder.write_json", "tests/test_data.py::test_a",
           "tests/test_grade.py::test_g", "notebooks/03_chat_formatting.ipynb::Cell 0", "tests/test_data.py::test_b",
           "tests/test_resume.py::test_r", "tests/test_notebooks.py::test_solution_keeps_the_ampere_contract[02_x]"]
    items = [SimpleNamespace(nodeid=i) for i in ids]
    conftest.pytest_collection_modifyitems(None, None, items)
    assert [item.nodeid for item in items] == [ids[6], ids[5], ids[2], ids[3], ids[1], ids[4], ids[0]]
    seconds = [expected_seconds(item.nodeid.split("::")[0]) for item in items[1:]]
    assert seconds == sorted(seconds, reverse=True)
