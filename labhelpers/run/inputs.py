"""Check a run's inputs (profile, sizes, dataset, output folder) before any model is loaded or file written.

Every problem raises one :class:`RunInputError` (a ``ValueError``) naming the input, what is wrong and
the fix; nothing in the run folder is created or touched until every input has passed. Every notebook opens with
the one call that does this and returns what the lesson works with::

    recipe, data, RUN = start_lesson(PROFILE, DATASET, RUN_DIR)                 # 01-05, 07-13
    recipe, data, RUN = start_lesson(PROFILE, DATASET, RUN_DIR, max_steps=30)  # 06: sizes a student may change
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from labhelpers.data.datasets import DEFAULT_DATASET, ConversationFormatError, DatasetFileError, load_chat_dataset

if TYPE_CHECKING:
    from labhelpers.model.hardware import Recipe

# The smallest conversation a training row can be; its rendered length is the template's fixed overhead.
MINIMAL_CONVERSATION = ({"role": "user", "content": "?"}, {"role": "assistant", "content": "."})


class RunInputError(ValueError):
    """A run input is unusable; the message names the input, the problem and the fix."""


@dataclasses.dataclass(frozen=True)
class RunInputs:
    """Inputs that passed every check: the recipe (with overrides), the dataset and the run folder path."""

    recipe: Recipe
    data: Any
    run: Path


def _fail(name: str, problem: str, fix: str) -> RunInputError:
    return RunInputError(f"{name}: {problem.rstrip('. ')}. Fix: {fix}")


def nearest_existing(path: Path) -> Path:
    """The path itself or its closest ancestor that exists.

    >>> nearest_existing(Path("/tmp/no/such/folder")).as_posix()
    '/tmp'
    """
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def check_output_dir(run: Path) -> None:
    """Raise unless ``run`` is (or can be created as) a writable folder; creates nothing."""
    existing = nearest_existing(run)
    if not existing.is_dir():
        raise _fail("RUN_DIR", f"{existing} is a file, so {run} cannot be a folder", "choose a folder path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise _fail("RUN_DIR", f"{existing} is not writable", "choose a folder you can write to, e.g. under your home")


def template_overhead(tokenizer: Any) -> int:
    """Tokens the chat template adds to the smallest possible conversation (system prompt, headers, stops)."""
    rendered = tokenizer.apply_chat_template(list(MINIMAL_CONVERSATION), tokenize=True, return_dict=True)
    return len(rendered["input_ids"])


def _resolve_recipe(profile: str | None, sizes: dict[str, Any]) -> Any:
    from labhelpers.model.hardware import detect_recipe

    try:
        recipe = detect_recipe(profile)
    except ValueError as error:
        raise _fail("PROFILE", str(error), "use one of the profiles listed") from None
    overrides = {k: v for k, v in sizes.items() if v is not None}
    try:
        return recipe.with_sizes(**overrides) if overrides else recipe
    except (ValueError, TypeError) as error:
        raise _fail("sizes", str(error), "correct that value in the parameters cell") from None


def _load_data(dataset: str) -> Any:
    try:
        return load_chat_dataset(dataset)
    except (DatasetFileError, ConversationFormatError, FileNotFoundError) as error:
        raise _fail("DATASET", str(error), "fix the file or pass another dataset") from None


def check_split_sizes(recipe: Recipe, n_rows: int) -> None:
    """Raise when the training rows cannot fill one batch or leave no eval split."""
    sizes = recipe.sizes
    n_eval = sizes.n_eval_examples or 1
    n_train = sizes.n_train_examples or max(n_rows - n_eval, 0)
    if n_rows <= n_eval:
        raise _fail("DATASET", f"{n_rows} training rows leave nothing after an eval split of {n_eval}",
                    "add rows or lower n_eval_examples")
    if min(n_train, n_rows - n_eval) < sizes.per_device_train_batch_size:
        raise _fail("per_device_train_batch_size",
                    f"a batch of {sizes.per_device_train_batch_size} is larger than the {min(n_train, n_rows - n_eval)} training rows",
                    "lower the batch size (and raise gradient_accumulation_steps) or add rows")
    if n_train + n_eval > n_rows:
        raise _fail("n_train_examples", f"{n_train} train + {n_eval} eval rows exceed the {n_rows} rows available",
                    "lower n_train_examples / n_eval_examples, or pass None to use every row")


def check_run_inputs(profile: str | None = None, dataset: str = DEFAULT_DATASET, run_dir: str | os.PathLike | None = None,
                     *, tokenizer: Any = None, **sizes: Any) -> RunInputs:
    """Check every input of a training run in order (cheap first); return them or raise :class:`RunInputError`.

    ``sizes`` are RunSizes overrides (``max_steps=5``...; ``None`` values are ignored). With a
    ``tokenizer``, ``max_length`` is also checked against the chat template's fixed overhead.
    """
    from labhelpers.run.folder import default_run_dir

    recipe = _resolve_recipe(profile, sizes)
    run = Path(run_dir).expanduser() if run_dir else default_run_dir(recipe.profile, dataset=dataset)
    check_output_dir(run)
    if tokenizer is not None:
        overhead = template_overhead(tokenizer)
        if recipe.sizes.max_length <= overhead:
            raise _fail("max_length", f"{recipe.sizes.max_length} tokens cannot hold even the chat template's fixed "
                        f"{overhead} tokens (system prompt, headers, stop tokens), so every reply would be cut",
                        f"use max_length of at least {overhead + 64}; 256 or more for real rows")
    data = _load_data(dataset)
    check_split_sizes(recipe, len(data["train"]))
    return RunInputs(recipe, data, run)


class Lesson(NamedTuple):
    """What a notebook works with: ``recipe, data, RUN = start_lesson(...)``."""

    recipe: Recipe
    data: Any
    run: Path


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's generators (every CUDA device's too), as ``transformers.set_seed`` does,
    without its import of the Trainer's utilities (``transformers.trainer_utils`` imports peft: ~1.8 s at the start of
    every notebook, measured 2026-12-06, in notebooks that never train).

    >>> import torch
    >>> seed_everything(42); a = torch.rand(2)
    >>> seed_everything(42); torch.equal(a, torch.rand(2))
    True
    """
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds every CUDA device as well


def start_lesson(profile: str | None = None, dataset: str = DEFAULT_DATASET, run_dir: str | os.PathLike | None = None,
                 **sizes: Any) -> Lesson:
    """A notebook's setup in one call: every input checked (:func:`check_run_inputs`: profile, ``sizes``, dataset,
    run folder; a problem raises :class:`RunInputError` naming the input and the fix), then the run folder created
    and its dataset recorded, the seed set (42) and the setup progress bars hidden (the trainer's stays).

    >>> import tempfile
    >>> recipe, data, RUN = start_lesson("ci", run_dir=tempfile.mkdtemp())
    >>> recipe.profile, sorted(data), RUN.is_dir()
    ('ci', ['test', 'train'], True)
    >>> start_lesson("cpu")
    Traceback (most recent call last):
    ...
    labhelpers.run.inputs.RunInputError: PROFILE: unknown profile 'cpu' (from the profile argument): choose one of 'ci', 'colab', 'full'; pass one of them. Fix: use one of the profiles listed
    """
    from labhelpers.model.loading import hide_setup_progress_bars
    from labhelpers.run.folder import run_dir as make_run_dir

    inputs = check_run_inputs(profile, dataset, run_dir, **sizes)
    run = make_run_dir(inputs.recipe.profile, inputs.run, dataset)
    seed_everything(42)
    hide_setup_progress_bars()
    return Lesson(inputs.recipe, inputs.data, run)
