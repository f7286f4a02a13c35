"""Training plumbing around ``SFTTrainer``: row selection, checkpoints, resume, what a finished run leaves.

The lesson (choosing the ``SFTConfig``, building the trainer, reading the curves) is notebook 06.
This module keeps what is not the lesson: finding the newest *complete* checkpoint to resume from,
refusing to mix checkpoints of a different configuration, and saving a finished run (:func:`save_finished_run`).
The reference run that later notebooks train when 06 has not is :mod:`labhelpers.series.reference`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

if TYPE_CHECKING:
    from labhelpers.model.hardware import Recipe

# Files a checkpoint folder needs before it can be resumed from. Trainer writes trainer_state.json
# last, so a folder without it was cut off mid-save (e.g. a Colab disconnect) and must not be loaded.
CHECKPOINT_FILES = ("trainer_state.json", "model.safetensors", "optimizer.pt", "scheduler.pt")
FINGERPRINT_FILE = "config_fingerprint.json"
# SFTConfig fields that change what a run computes (logging and saving cadence do not).
FINGERPRINT_FIELDS = (
    "learning_rate", "lr_scheduler_type", "warmup_steps", "max_steps", "num_train_epochs", "max_length",
    "per_device_train_batch_size", "gradient_accumulation_steps", "assistant_only_loss", "completion_only_loss",
    "packing", "packing_strategy", "seed", "weight_decay", "max_grad_norm", "optim", "bf16", "fp16",
)


def select_splits(data: Any, n_train: int | None, n_eval: int, seed: int = 42) -> tuple[Any, Any]:
    """Training rows and an ``n_eval``-row eval split, both from the *train* split (the test split stays held out).

    ``n_train=None`` trains on every row the eval split leaves.
    """
    train = data["train"].shuffle(seed=seed)
    n_train = n_train if n_train is not None else len(train) - n_eval
    if n_train + n_eval > len(train):
        raise ValueError(
            f"asked for {n_train} train + {n_eval} eval rows but the train split has {len(train)}; "
            "lower n_train_examples / n_eval_examples (recipe.with_sizes(...))"
        )
    return train.select(range(n_train)), train.select(range(n_train, n_train + n_eval))


def conversation_lengths(rows: Any, tokenizer: Any) -> list[int]:
    """Token count of each row's whole conversation as the chat template renders it for training."""
    return [len(tokenizer.apply_chat_template(row["messages"], tokenize=True, return_dict=True)["input_ids"]) for row in rows]


def keep_rows_that_fit(rows: Any, tokenizer: Any, max_length: int) -> Any:
    """The rows whose whole conversation fits in ``max_length`` tokens; says how many were dropped.

    Truncation cuts from the end, where the reply is: a row longer than ``max_length`` loses (part of)
    its answer and its stop token, or all of it (then TRL drops the row). Dropping them up front is
    explicit; the alternative is a larger ``max_length``.
    """
    lengths = conversation_lengths(rows, tokenizer)
    keep = [i for i, n in enumerate(lengths) if n <= max_length]
    print(f"kept {len(keep)} of {len(lengths)} rows that fit in max_length={max_length} tokens "
          f"(longest row: {max(lengths)} tokens)")
    return rows.select(keep)


def config_fingerprint(config: Any) -> dict[str, Any]:
    """The fields of an ``SFTConfig`` that define the run (for deciding whether a checkpoint belongs to it).

    >>> class C: learning_rate = 1e-4; max_steps = 8
    >>> config_fingerprint(C())["learning_rate"]
    0.0001
    """
    values = {name: getattr(config, name, None) for name in FINGERPRINT_FIELDS}
    return {k: (v.value if hasattr(v, "value") else v) for k, v in values.items()}


def _step(folder: Path) -> int:
    match = re.fullmatch(r"checkpoint-(\d+)", folder.name)
    return int(match.group(1)) if match else -1


