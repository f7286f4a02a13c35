"""The colab profile's before/after, measured on this CPU: does the seed lab's recipe teach something visible?

``python -m benchmarks.colab_profile [--dataset sft-lab/house-format] [--max-steps N]`` trains notebook 06's
reference run with the ``colab`` sizes (500 rows, 3 epochs, max_length 512, lr 2e-5, warmup 10%, effective batch 16,
the T4's split) on this CPU in fp32, then answers the held-out prompts with the base and the tuned model exactly
as notebooks 02 and 09 do, and prints what the run bought: house format (when the data teaches it), replies cut by
``max_new_tokens``, looping replies, held-out reply loss, eval loss. A long run (96 steps of up to 16 x 512 tokens: over
two hours on a 2-core CPU), so it is not in ``python -m benchmarks``' default set, and it resumes: the run lives in
``runs/benchmarks/`` with a checkpoint every eighth of the run and the base model's replies stored, so calling it again
continues where a sitting stopped (each sitting's time is kept in ``segments.json``). ``--max-steps`` caps it for a
quick look (and says so).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.reference_step import reference_step_seconds
from benchmarks.report import format_table, save_json

MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


def share(flags: list[bool]) -> float:
    """Fraction of true flags.

    >>> share([True, False, False, True])
    0.5
    """
    return sum(flags) / len(flags) if flags else 0.0


def behaviour(model, tokenizer, pairs: list[tuple[str, str]], recipe) -> dict:
    """Greedy replies to the held-out prompts and the measures notebook 09 reads, for one model."""
    from labhelpers.measure.behaviour import house_format_rate, is_degenerate
    from labhelpers.run.generation import generate_replies, reply_nll

    prompts, references = [p for p, _ in pairs], [r for _, r in pairs]
    with recipe.autocast():
        replies, cut = generate_replies(model, tokenizer, prompts, recipe.lesson.max_new_tokens,
                                        recipe.lesson.generation_batch_size)
    return {"house_format": house_format_rate(replies), "cut": share(cut),
            "looping": share([is_degenerate(r) for r in replies]),
            "reply_loss": statistics.fmean(reply_nll(model, tokenizer, prompts, references))}


def default_run_dir(dataset: str) -> Path:
    """Where the benchmark keeps its run, so a later call resumes it (``runs/`` is git-ignored).

    >>> default_run_dir("sft-lab/house-format").as_posix()
    'runs/benchmarks/colab_profile-sft-lab-house-format'
    """
    name = Path(dataset).stem if dataset.endswith(".jsonl") else dataset
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name)
    return Path("runs") / "benchmarks" / f"colab_profile-{slug}"


def last_step(training: dict | None) -> int:
    """The last optimizer step in a run's stored log.

    >>> last_step({"log_history": [{"step": 0}, {"step": 12}]}), last_step(None)
    (12, 0)
    """
    return max((e.get("step", 0) for e in (training or {}).get("log_history", [])), default=0)


def record_segment(run: Path, sitting: int, seconds: float, steps: tuple[int, int], reference_s: float) -> list[dict]:
    """Write sitting number ``sitting``'s training time so far into ``run/segments.json`` and return them all.

    Called at every checkpoint, so a sitting that is stopped keeps the time of the steps it saved (the steps after its
    last checkpoint are trained again by the next sitting, and counted there).

    >>> import tempfile; run = Path(tempfile.mkdtemp())
    >>> _ = record_segment(run, 0, 90.0, (0, 12), 7.0); _ = record_segment(run, 0, 180.0, (0, 24), 7.0)
    >>> [(s["seconds"], s["steps"]) for s in record_segment(run, 1, 80.0, (24, 36), 7.5)]
    [(180.0, [0, 24]), (80.0, [24, 36])]
    """
    path = run / "segments.json"
    segments = json.loads(path.read_text()) if path.is_file() else []
    entry = {"seconds": seconds, "steps": list(steps), "reference_step_s": reference_s}
    segments[sitting:sitting + 1] = [entry]
    path.write_text(json.dumps(segments, indent=2) + "\n")
    return segments


def sitting_clock(run: Path, reference_s: float) -> Any:
    """A ``TrainerCallback`` that records this sitting's training time at every checkpoint (see ``record_segment``)."""
    from transformers import TrainerCallback

    path = run / "segments.json"
    sitting = len(json.loads(path.read_text())) if path.is_file() else 0

    class SittingClock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if not hasattr(self, "started"):
                self.started, self.first = time.perf_counter(), state.global_step

        def on_save(self, args, state, control, **kwargs):
            if hasattr(self, "started"):  # a sitting that trained no step has nothing to record
                record_segment(run, sitting, time.perf_counter() - self.started, (self.first, state.global_step),
                               reference_s)

        on_train_end = on_save  # the steps after the last checkpoint of a finished run count too

    return SittingClock()


