"""The sanity assistant's configuration checks, table-driven: broken setups a user writes, and the lab's healthy recipes.

Each broken case asserts the finding id, its status and a word of the fix; each healthy case asserts no warning at all
(no false alarm on the lab's own recipes). The configs are real ``SFTConfig`` objects from the recipes; the step
counts follow ``plan_run`` (the Trainer's own arithmetic). Trainer-level cases (prompt tokens trained, a train set TRL
emptied, doubled end-of-turn on pre-rendered text) are in tests/test_sanity_preflight.py and tests/test_sanity_cli.py.
"""

from __future__ import annotations

import math

import pytest
from transformers import GenerationConfig

from labhelpers.model.hardware import recipe_for
from labhelpers.sanity.config import doubled_end_findings, generation_findings, plan_run, schedule_findings
from labhelpers.sanity.preflight import hyperparameter_findings, precision_findings

IM_END, ENDOFTEXT, NEWLINE = 2, 0, 198  # SmolLM2's <|im_end|>, <|endoftext|> and "\n"
CI = recipe_for("cpu", "ci")


def _config(tmp_path, recipe=CI, **overrides):
    return recipe.reference_config(tmp_path / "out", **overrides)


def schedule(tmp_path, batches: int = 40, recipe=CI, has_eval: bool = True, **overrides):
    args = _config(tmp_path, recipe, **overrides)
    return schedule_findings(args, plan_run(args, batches), has_eval)


def generation(**settings):
    eos = settings.pop("eos_token_id", IM_END)
    kwargs = settings.pop("generate_kwargs", {"do_sample": False})
    return generation_findings(GenerationConfig(eos_token_id=eos, **settings), IM_END, "<|im_end|>", **kwargs)


# (case id, findings(tmp_path), finding id, status, a word of the fix)
BROKEN = [
    ("eval every 500 steps in a 40-step run", lambda t: schedule(t, eval_steps=500, save_steps=500), "eval_points", "warn", "eval_steps="),
    ("eval once per epoch, one epoch", lambda t: schedule(t, eval_strategy="epoch", save_strategy="epoch", max_steps=-1,
                                                          num_train_epochs=1), "eval_points", "warn", "eval_steps="),
    ("loss logged every 100 steps in 40", lambda t: schedule(t, logging_steps=100), "log_points", "warn", "logging_steps="),
    ("checkpoint only at the end of 400 steps", lambda t: schedule(t, batches=400, max_steps=400, save_steps=1000),
     "save_points", "warn", "save_steps="),
    ("best model by loss, greater is better", lambda t: schedule(t, load_best_model_at_end=True,
                                                                 metric_for_best_model="eval_loss", greater_is_better=True),
     "best_model_metric", "fail", "greater_is_better=False"),
    ("best model by accuracy, lower is better", lambda t: schedule(
        t, load_best_model_at_end=True, metric_for_best_model="eval_mean_token_accuracy", greater_is_better=False),
     "best_model_metric", "fail", "greater_is_better=True"),
    ("best model with one evaluated checkpoint", lambda t: schedule(t, load_best_model_at_end=True, eval_steps=400,
                                                                    save_steps=400),
     "best_model_candidates", "warn", "save_steps"),
    ("warmup longer than the run", lambda t: schedule(t, warmup_steps=100), "warmup_length", "fail", "warmup_steps="),
    ("warmup most of the run", lambda t: schedule(t, warmup_steps=0.6), "warmup_length", "warn", "warmup_steps=0.1"),
    ("warmup with a constant schedule", lambda t: schedule(t, lr_scheduler_type="constant"), "warmup_length", "warn",
     "constant_with_warmup"),
    ("temperature with greedy decoding", lambda t: generation(temperature=0.7), "sampling_flags", "warn", "do_sample=True"),
    ("top_p with greedy decoding", lambda t: generation(top_p=0.9, top_k=None), "sampling_flags", "warn", "do_sample"),
    ("stop token <|endoftext|> for a ChatML model", lambda t: generation(eos_token_id=ENDOFTEXT), "generation_eos",
     "fail", "eos_token_id = 2"),
    ("text rows closing a turn twice", lambda t: doubled_end_findings([[5, 6, IM_END, NEWLINE, IM_END]] * 3, IM_END,
                                                                       "<|im_end|>", [NEWLINE]),
     "doubled_end_of_turn", "fail", "strip the trailing"),
    ("full fine-tune lr 2e-3", lambda t: hyperparameter_findings(2e-3, 0.1, False, 135_000_000, 500, 16, -1, 3),
     "learning_rate", "fail", "lr <="),
    ("LoRA at a full fine-tune's lr", lambda t: hyperparameter_findings(2e-5, 0.1, True, 135_000_000, 500, 16, -1, 3),
     "learning_rate", "warn", "LoRA"),
    ("fewer rows than one batch", lambda t: hyperparameter_findings(1e-4, 0.1, False, 135_000_000, 8, 16, -1, 3),
     "steps_per_epoch", "fail", "gradient_accumulation_steps"),
    ("fp16 weights with fp16 AMP", lambda t: precision_findings(True, False, "torch.float16", "cuda", (7, 5)),
     "precision", "fail", "float32"),
]


