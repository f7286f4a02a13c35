"""The locked stack: what CI installs is the lock, the lock is consistent, and the Colab cell asks for nothing else."""

from __future__ import annotations

import builtins
import importlib.metadata as md
import sys
import types

import pytest

from tools import colab, lock

# Colab's runtime: CPython 3.12 on Linux x86_64 (the markers the colab pins must also satisfy there)
COLAB_ENV = {"python_version": "3.12", "python_full_version": "3.12.12", "os_name": "posix", "sys_platform": "linux",
             "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
             "platform_python_implementation": "CPython", "platform_release": "", "platform_version": "",
             "implementation_version": "3.12.12"}
HERE_ENV = {"python_version": f"{sys.version_info.major}.{sys.version_info.minor}",
            "python_full_version": ".".join(map(str, sys.version_info[:3])), "os_name": "posix",
            "sys_platform": sys.platform, "platform_system": "Linux", "platform_machine": "x86_64",
            "implementation_name": "cpython", "platform_python_implementation": "CPython", "platform_release": "",
            "platform_version": "", "implementation_version": ".".join(map(str, sys.version_info[:3]))}


def test_the_lock_is_what_the_tool_wrote():
    assert lock.hand_edit_problems() == []
    header = lock.lock_header()
    assert header["torch tested"].startswith(lock.read_lock()["torch"].version)


def test_this_environment_is_exactly_the_lock():
    """CI installs requirements.lock: every locked version is installed, and nothing unlocked crept in."""
    assert lock.environment_problems(lock.read_lock(), lock.installed_versions()) == []


def test_every_locked_requirement_is_met_by_the_lock_here_and_in_colab():
    pins = lock.read_lock()
    requires = lock.installed_requires(sorted(pins))
    assert set(requires) == set(pins)
    assert lock.requirement_problems(pins, requires, HERE_ENV) == []
    # in Colab only the colab pins are installed by the cell; they must still agree with each other on Python 3.12
    problems = lock.requirement_problems(pins, requires, COLAB_ENV, groups=("colab",))
    owned = {name for name, pin in pins.items() if pin.group == "colab-owned"}
    assert [p for p in problems if not any(f"requires {o}" in p or f"no {o}" in p for o in owned)] == []


def test_transformers_can_serve_flash_attention_with_the_locked_kernels():
    """The defect this lock closes: a kernels version outside transformers' window turns the hub kernel off."""
    from transformers.utils.import_utils import is_kernels_available

    pins = lock.read_lock()
    assert pins["kernels"].group == "colab", "the cell must pin the kernels version CI tested"
    assert md.version("kernels") == pins["kernels"].version
    assert is_kernels_available()


def test_a_kernels_pin_outside_transformers_window_is_caught():
    pins = dict(lock.read_lock())
    pins["kernels"] = lock.Pin("kernels", "0.18.2", "colab")
    problems = lock.requirement_problems(pins, lock.installed_requires(["transformers"]), HERE_ENV)
    assert any(p.startswith("transformers") and "kernels" in p and "0.18.2" in p for p in problems), problems


def test_a_hand_edited_lock_is_refused(tmp_path):
    text = lock.LOCK.read_text().replace(f"trl=={lock.read_lock()['trl'].version}", "trl==1.15.0")
    edited = tmp_path / "requirements.lock"
    edited.write_text(text)
    assert lock.hand_edit_problems(edited) and "refresh" in lock.hand_edit_problems(edited)[0]
    (tmp_path / "bad.lock").write_text("trl>=1.16  # colab\n")
    with pytest.raises(ValueError, match="line 1.*refresh"):
        lock.read_lock(tmp_path / "bad.lock")


# ----------------------------------------------------------------------------------------------- the cell, run
def _run_install_cell(monkeypatch, labhelpers_importable: bool = True) -> list[str]:
    """Execute the generated install cell as IPython would in Colab (fake google.colab, `!` commands recorded)."""
    from IPython.core.inputtransformer2 import TransformerManager
    from IPython.utils.text import DollarFormatter

    commands: list[str] = []
    namespace: dict = {}
    # IPython expands $name in a ! command from the cell's namespace (InteractiveShell.var_expand)
    shell = types.SimpleNamespace(system=lambda cmd: commands.append(DollarFormatter().vformat(cmd, (), namespace)))
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    if not labhelpers_importable:
        real_import = builtins.__import__

        def no_labhelpers(name, *args, **kwargs):
            if name.startswith("labhelpers"):
                raise ModuleNotFoundError(f"No module named {name!r}")
            return real_import(name, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", no_labhelpers)
    code = TransformerManager().transform_cell(colab.install_cell_source())
    namespace.update(get_ipython=lambda: shell, __name__="__main__")
    exec(compile(code, "<install cell>", "exec"), namespace)
    return commands


def test_the_install_cell_runs_in_a_fake_colab_and_installs_exactly_the_pins(monkeypatch):
    commands = _run_install_cell(monkeypatch)
    assert len(commands) == 2
    pins = commands[0].split()[3:]
    assert commands[0].startswith("pip install -q ") and pins == lock.colab_pins()
    assert commands[1] == f"pip install -q --no-deps {colab.labhelpers_source()}"


def test_the_install_cell_stops_with_the_fix_when_labhelpers_does_not_install(monkeypatch):
    with pytest.raises(RuntimeError, match="labhelpers did not install from .*LABHELPERS_SOURCE.*zip"):
        _run_install_cell(monkeypatch, labhelpers_importable=False)