def main(dataset: str = "sft-lab/house-format", max_steps: int | None = None, run: Path | None = None) -> dict:
    from labhelpers.measure.behaviour import data_teaches_house_format
    from labhelpers.data.datasets import load_chat_dataset
    from labhelpers.run.generation import heldout_pairs
    from labhelpers.model.hardware import recipe_for
    from labhelpers.model.loading import load_model_and_tokenizer
    from labhelpers.run.folder import content_key, load_metrics, reuse_or_compute
    from labhelpers.series.reference import reference_sft_run

    recipe = recipe_for("cpu", "colab")  # the colab sizes and the T4's effective batch, in fp32 on this CPU
    if max_steps:
        recipe = recipe.with_sizes(max_steps=max_steps)
    run = run or default_run_dir(dataset) / (f"capped-{max_steps}" if max_steps else "full")
    run.mkdir(parents=True, exist_ok=True)
    reference_s = reference_step_seconds()
    pairs = heldout_pairs(load_chat_dataset(dataset)["test"], recipe.lesson.n_heldout_prompts)
    model, tokenizer = load_model_and_tokenizer(MODEL_ID, recipe, verbose=False)
    key = {"model": MODEL_ID, "pairs": content_key(pairs), "lesson": str(recipe.lesson)}
    base = reuse_or_compute(run / "base_behaviour.json", key, lambda: behaviour(model, tokenizer, pairs, recipe),
                            "the base model's replies")
    del model
    final = run / "sft" / "final"
    if not (final / "model.safetensors").is_file():  # trains, or resumes from the last checkpoint of a sitting
        reference_sft_run(run, recipe, MODEL_ID, dataset, callbacks=[sitting_clock(run, reference_s)])
    segments = json.loads((run / "segments.json").read_text()) if (run / "segments.json").is_file() else []
    tuned_model, _ = load_model_and_tokenizer(str(final), recipe, verbose=False)
    tuned = reuse_or_compute(run / "tuned_behaviour.json", key,
                             lambda: behaviour(tuned_model, tokenizer, pairs, recipe), "the tuned model's replies")
    training = load_metrics(run, "training") or {}
    teaches = data_teaches_house_format([r for _, r in pairs])
    measures = ["house_format"] if teaches else []
    rows = [[m, f"{base[m]:.0%}", f"{tuned[m]:.0%}"] for m in measures + ["cut", "looping"]]
    rows.append(["reply_loss (nats/token)", f"{base['reply_loss']:.2f}", f"{tuned['reply_loss']:.2f}"])
    rows.append(["eval loss (first -> last)", f"{training.get('first_eval_loss', float('nan')):.2f}",
                 f"{training.get('last_eval_loss', float('nan')):.2f}"])
    steps = last_step(training)
    capped = f", capped at max_steps={max_steps} (not the profile's run)" if max_steps else ""
    print(f"colab profile on this CPU, {dataset}: {steps} optimizer steps{capped}; "
          f"{len(pairs)} held-out prompts, max_new_tokens {recipe.lesson.max_new_tokens}")
    print(format_table(["measure", "base", "tuned"], rows))
    train_s = sum(s["seconds"] for s in segments)
    in_steps = sum(s["seconds"] / s["reference_step_s"] for s in segments)
    print(f"training {train_s:.0f} s in {len(segments)} sitting(s) = {in_steps:.0f} reference steps "
          f"(each sitting measured against its own reference step; this one's {reference_s:.2f} s)")
    figures = {"dataset": dataset, "steps": steps, "max_steps_cap": max_steps, "base": base, "tuned": tuned,
               "first_eval_loss": training.get("first_eval_loss"), "last_eval_loss": training.get("last_eval_loss"),
               "train_s": train_s, "train_reference_steps": in_steps, "segments": segments,
               "reference_step_s": reference_s, "data_teaches_house_format": teaches}
    save_json("colab_profile" if dataset == "sft-lab/house-format" else "colab_profile_natural", figures)
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.colab_profile", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="sft-lab/house-format", help="a dataset name or .jsonl path")
    parser.add_argument("--max-steps", type=int, default=None, help="cap the run (a quick look, not the measurement)")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="where the run lives; a later call resumes it (default: runs/benchmarks/colab_profile-...)")
    options = parser.parse_args()
    main(options.dataset, options.max_steps, options.run_dir)
