"""The widgets on Colab's ipywidgets: 7.7.1, not the lock's 8.

Colab's runtime keeps its own preinstalled ipywidgets (7.7.1: its front end stopped rendering the core widgets of
ipywidgets 8, googlecolab/colabtools#3020), so the install cell leaves ipywidgets alone and ``labhelpers.views.widgets`` has
to work on both majors. This test installs ipywidgets 7.7.1 and what it needs that 8 does not into a folder of its own
(``pip install --no-deps --target``: the venv is untouched) and runs ``tests/test_widgets.py`` in a subprocess whose
``sys.path`` starts with that folder; a small pytest plugin reports which ipywidgets the tests really imported and how
many of them passed.

``tests/test_live.py`` is not run there: ``labhelpers.views.live`` draws with ``IPython.display``, never with ipywidgets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COLAB_IPYWIDGETS = "7.7.1"
# ipywidgets 7.7.1's Requires-Dist that the lock's ipywidgets 8 stack does not satisfy, pinned to the last 7-era
# releases: ipython_genutils (imported by ipywidgets 7), widgetsnbextension ~=3.6.0 and the 1.x JupyterLab extension
# (front-end assets: not imported, installed so the folder is the stack Colab pairs with 7.7.1). ipykernel, IPython and
# traitlets come from the venv.
PACKAGES = (f"ipywidgets=={COLAB_IPYWIDGETS}", "ipython_genutils==0.2.0", "widgetsnbextension==3.6.10",
            "jupyterlab_widgets==1.1.11")
WIDGET_TESTS = ("tests/test_widgets.py", "tests/test_widgets_colab.py::test_widget_bundle_matches_ipywidgets_8")

PROBE = '''
"""Loaded with -p: records which ipywidgets the tests imported and the outcome of each test, as JSON at exit."""
import json, os, sys

counts = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":  # a setup/teardown failure or skip counts too
        counts["error" if report.failed and report.when != "call" else report.outcome] += 1


def pytest_sessionfinish(session, exitstatus):
    module = sys.modules.get("ipywidgets")
    with open(os.environ["WIDGETS_PROBE_OUT"], "w") as out:
        json.dump({"ipywidgets": getattr(module, "__version__", None), "file": getattr(module, "__file__", None),
                   "collected": session.testscollected, "exitstatus": int(exitstatus), **counts}, out)
'''


@pytest.fixture(scope="session")
def ipywidgets7(tmp_path_factory) -> Path:
    """A folder holding ipywidgets 7.7.1 and its 7-only dependencies, installed once per test session."""
    target = tmp_path_factory.mktemp("ipywidgets7")
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--only-binary=:all:", "--no-compile",
           "--disable-pip-version-check", "--no-input", "--target", str(target), *PACKAGES]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        pytest.fail(f"pip took over 600 s to install {' '.join(PACKAGES)}: is the package registry (PyPI) reachable?")
    if done.returncode != 0:  # fail, never skip: CI reaches PyPI, and without it Colab's widgets go untested
        pytest.fail(f"could not install Colab's widget stack ({' '.join(PACKAGES)}) with pip; is the package registry "
                    f"(PyPI) reachable? pip exited {done.returncode}:\n{done.stderr[-3000:]}", pytrace=False)
    (target / "widgets_probe.py").write_text(textwrap.dedent(PROBE))
    return target


def test_widget_bundle_matches_ipywidgets_8(monkeypatch):
    """The bundle built for ipywidgets 7 (no ``_repr_mimebundle_`` there) is the one ipywidgets 8 returns.

    Also run on 7.7.1 by the test below: there it checks the bundle names the widget's model."""
    import ipywidgets as w

    from labhelpers.views import widgets

    box = w.VBox([w.HTML("<b>x</b>"), w.IntSlider(description="row")])
    bundle = widgets.widget_bundle(box)
    assert bundle["application/vnd.jupyter.widget-view+json"] == {"version_major": 2, "version_minor": 0,
                                                                   "model_id": box.model_id}
    assert bundle["text/plain"].startswith("VBox(") and len(bundle["text/plain"]) <= 111
    if widgets.ipywidgets_major() >= 8:
        monkeypatch.setattr(widgets, "ipywidgets_major", lambda: 7)
        assert widgets.widget_bundle(box) == box._repr_mimebundle_()


def test_widgets_on_colab_ipywidgets_7(ipywidgets7, tmp_path):
    """tests/test_widgets.py, all of it (its slow tests too: they drive chat_compare's buttons), on ipywidgets 7.7.1."""
    probe_out = tmp_path / "probe.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ipywidgets7), os.environ.get("PYTHONPATH")])),
           "WIDGETS_PROBE_OUT": str(probe_out)}
    cmd = [sys.executable, "-m", "pytest", *WIDGET_TESTS, "-p", "widgets_probe", "-q",
           # ipywidgets 7 opens its comms with ipykernel.comm.Comm, which ipykernel 7 deprecates (Colab's 6 does not)
           "-W", "ignore:The `ipykernel.comm.Comm` class has been deprecated:DeprecationWarning"]
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    took = time.perf_counter() - started
    log = f"$ PYTHONPATH={ipywidgets7} {' '.join(cmd)}\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
    assert probe_out.is_file(), f"the subprocess ended before pytest finished:\n{log}"
    probe = json.loads(probe_out.read_text())
    assert probe["ipywidgets"] == COLAB_IPYWIDGETS, f"the tests imported ipywidgets {probe['ipywidgets']} from " \
                                                    f"{probe['file']}, not {COLAB_IPYWIDGETS}:\n{log}"
    assert Path(probe["file"]).is_relative_to(ipywidgets7)
    assert done.returncode == 0 and probe["failed"] == probe["error"] == 0, f"widget tests fail on ipywidgets 7:\n{log}"
    summary = done.stdout.strip().splitlines()[-1]
    assert f"{probe['passed']} passed" in summary, log  # pytest's own count agrees with the probe's
    assert probe["passed"] > 0 and probe["passed"] == probe["collected"] and probe["skipped"] == 0, log
    print(f"{probe['passed']} widget tests passed on ipywidgets {probe['ipywidgets']} in {took:.1f} s")
