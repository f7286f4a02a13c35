"""Survive a disconnect: a run killed (SIGKILL) after a checkpoint resumes to the same result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from labhelpers.run.training import CHECKPOINT_FILES, is_complete_checkpoint, latest_checkpoint, resume_point

SCRIPT = Path(__file__).with_name("resume_run.py")
ROOT = SCRIPT.parents[1]
# Tolerance: on one CPU the resumed run replays the same batches with the restored RNG, optimizer and
# scheduler states, so results agree to float32 rounding; 1e-5 leaves room for thread-order effects in
# reductions and nothing more (a wrong data order or a lost optimizer state differs by > 1e-3).
TOLERANCE = 1e-5


def _run(output_dir: Path, result: Path, *flags: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    return subprocess.Popen([sys.executable, str(SCRIPT), str(output_dir), str(result), *flags], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights_and_loss(tmp_path, model_and_tokenizer):  # fixture: warm cache
    straight = _run(tmp_path / "straight", tmp_path / "straight.json", "--no-save")  # 2 x 1.6 GB fewer to write
    assert straight.wait(timeout=900) == 0, straight.stdout.read()

    victim = _run(tmp_path / "killed", tmp_path / "killed.json")
    deadline = time.time() + 900
    while not (tmp_path / "killed" / "checkpoint-2" / "trainer_state.json").is_file():
        assert victim.poll() is None, "the run ended before it could be killed:\n" + victim.stdout.read()
        assert time.time() < deadline
        time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "killed.json").exists(), "the killed run must not have finished"

    resumed = _run(tmp_path / "killed", tmp_path / "killed.json", "--no-save")  # resumes checkpoint-2, writes no other
    output = resumed.communicate(timeout=900)[0]
    assert resumed.returncode == 0, output
    assert "resuming from" in output

    a = json.loads((tmp_path / "straight.json").read_text())
    b = json.loads((tmp_path / "killed.json").read_text())
    assert int(Path(b["resumed_from"]).name.split("-")[1]) >= 2
    assert a["losses"].keys() >= {"4"} and b["losses"].keys() >= {"4"}
    assert abs(a["losses"]["4"] - b["losses"]["4"]) <= TOLERANCE * max(1.0, abs(a["losses"]["4"]))
    assert max(abs(x - y) for x, y in zip(a["weights"], b["weights"])) <= TOLERANCE


def _fake_checkpoint(folder: Path, complete: bool) -> None:
    folder.mkdir(parents=True)
    for name in CHECKPOINT_FILES:
        if name == "trainer_state.json":
            if complete:
                (folder / name).write_text(json.dumps({"global_step": 1}))
        else:
            (folder / name).write_bytes(b"x")


def test_half_written_checkpoint_is_skipped_with_a_message(tmp_path, capsys):
    _fake_checkpoint(tmp_path / "checkpoint-4", complete=True)
    _fake_checkpoint(tmp_path / "checkpoint-8", complete=False)  # killed during save: no trainer_state.json
    (tmp_path / "checkpoint-12").mkdir()  # killed right after mkdir
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint-4"
    out = capsys.readouterr().out
    assert "skipping checkpoint-12" in out and "skipping checkpoint-8" in out and "trainer_state.json" in out
    assert not is_complete_checkpoint(tmp_path / "checkpoint-8")


def test_truncated_trainer_state_is_not_trusted(tmp_path):
    _fake_checkpoint(tmp_path / "checkpoint-2", complete=True)
    (tmp_path / "checkpoint-2" / "trainer_state.json").write_text('{"global_st')
    assert latest_checkpoint(tmp_path, verbose=False) is None


def test_checkpoints_of_another_configuration_are_not_mixed(tmp_path):
    class Config:
        output_dir = str(tmp_path)
        learning_rate = 1e-4
        max_steps = 8

    _fake_checkpoint(tmp_path / "checkpoint-4", complete=True)
    assert resume_point(Config()) == tmp_path / "checkpoint-4"
    Config.learning_rate = 5e-4
    with pytest.raises(ValueError, match=r"different configuration \(learning_rate: 0.0001 -> 0.0005\).*Nothing was deleted"):
        resume_point(Config())
    assert (tmp_path / "checkpoint-4").is_dir()


@pytest.mark.slow
def test_a_finished_run_ending_mid_epoch_is_loaded_not_trained_further(tmp_path, cpu_recipe, series_result, request):
    """Re-running notebook 06 on a finished run gives the same model: transformers 5.x would resume it one step past
    max_steps when the run ends mid-epoch (seen in CI: checkpoint-31, then 32, of a 30-step run).

    The ci series does exactly that on the real reference run (30 steps of 4 rows, 0.75 epoch: 09 trains it, 06 runs
    after it): when it ran in this session its run folder is read; alone, this test trains a 2-step run itself."""
    steps = cpu_recipe.sizes.max_steps
    state = series_result("sft", f"checkpoint-{steps}", "trainer_state.json")
    if state is not None:
        _check_the_series_finished_run(state.parents[1], steps)
        return
    import copy

    from safetensors.torch import load_file
    from trl import SFTTrainer

    from labhelpers.data.datasets import load_chat_dataset
    from labhelpers.run.training import resume_point, train_or_explain_oom

    model, tokenizer = request.getfixturevalue("model_and_tokenizer")
    rows = load_chat_dataset("sft-lab/house-format")["train"].select(range(16)).select_columns(["messages"])
    config = cpu_recipe.reference_config(tmp_path / "sft", max_steps=2, save_steps=2, eval_strategy="no",
                                         eval_on_start=False, load_best_model_at_end=False, max_length=160)

    def trainer():  # 16 rows in batches of 4: the 2-step run ends mid-epoch
        return SFTTrainer(model=copy.deepcopy(model), args=config, train_dataset=rows, processing_class=tokenizer)

    first = trainer()
    first.train(resume_from_checkpoint=resume_point(config))
    again = trainer()
    result = train_or_explain_oom(again, cpu_recipe, resume_from_checkpoint=str(resume_point(config)))
    assert result.global_step == 2 and again.state.global_step == 2
    assert sorted(p.name for p in (tmp_path / "sft").glob("checkpoint-*")) == ["checkpoint-2"]
    saved = load_file(str(tmp_path / "sft" / "checkpoint-2" / "model.safetensors"))
    for name, param in again.model.named_parameters():
        if name in saved:
            assert torch.equal(param.detach(), saved[name]), name
    assert any(not torch.equal(p, q) for p, q in zip(again.model.parameters(), model.parameters()))  # trained weights


def _check_the_series_finished_run(sft: Path, steps: int) -> None:
    """The series' reference run ended mid-epoch, and notebook 06, run after 09 had finished it, resumed it without
    training a step further: no checkpoint past ``steps``."""
    state = json.loads((sft / f"checkpoint-{steps}" / "trainer_state.json").read_text())
    assert state["global_step"] == steps and 0 < state["epoch"] % 1, state["epoch"]  # the premise: mid-epoch
    checkpoints = sorted(int(p.name.split("-")[1]) for p in sft.glob("checkpoint-*"))
    assert checkpoints[-1] == steps, f"the finished run was trained past its end: {checkpoints}"
    executed = json.loads((sft.parent / "executed" / "06_sft_trainer.ipynb").read_text())
    printed = "".join("".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", []))
    assert "resuming from" in printed and f"checkpoint-{steps}" in printed, "06 did not resume the finished run"
