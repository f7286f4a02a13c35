"""Notebook 06's TODO, the `SFTConfig`, as students write it from the TODO's list: near misses that the check must
reject with their own mistake named, right answers written differently from the solution that it must accept (also
without the `activation_checkpointing` line the TODO never names), and deliberate sizes that get a note."""

from __future__ import annotations

import time
import warnings

import pytest
from transformers import IntervalStrategy, SchedulerType
from trl import SFTConfig

from labhelpers.checks import TodoCheckError, check_sft_config


def from_the_list(recipe, output_dir, **changes):
    """What a student writes from the TODO's bullet list, field by field (no activation_checkpointing: not listed)."""
    sizes = recipe.sizes
    values = dict(
        output_dir=str(output_dir),
        max_length=sizes.max_length,
        per_device_train_batch_size=sizes.per_device_train_batch_size,
        per_device_eval_batch_size=sizes.per_device_eval_batch_size,
        gradient_accumulation_steps=sizes.gradient_accumulation_steps,
        learning_rate=sizes.learning_rate,
        lr_scheduler_type=sizes.lr_scheduler_type,
        num_train_epochs=sizes.num_train_epochs,
        max_steps=sizes.max_steps,
        warmup_steps=sizes.warmup_ratio,
        fp16=recipe.fp16, bf16=recipe.bf16, use_cpu=recipe.use_cpu,
        assistant_only_loss=True,
        packing=recipe.packing, train_sampling_strategy=recipe.train_sampling_strategy,
        eval_strategy="steps", eval_steps=sizes.eval_steps, save_strategy="steps", save_steps=sizes.save_steps,
        eval_on_start=True, load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=False,
        save_total_limit=2,
        logging_steps=sizes.logging_steps, logging_nan_inf_filter=False, report_to="none", seed=42,
    )
    values.update(changes)
    for key in [k for k, v in values.items() if v is LEAVE_OUT]:
        del values[key]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TRL's own default for the old gradient_checkpointing name
        return SFTConfig(**values)


LEAVE_OUT = object()

# (name, changes to the list, distinctive words of the message)
WRONG = [
    ("assistant_only_loss left out", dict(assistant_only_loss=LEAVE_OUT), "assistant_only_loss is False; set "
                                                                          "assistant_only_loss=True"),
    ("bf16 left out on the CPU", dict(bf16=LEAVE_OUT), "bf16 is True; set bf16=False"),
    ("eval_on_start left out", dict(eval_on_start=LEAVE_OUT), "eval_on_start is False"),
    ("NaN filter left on", dict(logging_nan_inf_filter=LEAVE_OUT), "logging_nan_inf_filter is True"),
    ("higher is better", dict(greater_is_better=True), "greater_is_better is True; set greater_is_better=False"),
    ("learning rate left out", dict(learning_rate=LEAVE_OUT), "learning_rate is 2e-05, SFTConfig's default"),
    ("max_steps left out", dict(max_steps=LEAVE_OUT), "max_steps is -1, SFTConfig's default"),
    ("eval_steps left out", dict(eval_steps=LEAVE_OUT), "eval_steps is not set, so the Trainer evaluates every "
                                                        "logging_steps"),
    ("another metric", dict(metric_for_best_model="eval_accuracy"), "metric_for_best_model is 'eval_accuracy'"),
    ("packing where the recipe does not", dict(packing=True), "packing is True; set packing=False"),
    ("keeps every checkpoint", dict(save_total_limit=LEAVE_OUT), "save_total_limit is None, SFTConfig's default"),
    ("max_length left out", dict(max_length=LEAVE_OUT), "max_length is 1024, SFTConfig's default"),
    ("best model not loaded", dict(load_best_model_at_end=LEAVE_OUT, metric_for_best_model=LEAVE_OUT,
                                   greater_is_better=LEAVE_OUT), "load_best_model_at_end is False"),
]

