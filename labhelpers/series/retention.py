"""What keeps the gain and cuts the cost: the reference run's two usual remedies against forgetting, trained the same
way on the same rows and steps, for notebook 12's retention table (LoRA is the third, trained by 12 itself).

* ``replay``: a share of the training rows is replaced by the base model's own greedy replies to outside prompts
  (:data:`labhelpers.run.generation.REPLAY_PROMPTS`, general and code), so every step also rehearses what it knew;
* ``lower_lr``: the reference run at a quarter of its learning rate: smaller steps drift less (and learn less).

    from labhelpers.series.retention import remedy_run
    final = remedy_run(RUN, recipe, MODEL_ID, DATASET, "replay")   # RUN/retention/replay/final, stored
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from labhelpers.model.hardware import Recipe

REPLAY_SHARE = 0.25  # of the training rows, replaced by the base model's replies to outside prompts
LOWER_LR_FACTOR = 0.25  # the lower learning rate, as a share of the reference run's
REMEDIES = {"replay": f"replay mix ({REPLAY_SHARE:.0%} of rows)", "lower_lr": f"lower LR (x{LOWER_LR_FACTOR:g})"}


def remedy_name(method: str) -> str:
    """The table's name of a remedy; ValueError naming the choices for another.

    >>> remedy_name("lower_lr")
    'lower LR (x0.25)'
    >>> remedy_name("dropout")
    Traceback (most recent call last):
    ...
    ValueError: unknown remedy 'dropout': choose one of replay, lower_lr
    """
    if method not in REMEDIES:
        raise ValueError(f"unknown remedy {method!r}: choose one of {', '.join(REMEDIES)}")
    return REMEDIES[method]


def mixed_rows(train: Any, replayed: Sequence[dict], seed: int = 42) -> Any:
    """``train`` with its last ``len(replayed)`` rows replaced by ``replayed``, shuffled: the same number of rows.

    >>> from datasets import Dataset
    >>> rows = Dataset.from_list([{"messages": [{"role": "user", "content": str(i)}]} for i in range(4)])
    >>> mixed = mixed_rows(rows, [{"messages": [{"role": "user", "content": "r"}]}])
    >>> len(mixed), sorted(r["messages"][0]["content"] for r in mixed)
    (4, ['0', '1', '2', 'r'])
    """
    from datasets import Dataset, concatenate_datasets

    if len(replayed) > len(train):
        raise ValueError(f"{len(replayed)} replayed rows for {len(train)} training rows: lower the share")
    kept = train.select(range(len(train) - len(replayed)))
    extra = Dataset.from_list([{"messages": row["messages"]} for row in replayed]).cast(kept.features)
    return concatenate_datasets([kept, extra]).shuffle(seed=seed)


def replay_rows(model: Any, tokenizer: Any, n: int, recipe: Recipe, store: Path | None = None) -> list[dict]:
    """``n`` rows of an outside prompt and the base model's own greedy reply (prompts cycled when n exceeds them)."""
    from labhelpers.run.generation import REPLAY_PROMPTS, generate_replies

    prompts = [REPLAY_PROMPTS[i % len(REPLAY_PROMPTS)] for i in range(n)]
    unique = list(dict.fromkeys(prompts))
    with recipe.autocast():
        replies, _ = generate_replies(model, tokenizer, unique, max_new_tokens=recipe.lesson.max_new_tokens,
                                      batch_size=recipe.lesson.generation_batch_size, store=store)
    reply_of = dict(zip(unique, replies))
    return [{"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": reply_of[p].strip()}]}
            for p in prompts if reply_of[p].strip()]


def remedy_config(recipe: Recipe, method: str, output_dir: Path) -> Any:
    """The reference run's SFTConfig for ``method``: evaluated at the start and the end only, no checkpoints, so the
    model kept is the last step's (the reference keeps its best evaluation's; with evaluations at the start and the
    end only, that is the last step's too unless the run got worse than the base).

    >>> from labhelpers.model.hardware import recipe_for
    >>> config = remedy_config(recipe_for("cpu", "ci"), "lower_lr", "/tmp/out")
    >>> config.learning_rate, config.save_strategy.value, config.load_best_model_at_end, config.eval_steps
    (5e-05, 'no', False, 30)
    """
    remedy_name(method)
    steps = recipe.sizes.max_steps
    lr = recipe.sizes.learning_rate * (LOWER_LR_FACTOR if method == "lower_lr" else 1.0)
    return recipe.reference_config(output_dir, learning_rate=lr, save_strategy="no", load_best_model_at_end=False,
                                   eval_steps=steps if steps > 0 else recipe.sizes.eval_steps)


def remedy_run(run: Path, recipe: Recipe, model_id: str, dataset: str, method: str) -> Path:
    """Train the reference run with one remedy into ``run/retention/<method>/final`` (read back when that folder holds
    this exact run: the same settings and rows) and return that folder."""
    from trl import SFTTrainer

    from labhelpers.data.datasets import load_chat_dataset
    from labhelpers.model.loading import load_model_and_tokenizer
    from labhelpers.run.folder import content_key
    from labhelpers.run.training import config_fingerprint, keep_rows_that_fit, select_splits, train_or_explain_oom

    folder = run / "retention" / method
    config = remedy_config(recipe, method, folder / "out")
    model, tokenizer = load_model_and_tokenizer(model_id, recipe, verbose=False)
    data = load_chat_dataset(dataset)
    data["train"] = keep_rows_that_fit(data["train"], tokenizer, recipe.sizes.max_length)
    train, evaluation = select_splits(data, recipe.sizes.n_train_examples, recipe.sizes.n_eval_examples)
    train, evaluation = train.select_columns(["messages"]), evaluation.select_columns(["messages"])
    if method == "replay":
        replayed = replay_rows(model, tokenizer, round(len(train) * REPLAY_SHARE), recipe, store=run / "replies")
        train = mixed_rows(train, replayed)
    key = {"config": config_fingerprint(config), "rows": content_key([row["messages"] for row in train])}
    final, made_with = folder / "final", folder / "made_with.json"
    if (final / "model.safetensors").is_file() and made_with.is_file() and json.loads(made_with.read_text()) == key:
        print(f"reused the {remedy_name(method)} run from {final} (same settings and rows; delete it to train again)")
        return final
    trainer = SFTTrainer(model=model, args=config, train_dataset=train, eval_dataset=evaluation,
                         processing_class=tokenizer)
    train_or_explain_oom(trainer, recipe)
    trainer.save_model(str(final))
    tokenizer.save_pretrained(str(final))
    runtime = next((e["train_runtime"] for e in reversed(trainer.state.log_history) if "train_runtime" in e), None)
    (folder / "log_history.json").write_text(json.dumps(trainer.state.log_history))
    made_with.write_text(json.dumps(key))
    print(f"{remedy_name(method)}: trained {trainer.state.global_step} steps in {runtime:.0f} s")
    return final


def remedy_seconds(run: Path, method: str) -> float | None:
    """Training seconds of a finished remedy run (its stored log), or None."""
    path = run / "retention" / method / "log_history.json"
    if not path.is_file():
        return None
    log = json.loads(path.read_text())
    return next((e["train_runtime"] for e in reversed(log) if "train_runtime" in e), None)
