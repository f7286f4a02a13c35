"""One definition of what a finished reference run leaves in the run folder (issue 26, concept 5): notebook 06 and
`series.reference.reference_sft_run` (the reference run 07-13 train when 06 has not run) both call `save_finished_run`."""

from __future__ import annotations

import copy
import inspect
import json
from pathlib import Path

import nbformat
import pytest

from labhelpers.series import reference
from labhelpers.run.training import FINISHED_RUN_METRICS, save_finished_run
from sanity_setup import build_trainer, chat_rows

ROOT = Path(__file__).resolve().parent.parent


def test_both_paths_save_the_finished_run_the_same_way():
    assert "save_finished_run(run, trainer, tokenizer)" in inspect.getsource(reference.reference_sft_run)
    nb = nbformat.read(ROOT / "solutions" / "06_sft_trainer.ipynb", as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "save_finished_run(RUN, trainer, tokenizer)" in code
    assert 'RUN / "sft" / "final"' not in code and "save_metrics(" not in code  # no second, drifting copy


@pytest.mark.slow
def test_a_finished_run_leaves_the_model_the_tokenizer_and_every_metric(model_and_tokenizer, cpu_recipe, tmp_path):
    model, tok = model_and_tokenizer
    trainer = build_trainer(copy.deepcopy(model), tok, cpu_recipe, rows=chat_rows(2), out_dir=str(tmp_path / "sft"),
                            max_steps=1, eval_steps=1)  # a copy: the session's shared model stays the base model
    trainer.train()
    final = save_finished_run(tmp_path, trainer, tok)
    assert final == tmp_path / "sft" / "final"
    assert (final / "model.safetensors").is_file() and (final / "tokenizer_config.json").is_file()
    metrics = json.loads((tmp_path / "metrics" / "training.json").read_text())
    assert set(FINISHED_RUN_METRICS) <= set(metrics), sorted(set(FINISHED_RUN_METRICS) - set(metrics))
    assert metrics["log_history"] == trainer.state.log_history