def is_complete_checkpoint(folder: Path) -> bool:
    """True when ``folder`` holds every file resuming needs and a readable ``trainer_state.json``."""
    if not all((folder / name).is_file() for name in CHECKPOINT_FILES):
        return False
    try:
        json.loads((folder / "trainer_state.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return True


def latest_checkpoint(output_dir: str | Path, *, verbose: bool = True) -> Path | None:
    """Newest complete ``checkpoint-N`` in ``output_dir``; incomplete ones are reported and skipped.

    >>> import tempfile; latest_checkpoint(tempfile.mkdtemp()) is None
    True
    """
    folders = sorted((p for p in Path(output_dir).glob("checkpoint-*") if _step(p) >= 0), key=_step, reverse=True)
    for folder in folders:
        if is_complete_checkpoint(folder):
            return folder
        if verbose:
            missing = [n for n in CHECKPOINT_FILES if not (folder / n).is_file()]
            print(f"skipping {folder.name}: incomplete (half-written save?), missing {missing or ['valid trainer_state.json']}")
    return None


def resume_point(config: Any, *, resume: bool = True) -> Path | None:
    """Checkpoint to pass to ``trainer.train(resume_from_checkpoint=...)``, or None to start fresh.

    Resumes only when the checkpoints in ``config.output_dir`` were made with the same run-defining
    settings (see :data:`FINGERPRINT_FIELDS`); otherwise it raises instead of silently mixing two runs.
    Records the fingerprint for the next call.
    """
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    fingerprint_path = output_dir / FINGERPRINT_FILE
    current = config_fingerprint(config)
    checkpoint = latest_checkpoint(output_dir) if resume else None
    if checkpoint is not None and fingerprint_path.is_file():
        previous = json.loads(fingerprint_path.read_text())
        changed = {k: (previous.get(k), v) for k, v in current.items() if previous.get(k) != v}
        if changed:
            details = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
            raise ValueError(
                f"{output_dir} holds checkpoints of a different configuration ({details}). Nothing was "
                "deleted. Set RESUME = False to start over in a fresh folder, or restore the old settings."
            )
    fingerprint_path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    if checkpoint is not None:
        print(f"resuming from {checkpoint} (step {_step(checkpoint)})")
    return checkpoint


FINISHED_RUN_FILE = "finished_run.json"


def finished_run_or_train(config: Any, train_rows: Any, train: Callable[[], list[dict[str, Any]]],
                          extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The ``log_history`` of this exact run when ``config.output_dir`` holds it finished, else ``train()``'s (stored).

    "This exact run" means the same run-defining settings (:data:`FINGERPRINT_FIELDS`), the same training rows and the
    same ``extra`` settings that the config does not hold (e.g. a LoRA adapter's rank and targets).
    A re-run cell, a second pass over the notebooks (CI's nbval) or another notebook asking for the same run reads
    the curves in milliseconds instead of training again; delete the folder to train again.

    >>> import tempfile; from types import SimpleNamespace
    >>> cfg = SimpleNamespace(output_dir=tempfile.mkdtemp(), learning_rate=1e-3, max_steps=2)
    >>> calls = []
    >>> def train(): calls.append(1); return [{"loss": 2.0, "step": 1}]
    >>> first = finished_run_or_train(cfg, [{"messages": []}], train)
    >>> again = finished_run_or_train(cfg, [{"messages": []}], train)  # doctest: +ELLIPSIS
    reused the finished run from .../finished_run.json (same inputs; delete the file to compute it again)
    >>> again == first, len(calls)
    (True, 1)
    """
    from labhelpers.run.folder import content_key, reuse_or_compute

    rows = [row["messages"] if isinstance(row, dict) and "messages" in row else row for row in train_rows]
    key = {"config": config_fingerprint(config), "rows": content_key(rows), "extra": extra or {}}
    return reuse_or_compute(Path(config.output_dir) / FINISHED_RUN_FILE, key, train, what="the finished run")


def fresh_output_dir(base: Path) -> Path:
    """``base`` if it holds no checkpoints, else the first free ``base-2``, ``base-3``... (nothing is overwritten).

    >>> import tempfile; p = Path(tempfile.mkdtemp()) / "sft"; fresh_output_dir(p).name
    'sft'
    """
    candidate, n = base, 1
    while candidate.exists() and any(candidate.glob("checkpoint-*")):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def log_summary(log_history: list[dict[str, Any]]) -> dict[str, Any]:
    """First/last train and eval loss and the best eval step from ``trainer.state.log_history``.

    >>> log_summary([{"loss": 2.0, "step": 1}, {"eval_loss": 1.9, "step": 1}, {"loss": 1.0, "step": 2}])["last_train_loss"]
    1.0
    """
    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e]
    evals = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e]
    best = min(evals, key=lambda se: se[1]) if evals else (None, None)
    return {
        "first_train_loss": train[0][1] if train else None,
        "last_train_loss": train[-1][1] if train else None,
        "first_eval_loss": evals[0][1] if evals else None,
        "last_eval_loss": evals[-1][1] if evals else None,
        "best_eval_step": best[0],
        "best_eval_loss": best[1],
        "train_curve": train,
        "eval_curve": evals,
    }


FINISHED_RUN_METRICS = ("first_train_loss", "last_train_loss", "first_eval_loss", "last_eval_loss", "best_eval_loss",
                        "best_eval_step", "train_curve", "eval_curve", "log_history", "best_checkpoint")


def save_finished_run(run: Path, trainer: Any, tokenizer: Any) -> Path:
    """What a finished reference run leaves in the run folder, whoever trained it (notebook 06 or
    :func:`labhelpers.series.reference.reference_sft_run`): the model and tokenizer in ``run/sft/final`` (what 09-13 load) and
    ``metrics/training.json`` with the log summary, the whole log history and the best checkpoint (what 07 reads).
    Returns the final model's folder.

    The files are written beside it first and then moved in one by one, the weights last: a notebook reading the folder
    meanwhile (another lane, another tab) reads a whole file, old or new, and a disconnect mid-save keeps the old
    model."""
    from labhelpers.run.folder import save_metrics

    final = run / "sft" / "final"
    staging = final.with_name(f".final.{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    trainer.save_model(str(staging))
    tokenizer.save_pretrained(str(staging))
    final.mkdir(parents=True, exist_ok=True)
    for path in sorted(staging.iterdir(), key=lambda p: p.name == "model.safetensors"):  # weights last: "it is there"
        os.replace(path, final / path.name)
    staging.rmdir()
    save_metrics(run, "training", {**log_summary(trainer.state.log_history), "log_history": trainer.state.log_history,
                                   "best_checkpoint": trainer.state.best_model_checkpoint})
    return final


def early_stopping_step(eval_curve: list[tuple[int, float]], patience: int, threshold: float = 0.0) -> tuple[int, int] | None:
    """``(stop_step, best_step)`` where ``EarlyStoppingCallback(patience)`` would stop, or None if it never would.

    Like transformers' callback: an eval counts as better only when it beats the best by more than
    ``threshold``; after ``patience`` evals in a row without improvement, training stops.

    >>> early_stopping_step([(2, 2.0), (4, 1.8), (6, 1.9), (8, 2.1), (10, 2.3)], patience=2)
    (8, 4)
    >>> early_stopping_step([(2, 2.0), (4, 1.8)], patience=2) is None
    True
    """
    best_step, best, waited = None, float("inf"), 0
    for step, loss in eval_curve:
        if loss < best - threshold:
            best_step, best, waited = step, loss, 0
        else:
            waited += 1
            if waited >= patience:
                return step, best_step
    return None


def diagnose_overfitting(summary: dict[str, Any], patience: int = 2) -> str:
    """One-paragraph verdict on train vs eval loss from :func:`log_summary`, with mitigations when needed.

    >>> s = log_summary([{"loss": 2.0, "step": 2}, {"eval_loss": 2.1, "step": 2}, {"loss": 0.5, "step": 4},
    ...                  {"eval_loss": 2.4, "step": 4}, {"loss": 0.1, "step": 6}, {"eval_loss": 2.9, "step": 6}])
    >>> diagnose_overfitting(s).split(":")[0]
    'Overfitting'
    """
    evals, train = summary["eval_curve"], summary["train_curve"]
    if len(evals) < 2 or not train:
        return "Not enough evaluations to judge (need at least two): evaluate more often (eval_steps)."
    stop = early_stopping_step(evals, patience)
    if summary["last_eval_loss"] > summary["best_eval_loss"] and summary["last_train_loss"] < train[0][1]:
        where = f"; early stopping (patience {patience}) would stop at step {stop[0]}" if stop else ""
        return (
            f"Overfitting: train loss fell {train[0][1]:.2f} -> {summary['last_train_loss']:.2f} while eval loss rose "
            f"from its best {summary['best_eval_loss']:.2f} (step {summary['best_eval_step']}) to "
            f"{summary['last_eval_loss']:.2f}{where}. Mitigations: keep the best checkpoint "
            "(load_best_model_at_end) and stop early (EarlyStoppingCallback); train fewer epochs or at a lower "
            "learning rate; add more (and more varied) data, or regularise (weight decay, LoRA instead of a full fine-tune)."
        )
    return (
        f"No overfitting yet: eval loss {summary['first_eval_loss']:.2f} -> {summary['last_eval_loss']:.2f} is at or "
        f"near its best ({summary['best_eval_loss']:.2f}) while train loss fell to {summary['last_train_loss']:.2f}."
    )


def release_memory() -> None:
    """Free what deleted models and trainers held: Python's cycles, then the CUDA cache (no-op on a CPU).

    >>> release_memory()
    """
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class TrainingOutOfMemory(RuntimeError):
    """Training ran out of accelerator memory; the message holds the estimate and the changes that would fit."""


def out_of_memory_message(model: Any, recipe: Recipe, gpu_gib: float | None) -> str:
    """The estimator's breakdown for this run and, for a ``gpu_gib`` card, the concrete changes that would fit."""
    from labhelpers.model.memory import estimate_memory

    estimate = estimate_memory(model, recipe)
    lines = ["Training ran out of GPU memory. Estimated need for this run:", str(estimate)]
    tips = estimate.advice(gpu_gib) if gpu_gib else []
    if tips:
        lines += [f"Changes that would fit a {gpu_gib:g} GiB card (each alone):"] + [f"  - {tip}" for tip in tips]
    else:
        lines.append("The estimate fits this card: other processes may hold memory (restart the runtime), or the "
                     "longest rows exceed the estimate; lower per_device_train_batch_size or max_length.")
    lines.append("Change the SFTConfig (or recipe.with_sizes(...)) and re-run: training resumes from the last checkpoint.")
    return "\n".join(lines)


def load_finished_run(trainer: Any, checkpoint: str | Path | None) -> Any | None:
    """A ``TrainOutput`` when ``checkpoint`` already holds the whole run (its step >= ``max_steps``): its trainer state
    and its best weights (or its own) are loaded into ``trainer``, its curves are drawn by the trainer's callbacks
    that can (``LiveCurves.show_log``), and nothing is trained. None otherwise.

    Needed because transformers 5.x, asked to resume a finished run that ends mid-epoch, trains one step past
    ``max_steps`` (measured: a 30-step run over 40 batches resumed to checkpoint-31, then 32 on the next re-run).
    """
    if checkpoint is None or trainer.args.max_steps <= 0:
        return None
    from safetensors.torch import load_model
    from transformers import TrainerState
    from transformers.trainer_utils import TrainOutput

    checkpoint = Path(checkpoint)
    state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
    if state.global_step < trainer.args.max_steps:
        return None
    best = checkpoint
    if trainer.args.load_best_model_at_end and state.best_model_checkpoint:
        best = checkpoint.parent / Path(state.best_model_checkpoint).name  # the folder may have moved (Drive)
    load_model(trainer.model, str(best / "model.safetensors"))
    trainer.state = state
    print(f"the run in {checkpoint.parent} is finished (step {state.global_step} of {trainer.args.max_steps}): "
          f"loaded {best.name}{' (the best evaluated)' if best != checkpoint else ''} instead of training again")
    for callback in trainer.callback_handler.callbacks:  # the curves of the loaded run, as training would draw them
        if hasattr(callback, "show_log"):
            callback.show_log(state.log_history)
    losses = [e["loss"] for e in state.log_history if "loss" in e]
    return TrainOutput(state.global_step, sum(losses) / len(losses) if losses else float("nan"),
                       {"global_step": state.global_step, "trained_now": 0})


def epoch_label(epoch: float, planned: float) -> str:
    """The progress table's epoch column: whole epochs as integers, a share with two decimals.

    >>> epoch_label(0.75, 1), epoch_label(2.0, 3), epoch_label(1 / 3, 1)
    ('Epoch 0.75/1', 'Epoch 2/3', 'Epoch 0.33/1')
    """
    shown = int(epoch) if int(epoch) == epoch else f"{epoch:.2f}"
    return f"Epoch {shown}/{planned:g}"


def show_exact_epochs(trainer: Any) -> None:
    """Swap transformers' notebook progress table for one whose last line says the epoch reached: its own rounds the
    final epoch down, so a 30-step run over 0.75 of an epoch ends on "Epoch 0/1", as if nothing had been trained."""
    handler = getattr(trainer, "callback_handler", None)
    if handler is None:
        return
    from transformers.utils.notebook import NotebookProgressCallback

    class ExactEpochProgress(NotebookProgressCallback):
        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.training_tracker is not None:
                self.training_tracker.update(state.global_step, comment=epoch_label(state.epoch, state.num_train_epochs),
                                             force_update=True)
            self.training_tracker = None

    handler.callbacks = [ExactEpochProgress() if type(cb) is NotebookProgressCallback else cb
                         for cb in handler.callbacks]


@contextlib.contextmanager
def training_guards(trainer: Any, recipe: Recipe, checkpoint: str | Path | None = None,
                    gpu_gib: float | None = None) -> Iterator[None]:
    """Around ``trainer.train(...)``: the notebook's progress table shows the epoch reached (0.75, not 0; see
    :func:`show_exact_epochs`), a resumed run skips ``eval_on_start`` (its checkpoint's log already has that
    evaluation; transformers would add a second point at the resume step), running out of GPU memory stops with
    :func:`out_of_memory_message` (the estimate and what would fit) instead of a CUDA traceback, and a second notebook
    training into the same folder at the same time waits for the first (:func:`training_lock`), then asks to be run
    again if the first left newer checkpoints than the one it meant to resume.

        with training_guards(trainer, recipe, checkpoint):
            trainer.train(resume_from_checkpoint=checkpoint)
    """
    import torch

    show_exact_epochs(trainer)
    start_eval = trainer.args.eval_on_start
    trainer.args.eval_on_start = start_eval and checkpoint is None
    output_dir = getattr(trainer.args, "output_dir", None)  # None: a stand-in trainer, nothing to share
    lock = training_lock(output_dir, f"a training run into {output_dir}") if output_dir else contextlib.nullcontext(False)
    try:
        with lock as waited:
            if waited and latest_checkpoint(output_dir, verbose=False) != (Path(checkpoint) if checkpoint else None):
                raise RuntimeError(
                    f"another notebook trained into {output_dir} while this one waited for it, so the checkpoint "
                    f"chosen before ({checkpoint}) is stale. Fix: run this cell again: it resumes from (or loads) "
                    "what that run left.")
            yield
    except torch.OutOfMemoryError:
        if gpu_gib is None and torch.cuda.is_available():
            gpu_gib = torch.cuda.get_device_properties(0).total_memory / 1024**3
        raise TrainingOutOfMemory(out_of_memory_message(trainer.model, recipe, gpu_gib)) from None
    finally:
        trainer.args.eval_on_start = start_eval


def training_lock(output_dir: Path, what: str) -> contextlib.AbstractContextManager[bool]:
    """One training at a time into ``output_dir`` (its checkpoints would mix): the lock file ``training.lock`` in it,
    held while a run trains there (:func:`training_guards`, :func:`labhelpers.series.reference.ensure_tuned_model`).

    >>> import tempfile; folder = Path(tempfile.mkdtemp())
    >>> with training_lock(folder, "a demo") as waited:
    ...     waited, (folder / "training.lock").is_file()
    (False, True)
    """
    from labhelpers.run.folder import held_alone

    return held_alone(Path(output_dir) / "training.lock", what)


def train_or_explain_oom(trainer: Any, recipe: Recipe, resume_from_checkpoint: str | None = None,
                         gpu_gib: float | None = None) -> Any:
    """Notebook 06's training step in one call (the reference run of other notebooks): :func:`load_finished_run`,
    else ``trainer.train(...)`` inside :func:`training_guards`."""
    finished = load_finished_run(trainer, resume_from_checkpoint)
    if finished is not None:
        return finished
    with training_guards(trainer, recipe, resume_from_checkpoint, gpu_gib):
        return trainer.train(resume_from_checkpoint=resume_from_checkpoint)