# (name, changes, words a note must contain or None): accepted
RIGHT = [
    ("the TODO's list, nothing more", {}, None),
    ("'loss' for the metric, greater_is_better left to the Trainer",
     dict(metric_for_best_model="loss", greater_is_better=LEAVE_OUT), None),
    ("metric left out (load_best_model_at_end judges the loss)",
     dict(metric_for_best_model=LEAVE_OUT, greater_is_better=LEAVE_OUT), None),
    ("enums, a warmup step count, report_to and seed left out",
     dict(eval_strategy=IntervalStrategy.STEPS, save_strategy="STEPS".lower(), lr_scheduler_type=SchedulerType.COSINE,
          warmup_steps=3, report_to=LEAVE_OUT, seed=LEAVE_OUT), None),
    ("a deliberate learning rate and max_length", dict(learning_rate=1e-4, max_length=256),
     "learning_rate is 0.0001, the recipe's is 0.0002 (sizes.learning_rate): kept as your choice"),
    ("the solution's extra line", dict(activation_checkpointing=False), None),
    ("the old name of that line", dict(gradient_checkpointing=False), None),
]


@pytest.mark.parametrize("name, changes, words", WRONG, ids=[w[0] for w in WRONG])
def test_wrong_config_is_named(cpu_recipe, tmp_path, name, changes, words):
    config = from_the_list(cpu_recipe, tmp_path, **changes)
    with pytest.raises(TodoCheckError) as err:
        check_sft_config(config, cpu_recipe)
    assert words in str(err.value) and "Fix:" in str(err.value), str(err.value)


@pytest.mark.parametrize("name, changes, note", RIGHT, ids=[r[0] for r in RIGHT])
def test_right_config_is_accepted(cpu_recipe, tmp_path, name, changes, note, capsys):
    check_sft_config(from_the_list(cpu_recipe, tmp_path, **changes), cpu_recipe)
    out = capsys.readouterr().out
    assert out.startswith("✓ SFTConfig fits the ci recipe's run"), out
    if note:
        assert note in out, out


@pytest.mark.parametrize("profile", ["colab", "full"])
def test_the_list_fits_the_other_cpu_recipes(profile, tmp_path, capsys):
    """Epochs instead of max_steps, shares of the run for eval/save/logging: the TODO's list still passes."""
    from labhelpers.model.hardware import recipe_for

    recipe = recipe_for("cpu", profile)
    check_sft_config(from_the_list(recipe, tmp_path), recipe)
    assert capsys.readouterr().out.startswith(f"✓ SFTConfig fits the {profile} recipe's run")
    with pytest.raises(TodoCheckError, match=r"warmup_steps is 0, SFTConfig's default \(left out\?\); set "
                                             r"warmup_steps=sizes.warmup_ratio \(0.1\)"):
        check_sft_config(from_the_list(recipe, tmp_path, warmup_steps=LEAVE_OUT), recipe)


def test_activation_checkpointing_left_out_is_a_note_with_its_reason(cpu_recipe, tmp_path, capsys):
    config = from_the_list(cpu_recipe, tmp_path)
    assert config.activation_checkpointing is True  # TRL 1.x turns it on when the field is left out
    check_sft_config(config, cpu_recipe)
    out = capsys.readouterr().out
    assert "note: activation_checkpointing is True (TRL's SFTConfig turns it on unless told otherwise)" in out
    assert "~20% more time per step" in out and "activation_checkpointing=sizes.gradient_checkpointing" in out


def test_best_model_not_loaded_is_the_one_problem_named(cpu_recipe, tmp_path):
    config = from_the_list(cpu_recipe, tmp_path, load_best_model_at_end=LEAVE_OUT, metric_for_best_model=LEAVE_OUT,
                           greater_is_better=LEAVE_OUT)
    with pytest.raises(TodoCheckError) as err:
        check_sft_config(config, cpu_recipe)
    assert str(err.value).count("\n  - ") == 1, str(err.value)  # not also metric_for_best_model / greater_is_better


def test_every_problem_is_listed_at_once(cpu_recipe, tmp_path):
    config = from_the_list(cpu_recipe, tmp_path, assistant_only_loss=LEAVE_OUT, eval_on_start=LEAVE_OUT)
    with pytest.raises(TodoCheckError) as err:
        check_sft_config(config, cpu_recipe)
    assert "assistant_only_loss is False" in str(err.value) and "eval_on_start is False" in str(err.value)


def test_not_an_sft_config(cpu_recipe):
    with pytest.raises(TodoCheckError, match="config is a dict, not an SFTConfig"):
        check_sft_config({"learning_rate": 2e-4}, cpu_recipe)


def test_check_cost_is_small(cpu_recipe, tmp_path, capsys):
    config = from_the_list(cpu_recipe, tmp_path)
    start = time.perf_counter()
    check_sft_config(config, cpu_recipe)
    seconds = time.perf_counter() - start
    print(f"check_sft_config: {seconds:.2f} s")
    assert seconds < 5
