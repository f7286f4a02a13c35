"""The series' reference run: notebook 06's run, trained the same way wherever a later notebook needs it.

Each Colab runtime is fresh, so 07, 09, 12 and 13 call :func:`ensure_tuned_model`: it returns 06's tuned model from the
run folder, or trains the reference run first (``recipe.reference_config``, the configuration 06's check asks for)
with the watchers 06 attaches, the sanity monitor, samples while training and TensorBoard. It sits on the floor above
the sanity assistant because it uses it; what a finished run leaves is :func:`labhelpers.run.training.save_finished_run`,
the one both paths call.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from labhelpers.model.hardware import Recipe


def reference_sft_run(run: Path, recipe: Recipe, model_id: str, dataset: str, callbacks: list | None = None) -> Path:
    """Train the reference run of notebook 06 into ``run/sft`` and save the model to ``run/sft/final``, watched as 06
    watches it: the sanity monitor, samples of three held-out prompts at evaluations (``run/samples.jsonl``) and
    TensorBoard (``run/tensorboard/sft``).

    ``callbacks``: extra ``TrainerCallback``s (a benchmark's clock, say); the run itself is the same with or without.
    """
    from trl import SFTTrainer

    from labhelpers.data.datasets import load_chat_dataset
    from labhelpers.model.loading import load_model_and_tokenizer
    from labhelpers.run.folder import checkpoint_dir
    from labhelpers.run.tracking import tensorboard_callback, tensorboard_dir
    from labhelpers.run.training import (keep_rows_that_fit, resume_point, save_finished_run, select_splits,
                                         train_or_explain_oom)
    from labhelpers.sanity import SanityMonitor
    from labhelpers.sanity.samples import LiveSamples

    model, tokenizer = load_model_and_tokenizer(model_id, recipe)
    data = load_chat_dataset(dataset)
    data["train"] = keep_rows_that_fit(data["train"], tokenizer, recipe.sizes.max_length)
    train, evaluation = select_splits(data, recipe.sizes.n_train_examples, recipe.sizes.n_eval_examples)
    # no_robots' `prompt` string column would make TRL treat the rows as non-conversational
    train, evaluation = train.select_columns(["messages"]), evaluation.select_columns(["messages"])
    config = recipe.reference_config(checkpoint_dir(run))
    board = tensorboard_dir(run, "sft")
    watchers = [SanityMonitor(), LiveSamples(data["test"], recipe, run, tensorboard=board, train_rows=train),
                tensorboard_callback(board)]
    trainer = SFTTrainer(model=model, args=config, train_dataset=train, eval_dataset=evaluation, processing_class=tokenizer,
                         callbacks=watchers + list(callbacks or []))
    train_or_explain_oom(trainer, recipe, resume_from_checkpoint=resume_point(config))
    return save_finished_run(run, trainer, tokenizer)


def ensure_tuned_model(run: Path, recipe: Recipe, model_id: str, dataset: str) -> Path:
    """Folder of the fine-tuned model from notebook 06; trains the reference run first when it is missing.

    Two notebooks of one run folder open at once (two Jupyter tabs, two lanes of ``./lab.sh run``) train it once: the
    second waits for the first (:func:`labhelpers.run.training.training_lock`) and then finds the model or the finished
    run's checkpoints.
    """
    from labhelpers.run.folder import checkpoint_dir
    from labhelpers.run.training import training_lock

    final = run / "sft" / "final"
    if (final / "model.safetensors").is_file():  # moved in last: its presence means a whole model
        return final
    with training_lock(checkpoint_dir(run), "training the reference run"):
        if (final / "model.safetensors").is_file():  # saved by the notebook this one waited for
            return final
        print(f"No fine-tuned model in {final} (notebook 06 has not run in this run folder): training the "
              f"reference run now ({recipe.profile} profile).")
        return reference_sft_run(run, recipe, model_id, dataset)
