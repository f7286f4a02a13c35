"""tools.gpu_rehearsal (dry run, parameter and pin checks), LAB_FORCE_HARDWARE, and the random-weights skips."""

from __future__ import annotations

import importlib
import json
import shutil
import types
from pathlib import Path

import pytest
import torch

from labhelpers.model.hardware import detect_recipe
from labhelpers.model.loading import RANDOM_WEIGHTS_CONFIG_KEY, RANDOM_WEIGHTS_MARKER, has_random_weights
from labhelpers.sanity import protocol
from labhelpers.sanity.postflight import RANDOM_WEIGHTS_SKIP, postflight
from labhelpers.sanity.report import Finding, SanityReport
from tools import gpu_rehearsal

postflight_module = importlib.import_module("labhelpers.sanity.postflight")  # the package attribute is the function
ROOT = Path(__file__).resolve().parents[1]
GB = 10**9


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv("LAB_PROFILE", raising=False)
    monkeypatch.delenv("LAB_FORCE_HARDWARE", raising=False)


def fake_gpu(monkeypatch, name: str = "NVIDIA H100 80GB HBM3", cc: tuple[int, int] = (9, 0), total: int = 80 * GB):
    """One visible GPU without a real device (as tests/test_hardware.py does), no flash-attention package."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: cc)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: name)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i=0: types.SimpleNamespace(total_memory=total))
    monkeypatch.setattr("labhelpers.model.hardware.detect._probe_flash", lambda: (None, "no flash-attention in this test"))


# ----------------------------------------------------------------------------------------- LAB_FORCE_HARDWARE
def test_force_t4_on_an_h100_gives_the_fp16_amp_recipe(monkeypatch):
    fake_gpu(monkeypatch)
    monkeypatch.setenv("LAB_FORCE_HARDWARE", "t4")
    r = detect_recipe()
    assert (r.hardware, r.profile, r.fp16, r.bf16, r.use_cpu, r.attn_implementation) == ("t4", "colab", True, False,
                                                                                          False, "sdpa")
    assert r.torch_dtype == torch.float32 and r.sizes.gradient_checkpointing  # the T4's split, not the H100's
    assert dict(r.reasons)["hardware"].startswith("forced by LAB_FORCE_HARDWARE=t4 on NVIDIA H100 80GB HBM3")


def test_force_ampere_and_cpu(monkeypatch):
    fake_gpu(monkeypatch, "Tesla T4", (7, 5), 15 * GB)
    monkeypatch.setenv("LAB_FORCE_HARDWARE", "AMPERE")  # case-insensitive, like LAB_PROFILE
    r = detect_recipe()
    assert (r.hardware, r.bf16, r.fp16) == ("ampere", True, False)
    assert "forced by LAB_FORCE_HARDWARE=ampere on Tesla T4" in dict(r.reasons)["hardware"]
    monkeypatch.setenv("LAB_FORCE_HARDWARE", "cpu")
    r = detect_recipe("ci")
    assert (r.hardware, r.use_cpu, r.fp16, r.bf16) == ("cpu", True, False, False)
    assert r.device == torch.device("cpu")


def test_force_gpu_recipe_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("LAB_FORCE_HARDWARE", "t4")
    with pytest.raises(ValueError, match=r"LAB_FORCE_HARDWARE='t4' needs a CUDA GPU.*unset LAB_FORCE_HARDWARE"):
        detect_recipe()
    monkeypatch.setenv("LAB_FORCE_HARDWARE", "cpu")  # honoured everywhere
    assert detect_recipe().hardware == "cpu"
    monkeypatch.setenv("LAB_FORCE_HARDWARE", "tpu")
    with pytest.raises(ValueError, match=r"LAB_FORCE_HARDWARE='tpu': choose one of 't4', 'ampere', 'cpu'"):
        detect_recipe()


# ----------------------------------------------------------------------------------------- random weights
def test_has_random_weights_from_marker_config_or_load_info(tmp_path):
    assert not has_random_weights(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({RANDOM_WEIGHTS_CONFIG_KEY: True}))
    assert has_random_weights(tmp_path)  # a model trained from a random one and saved keeps the key
    marked = tmp_path / "marked"
    marked.mkdir()
    (marked / RANDOM_WEIGHTS_MARKER).write_text("random")
    loaded = types.SimpleNamespace(config=types.SimpleNamespace(), lab_load_info=types.SimpleNamespace(path=str(marked)))
    assert has_random_weights(loaded)
    assert has_random_weights(types.SimpleNamespace(config=types.SimpleNamespace(**{RANDOM_WEIGHTS_CONFIG_KEY: True})))
    assert not has_random_weights(types.SimpleNamespace(config=types.SimpleNamespace()))


RANDOM_MODEL = types.SimpleNamespace(config=types.SimpleNamespace(**{RANDOM_WEIGHTS_CONFIG_KEY: True}))
REAL_MODEL = types.SimpleNamespace(config=types.SimpleNamespace())


def test_postflight_skips_quality_findings_for_random_weights_never_silently():
    replies = (["tok tok tok tok " * 8, ""], [True, True])  # runaway, looping and empty: fails on real weights
    real = postflight(REAL_MODEL, None, ["a", "b"], replies=replies)
    assert real.by_check("hit_max_new_tokens").status == "fail" and not real.ok
    skipped = postflight(RANDOM_MODEL, None, ["a", "b"], replies=replies)
    assert skipped.ok and [f.status for f in skipped.findings] == ["warn"] * 5
    assert all(f.message.startswith(RANDOM_WEIGHTS_SKIP + " (measured: ") for f in skipped.findings)
    assert {f.check for f in skipped.findings} == {"hit_max_new_tokens", "empty_replies", "degenerate_replies",
                                                   "repeated_lines", "house_format"}


class _FakeTrainer:
    def __init__(self) -> None:
        self.state = types.SimpleNamespace(global_step=4, log_history=[])
        self.losses = iter([10.8, 10.9])  # eval loss rises: a fail on real weights

    def evaluate(self):
        return {"eval_loss": next(self.losses)}

    def train(self):
        return None


@pytest.mark.parametrize("mechanical_fail", [False, True])
def test_protocol_verdict_is_skipped_for_random_weights(monkeypatch, mechanical_fail):
    monkeypatch.setattr(protocol, "generate_replies", lambda *a, **k: (["x"], [True]))
    monkeypatch.setattr(postflight_module, "generate_replies", lambda *a, **k: (["x"], [True]))
    monkeypatch.setattr(protocol, "build_trainer", lambda *a, **k: _FakeTrainer())
    pre = [Finding("loss_at_init", "fail", "loss at init 10.83: as bad as random guessing", "load weights")]
    if mechanical_fail:
        pre.append(Finding("double_bos", "fail", "2 rows start with two BOS", "add_special_tokens=False"))
    monkeypatch.setattr(protocol, "preflight", lambda trainer, level: SanityReport(list(pre), title="preflight"))
    monkeypatch.setattr(protocol, "overfit_test", lambda *a, **k: SanityReport(
        [Finding("overfit", "fail", "loss 10.8 → 10.1 (6% drop)", "raise steps")], title="overfit test"))
    result = protocol.run_protocol(RANDOM_MODEL, None, [], [], ["p"])
    if mechanical_fail:  # a broken setup is still a NO-GO: only quality findings are skipped
        assert result.verdict == "NO-GO" and any("double_bos" in r for r in result.reasons)
        assert not any("loss_at_init" in r and "fail" in r for r in result.reasons)
    else:
        assert result.verdict == "SKIPPED" and not result.go
        assert result.reasons[0].startswith(RANDOM_WEIGHTS_SKIP)
        assert "overfit: overfit" in result.reasons[0] and "short_run: short_run_eval" in result.reasons[0]
        assert "#fff3cd" in result._repr_html_()
    assert result.reports["preflight"].by_check("loss_at_init").status == "warn"
    real = protocol.run_protocol(REAL_MODEL, None, [], [], ["p"])
    assert real.verdict == "NO-GO"


# ----------------------------------------------------------------------------------------- the rehearsal tool
def test_pins_are_exact_and_their_requirements_closed():
    assert gpu_rehearsal.pin_problems(gpu_rehearsal.WHEEL_PINS) == []
    assert gpu_rehearsal.pin_problems(gpu_rehearsal.SPARE_PINS) == []
    trl = "Name: trl\nRequires-Dist: leftpad>=1\nRequires-Dist: datasets>=99\nRequires-Dist: pywin32; sys_platform == 'win32'\n"
    problems = gpu_rehearsal.closure_problems({"trl": trl})
    assert any("trl needs leftpad>=1: add leftpad==<version> to WHEEL_PINS" in p for p in problems)
    assert any("datasets>=99, but WHEEL_PINS has datasets==" in p for p in problems)
    assert not any("pywin32" in p for p in problems)  # markers are evaluated for the Linux GPU machine


def test_flags_a_parameter_the_notebook_does_not_declare(tmp_path):
    notebook = tmp_path / "06_demo.ipynb"
    notebook.write_text(json.dumps({"cells": [
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": ["PROFILE = None\n", "MAX_STEPS = None"],
         "outputs": [], "execution_count": None}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    assert gpu_rehearsal.declared_parameters(notebook) == {"PROFILE", "MAX_STEPS"}
    assert gpu_rehearsal.parameter_problems(notebook, {"PROFILE": "colab", "MAX_STEPS": 4}) == []
    problems = gpu_rehearsal.parameter_problems(notebook, {"PROFILE": "colab", "SHORT_STEPS": 4})
    assert problems == ["06_demo.ipynb: parameter 'SHORT_STEPS' is not declared in its parameters cell (declared: "
                        "MAX_STEPS, PROFILE); drop it from tools/gpu_rehearsal/jobs.py's caps or declare it"]


@pytest.mark.slow
def test_dry_run_passes_and_flags_an_undeclared_parameter(tmp_path, capsys):
    assert gpu_rehearsal.dry_run() == []  # wheels (or their pins), model files, a random model, notebooks, budget
    out = capsys.readouterr().out
    assert "dry run: ready" in out and "random-weight model builds and loads on CPU" in out
    assert "LAB_FORCE_HARDWARE=t4 papermill solutions/06_*.ipynb PROFILE=colab MAX_STEPS=4" in out
    solutions = tmp_path / "solutions"  # the real notebooks, one with a parameters cell that lost MAX_STEPS
    shutil.copytree(ROOT / "solutions", solutions)
    path = next(solutions.glob("06_*.ipynb"))
    nb = json.loads(path.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    cell["source"] = [line for line in cell["source"] if not line.startswith("MAX_STEPS")]
    path.write_text(json.dumps(nb))
    problems = gpu_rehearsal.dry_run(solutions=solutions, build=False)
    assert problems == [f"{path.name}: parameter 'MAX_STEPS' is not declared in its parameters cell (declared: "
                        "DATASET, LEARNING_RATE, MAX_LENGTH, MODEL_ID, PROFILE, RESUME, RUN_DIR); drop it from tools/gpu_rehearsal/jobs.py's caps or "
                        "declare it"]
    with pytest.raises(SystemExit):  # argparse: --steps must be >= 1
        gpu_rehearsal.main(["--dry-run", "--steps", "0"])