@pytest.mark.parametrize("case, findings, check, status, fix_word", BROKEN, ids=[c[0] for c in BROKEN])
def test_broken_setup_is_named_with_its_fix(tmp_path, case, findings, check, status, fix_word):
    found = {f.check: f for f in findings(tmp_path)}
    assert check in found, f"{case}: no {check!r} finding in {sorted(found)}"
    assert found[check].status == status, found[check]
    assert fix_word in found[check].fix, found[check].fix


def test_the_table_covers_enough_setups():
    assert len(BROKEN) >= 15 and len({c[2] for c in BROKEN}) >= 12


# The lab's own recipes, each with the data it trains (packing merges rows: about 3 per packed row at 512 tokens).
HEALTHY = [
    ("ci on a CPU", CI, 160),
    ("colab on a T4 (fp16 AMP)", recipe_for("t4", "colab", total_memory_gib=15.0), 500),
    ("colab on an A100 (bf16, flash-attention, packed)", recipe_for("ampere", "colab", total_memory_gib=80.0,
                                                                   flash_backend="kernels"), 500 // 3),
    ("full on an H100 (packed)", recipe_for("ampere", "full", total_memory_gib=80.0, flash_backend="kernels"), 9500 // 3),
]


@pytest.mark.parametrize("case, recipe, rows", HEALTHY, ids=[c[0] for c in HEALTHY])
def test_no_false_alarm_on_the_lab_recipes(tmp_path, case, recipe, rows):
    # the recipe's SFTConfig fields (SFTConfig itself refuses fp16 on this CPU), with TrainingArguments' defaults
    args = type("Args", (), {"logging_strategy": "steps", "load_best_model_at_end": False, **recipe.sft_config_kwargs()})
    batches = math.ceil(min(rows, recipe.sizes.n_train_examples or rows) / recipe.sizes.per_device_train_batch_size)
    plan = plan_run(args, batches)
    findings = schedule_findings(args, plan, has_eval=True) + generation()
    assert [f for f in findings if f.status != "pass"] == [], f"{case}: {plan}"
    assert plan.eval_points >= 6, f"{case}: only {plan.eval_points} eval points ({plan})"


def test_plan_counts_like_the_trainer(tmp_path):
    """Steps, evaluations, checkpoints and warmup of the ci reference run, as its trainer logs them (30 steps: the base
    model's evaluation, then one every 5 steps; checkpoints at 15 and 30)."""
    plan = plan_run(_config(tmp_path), 40)
    assert (plan.total_steps, plan.eval_points, plan.save_points) == (30, 7, 2)
    accumulated = plan_run(_config(tmp_path, max_steps=-1, num_train_epochs=2, gradient_accumulation_steps=4), 10)
    assert accumulated.updates_per_epoch == 3 and accumulated.total_steps == 6  # ceil(10 / 4) per epoch
