"""How long each notebook should take on a Colab T4: a speed model, not a timing.

No T4 has run the series yet (the GPU rehearsal needs a machine this project was not lent), so each notebook's first
cell states a *range* computed here from what the notebook does in the ``colab`` profile on a T4 recipe (tokens
trained and scored, generate() steps, trainers built, checkpoints written) and from these stated assumptions:

* training and scoring run at 6-16 TFLOP/s in fp16 AMP (10-25% of the T4's 65 TFLOP/s peak: a 576-wide model's
  matmuls leave the tensor cores half idle), at 6 N FLOPs per trained token (8 N with gradient checkpointing, which
  runs the forward twice), 4 N for LoRA (no weight gradients) and 2 N per scored token, N = 135 M parameters;
  attention adds < 5% at 512 tokens and is left out;
* a generate() step (one new token for a whole batch) takes 15-40 ms: a 30-layer model decodes launch-bound, so a
  batch of 32 costs about what one prompt does;
* every notebook pays 1-2.5 min to install the pinned wheels, import and download/load the model; a trainer costs
  5-15 s to build (tokenising its rows), a full checkpoint (fp32 weights + Adam state, ~1.6 GB) 3-10 s to write.

``python -m tools.runtime_estimate`` prints the table; ``tests/test_notebooks.py`` checks that every first cell says
what this model says, so a change of the recipe cannot leave a stale figure behind. Replace it with measured times
once a T4 has run ``./lab.sh gpu-rehearsal`` with the real weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

N_PARAMS = 134_515_008  # SmolLM2-135M, tied embeddings counted once (labhelpers.model.memory.architecture)
TFLOPS = (6.0, 16.0)  # effective fp16-AMP training throughput on a T4: slow, fast
DECODE_S = (0.040, 0.015)  # seconds per generate() step: slow, fast
NOTEBOOK_S = (150.0, 60.0)  # install cell, imports, model download and load
TRAINER_S = (15.0, 5.0)
CHECKPOINT_S = (10.0, 3.0)
T4_GIB = 15.0


@dataclass(frozen=True)
class Work:
    """What a notebook makes the GPU do.

    >>> Work(decode_steps=256, runs=1).checkpoints
    0
    """

    trained_tokens: float = 0.0  # through a full fine-tune's forward and backward
    checkpointed_tokens: float = 0.0  # the same with gradient checkpointing (the forward runs twice)
    adapter_tokens: float = 0.0  # through a LoRA forward and backward (no weight gradients)
    scored_tokens: float = 0.0  # forward only: evaluation, reply loss
    decode_steps: int = 0  # generate() steps, one new token for a whole batch
    runs: int = 0  # trainers built
    checkpoints: int = 0  # full checkpoints written


def seconds(work: Work) -> tuple[float, float]:
    """(slow, fast) seconds for ``work`` plus one notebook's fixed cost, under the module's assumptions.

    >>> slow, fast = seconds(Work())
    >>> slow, fast
    (150.0, 60.0)
    >>> seconds(Work(decode_steps=1000))[0] - slow
    40.0
    """
    flops = N_PARAMS * (6 * work.trained_tokens + 8 * work.checkpointed_tokens + 4 * work.adapter_tokens
                        + 2 * work.scored_tokens)
    return tuple(fixed + flops / (tflops * 1e12) + work.decode_steps * decode + work.runs * trainer
                 + work.checkpoints * checkpoint
                 for fixed, tflops, decode, trainer, checkpoint in zip(NOTEBOOK_S, TFLOPS, DECODE_S, TRAINER_S,
                                                                      CHECKPOINT_S))


def minutes_phrase(slow_s: float, fast_s: float) -> str:
    """The range as a first cell says it.

    >>> minutes_phrase(200, 70)
    'about 1-4 min'
    >>> minutes_phrase(60, 50)
    'about 1 min'
    """
    low, high = max(1, math.floor(fast_s / 60)), max(1, math.ceil(slow_s / 60))
    return f"about {low} min" if low == high else f"about {low}-{high} min"


def _decode(prompts: int, batch: int, max_new_tokens: int) -> int:
    """generate() steps for ``prompts`` in batches of ``batch`` that each run to ``max_new_tokens`` (the worst case)."""
    return math.ceil(prompts / batch) * max_new_tokens


def notebook_work(recipe: Any, row_tokens: float) -> dict[str, Work]:
    """Each notebook's work under ``recipe`` (a T4 ``colab`` recipe), rows averaging ``row_tokens`` tokens.

    Mirrors what the solutions do with the recipe's sizes: 06's reference run, 07's overfitting run, 08's mini-runs,
    09's generations, 10's protocol, 11's loop, 12's LoRA run and memory measurement.
    """
    from labhelpers.run.generation import CLASSIC_PROMPTS, REPLAY_PROMPTS

    s, lesson = recipe.sizes, recipe.lesson
    plan = recipe.plan(s.n_train_examples)
    gen = lambda prompts: _decode(prompts, lesson.generation_batch_size, lesson.max_new_tokens)  # noqa: E731
    trained = "checkpointed_tokens" if s.gradient_checkpointing else "trained_tokens"
    run_tokens = plan.total_steps * plan.effective_batch_size * row_tokens
    evaluations = math.ceil(1 / s.eval_steps) + 1  # every eval_steps share of the run, and eval_on_start
    reference = Work(**{trained: run_tokens}, scored_tokens=evaluations * s.n_eval_examples * row_tokens, runs=1,
                     checkpoints=math.ceil(1 / s.save_steps))
    heldout = len(CLASSIC_PROMPTS) + lesson.n_heldout_prompts
    mini_runs = 3 + 4  # three schedules at the recipe's LR, four peak LRs (COMPARE_LRS in 08)
    return {
        "01": Work(), "03": Work(), "04": Work(), "05": Work(),
        "02": Work(decode_steps=gen(heldout)),
        "06": reference,
        "07": Work(**{trained: lesson.overfit_steps * 4 * row_tokens},
                   scored_tokens=(lesson.overfit_steps // 2 + 1) * 8 * row_tokens, runs=1),
        "08": Work(**{trained: mini_runs * lesson.compare_steps * lesson.compare_batch_size * row_tokens},
                   runs=mini_runs),
        "09": Work(decode_steps=gen(heldout) + 2 * gen(lesson.n_retention_prompts),
                   scored_tokens=2 * (lesson.n_heldout_prompts + lesson.n_retention_prompts) * row_tokens),
        # 10: evaluations before the short run, halfway and at its end; 4 prompts answered before and after
        "10": Work(**{trained: (lesson.protocol_overfit_steps + lesson.protocol_short_steps) * 4 * row_tokens},
                   scored_tokens=3 * s.n_eval_examples * row_tokens, decode_steps=2 * gen(4), runs=2),
        "11": Work(**{trained: lesson.loop_micro_batches * lesson.loop_micro_batch_size * row_tokens}),
        # 12: the adapters' run, its memory steps, the full model's and the adapters' held-out replies; with the
        # retention runs (on by default on a GPU) two more reference-length runs, evaluated at start and end, their
        # held-out replies, the base's replies to the replay prompts, five models' replies to the outside prompts
        "12": Work(adapter_tokens=run_tokens,
                   **{trained: 2 * 2 * s.per_device_train_batch_size * s.max_length + 2 * run_tokens},
                   scored_tokens=(evaluations + 2 * 2) * s.n_eval_examples * row_tokens,
                   decode_steps=4 * gen(heldout) + 5 * gen(lesson.n_retention_prompts) + gen(len(REPLAY_PROMPTS)),
                   runs=5),
        "13": Work(decode_steps=gen(len(CLASSIC_PROMPTS))),
        # 14: case 2's two tiny runs (4 steps of 2 rows, two evaluations of 8 rows each) at its own sizes, the
        # accumulation checks (4 rows through forward and backward, twice, in two cases), the preflights' forwards
        "14": Work(**{trained: (2 * 4 * 2 + 4 * 4) * row_tokens}, scored_tokens=(2 * 2 * 8 + 14 * 4) * row_tokens,
                   runs=2),
    }


def mean_row_tokens(rows: Any, tokenizer: Any, max_length: int) -> float:
    """Mean chat-templated length of ``rows`` in tokens, each capped at ``max_length`` (what a trainer sees)."""
    from labhelpers.run.training import conversation_lengths

    lengths = [min(n, max_length) for n in conversation_lengths(rows, tokenizer)]
    return sum(lengths) / len(lengths)


def t4_estimates() -> dict[str, tuple[float, float]]:
    """(slow, fast) seconds per notebook number on a Colab T4 in the ``colab`` profile, on the lesson's data."""
    from labhelpers.data.datasets import load_chat_dataset
    from labhelpers.model.hardware import recipe_for
    from labhelpers.model.loading import load_tokenizer

    recipe = recipe_for("t4", "colab", total_memory_gib=T4_GIB)
    rows = load_chat_dataset()["train"].select(range(recipe.sizes.n_train_examples))
    tokens = mean_row_tokens(rows, load_tokenizer(), recipe.sizes.max_length)
    return {number: seconds(work) for number, work in notebook_work(recipe, tokens).items()}


# Notebooks that need notebook 06's tuned model: in a Colab runtime without it (each notebook gets its own runtime;
# without USE_DRIVE nothing carries over) they train the reference run first, and their first cell says what it costs.
NEEDS_REFERENCE_RUN = ("07", "09", "12", "13")


def reference_run_phrase(estimates: dict[str, tuple[float, float]]) -> str:
    """What a notebook of NEEDS_REFERENCE_RUN adds on a T4 when 06's model is missing: 06's run without its fixed
    cost (install and model load are paid once either way).

    >>> reference_run_phrase({"06": (750.0, 210.0)})
    'about 2-10 min more'
    """
    slow, fast = (t - fixed for t, fixed in zip(estimates["06"], NOTEBOOK_S))
    return minutes_phrase(slow, fast) + " more"


def main() -> None:
    estimates = t4_estimates()
    for number in sorted(estimates):
        slow, fast = estimates[number]
        print(f"{number}  {fast:6.0f}-{slow:4.0f} s  {minutes_phrase(slow, fast)}")
    print(f"without 06's model ({', '.join(NEEDS_REFERENCE_RUN)}): the reference run first, "
          f"{reference_run_phrase(estimates)}")


if __name__ == "__main__":
    main()
