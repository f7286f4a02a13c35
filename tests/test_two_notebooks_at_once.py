"""Two notebooks of one run folder at once (two Jupyter tabs, two lanes of ``./lab.sh run``): the reference run is
trained once, a reader never sees half a model, and a training that waited does not resume a stale checkpoint."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace as NS

import pytest

from labhelpers.model.hardware import recipe_for
from labhelpers.run.folder import held_alone
from labhelpers.run.training import training_guards, training_lock
from labhelpers.series import reference

ROOT = Path(__file__).resolve().parents[1]


def _hold_then(lock_dir: Path, then: str, seconds: float = 1.5) -> subprocess.Popen:
    """Another process: takes the training lock of ``lock_dir``, says so, sleeps, runs ``then`` (Python), releases."""
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from labhelpers.run.training import training_lock
        with training_lock(Path({str(lock_dir)!r}), "the other notebook's run"):
            print("holding", flush=True)
            time.sleep({seconds})
            {then}
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"  # the lock is taken before this process goes on
    return holder


def test_a_reader_waits_for_the_reference_run_in_progress_and_does_not_train_it_again(tmp_path, monkeypatch, capsys):
    final = tmp_path / "sft" / "final"
    holder = _hold_then(tmp_path / "sft", f"Path({str(final)!r}).mkdir(parents=True); "
                                          f"Path({str(final / 'model.safetensors')!r}).write_bytes(b'w')")
    monkeypatch.setattr(reference, "reference_sft_run", lambda *a, **k: pytest.fail("trained the reference run twice"))
    start = time.monotonic()
    assert reference.ensure_tuned_model(tmp_path, recipe_for("cpu", "ci"), "m", "d") == final
    assert holder.wait(timeout=30) == 0
    out = capsys.readouterr().out
    assert time.monotonic() - start >= 1.0 and "waiting: process" in out and "training the reference run" in out


def test_without_a_run_in_progress_the_missing_model_is_trained_here(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(reference, "reference_sft_run", lambda run, *a: calls.append(run) or run / "sft" / "final")
    reference.ensure_tuned_model(tmp_path, recipe_for("cpu", "ci"), "m", "d")
    assert calls == [tmp_path] and "waiting" not in capsys.readouterr().out


def _trainer(output_dir: Path) -> NS:
    return NS(args=NS(output_dir=str(output_dir), eval_on_start=False), callback_handler=None, model=None)


def test_a_training_that_waited_while_the_other_wrote_checkpoints_asks_to_be_run_again(tmp_path):
    checkpoint = tmp_path / "checkpoint-2"
    holder = _hold_then(tmp_path, f"Path({str(checkpoint)!r}).mkdir(); "
                                  f"[(Path({str(checkpoint)!r}) / n).write_text('{{}}') for n in "
                                  "__import__('labhelpers.run.training', fromlist=['x']).CHECKPOINT_FILES]")
    with pytest.raises(RuntimeError, match=r"another notebook trained into .* run this cell again"):
        with training_guards(_trainer(tmp_path), recipe_for("cpu", "ci"), checkpoint=None):
            pytest.fail("trained from scratch over the other notebook's checkpoints")
    assert holder.wait(timeout=30) == 0
    with training_guards(_trainer(tmp_path), recipe_for("cpu", "ci"), checkpoint=checkpoint):  # the re-run resumes
        pass


def test_the_lock_is_free_again_after_its_holder_dies(tmp_path):
    holder = _hold_then(tmp_path, "", seconds=60)
    holder.kill()
    holder.wait(timeout=30)
    start = time.monotonic()
    with training_lock(tmp_path, "a run") as waited:
        assert not waited
    assert time.monotonic() - start < 5


def test_one_process_may_nest_the_lock(tmp_path):
    with held_alone(tmp_path / "x.lock", "outer"), held_alone(tmp_path / "x.lock", "inner") as waited:
        assert waited is False
    with training_lock(tmp_path, "again") as waited:  # released after the outer block
        assert waited is False
