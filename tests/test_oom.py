"""Honest failure on out-of-memory: the estimator's breakdown and the changes that would fit, not a CUDA traceback."""

from __future__ import annotations

import types

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from labhelpers.model.hardware import recipe_for
from labhelpers.run.training import TrainingOutOfMemory, train_or_explain_oom


class OutOfMemoryTrainer:
    """Stands in for an SFTTrainer whose train() hits torch's OutOfMemoryError at the first step."""

    def __init__(self, model):
        self.model = model
        self.args = types.SimpleNamespace(eval_on_start=True, max_steps=-1)

    def train(self, resume_from_checkpoint=None):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.00 GiB")


@pytest.fixture(scope="module")
def smollm_sized_model():
    config = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True)
    with torch.device("meta"):  # the estimate needs shapes only
        return LlamaForCausalLM(config)


def test_oom_stops_with_breakdown_and_fitting_changes(smollm_sized_model):
    recipe = recipe_for("t4", "colab").with_sizes(per_device_train_batch_size=64, max_length=2048)
    with pytest.raises(TrainingOutOfMemory) as caught:
        train_or_explain_oom(OutOfMemoryTrainer(smollm_sized_model), recipe, gpu_gib=16)
    text = str(caught.value)
    for part in ("ran out of GPU memory", "weights", "gradients", "optimizer_states", "activations", "total (peak)",
                 "Changes that would fit a 16 GiB card", "gradient_accumulation_steps", "resumes from the last checkpoint"):
        assert part in text, part
    assert "CUDA out of memory" not in text  # the library's error is replaced, not repeated


def test_oom_when_the_estimate_fits_says_what_else_to_try(smollm_sized_model):
    recipe = recipe_for("ampere", "colab", total_memory_gib=80.0)
    with pytest.raises(TrainingOutOfMemory, match="other processes may hold memory"):
        train_or_explain_oom(OutOfMemoryTrainer(smollm_sized_model), recipe, gpu_gib=80)


def test_other_errors_pass_through(smollm_sized_model):
    class Broken(OutOfMemoryTrainer):
        def train(self, resume_from_checkpoint=None):
            raise ValueError("something else")

    with pytest.raises(ValueError, match="something else"):
        train_or_explain_oom(Broken(smollm_sized_model), recipe_for("cpu", "ci"), gpu_gib=16)


def test_a_resumed_run_does_not_evaluate_at_start_again(smollm_sized_model):
    """eval_on_start is the base model's point: a resumed run's checkpoint log has it, a second one would be a duplicate."""
    seen = []

    class Recording(OutOfMemoryTrainer):
        def train(self, resume_from_checkpoint=None):
            seen.append(self.args.eval_on_start)

    trainer = Recording(smollm_sized_model)
    train_or_explain_oom(trainer, recipe_for("cpu", "ci"), resume_from_checkpoint=None)
    train_or_explain_oom(trainer, recipe_for("cpu", "ci"), resume_from_checkpoint="runs/x/checkpoint-12")
    assert seen == [True, False]
    assert trainer.args.eval_on_start is True  # the student's config is left as it was
