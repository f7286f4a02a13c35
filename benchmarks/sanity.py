"""Preflight cost on the bundled data: quick must take <= 30 s; full <= 10% of a 200-step run of the same setup.

The 200-step run is extrapolated from a few real timed training steps (said so in the table).
Run: ``python -m benchmarks.sanity``.
"""

from __future__ import annotations

import copy
import os
import time

from benchmarks.report import format_table, save_json

QUICK_GOAL_S = 30.0
FULL_GOAL_SHARE = 0.10
RUN_STEPS = 200  # the run the full level is compared with
TIMED_STEPS = 3  # real steps measured to extrapolate it


def main() -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import json
    from pathlib import Path

    from labhelpers.model.hardware import detect_recipe
    from labhelpers.model.loading import load_model_and_tokenizer
    from labhelpers.sanity import preflight
    from labhelpers.sanity.protocol import build_trainer

    recipe = detect_recipe("ci")
    model, tok = load_model_and_tokenizer(recipe=recipe, verbose=False)
    data = Path(__file__).resolve().parent.parent / "labhelpers" / "bundled_data"
    def rows(split):
        return [{"messages": json.loads(line)["messages"]} for line in (data / f"{split}.jsonl").read_text().splitlines()]
    train, test = rows("train"), rows("test")
    trainer = build_trainer(model, tok, train, test, recipe=recipe)
    start = time.perf_counter()
    quick = preflight(trainer, "quick")
    quick_s = time.perf_counter() - start
    start = time.perf_counter()
    full = preflight(trainer, "full")
    full_s = time.perf_counter() - start
    timed = build_trainer(copy.deepcopy(model), tok, train[:TIMED_STEPS * 4 + 4], recipe=recipe, max_steps=TIMED_STEPS + 1)
    step_times = []

    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.t = time.perf_counter()

        def on_step_end(self, *a, **k):
            step_times.append(time.perf_counter() - self.t)

    timed.add_callback(Clock())
    timed.train()
    step_s = sum(step_times[1:]) / len(step_times[1:])  # first step includes warm-up
    run_s = step_s * RUN_STEPS
    rows_out = [
        ["preflight quick", len(trainer.train_dataset), round(quick_s, 1), f"<= {QUICK_GOAL_S:.0f} s", quick_s <= QUICK_GOAL_S],
        ["preflight full", len(trainer.train_dataset), round(full_s, 1), f"<= {FULL_GOAL_SHARE:.0%} of run", full_s <= FULL_GOAL_SHARE * run_s],
        [f"{RUN_STEPS}-step run (extrapolated from {len(step_times) - 1} timed steps)", "", round(run_s, 1), "", ""],
    ]
    print(format_table(["what", "train rows", "seconds", "goal", "meets"], rows_out))
    print(f"full preflight = {full_s / run_s:.1%} of a {RUN_STEPS}-step run ({step_s:.2f} s/step, batch "
          f"{recipe.sizes.per_device_train_batch_size}, max_length {recipe.sizes.max_length}); "
          f"quick verdict: {quick.summary()}; full verdict: {full.summary()}")
    figures = {"quick_s": quick_s, "full_s": full_s, "step_s": step_s, "run_s_extrapolated": run_s,
               "full_share": full_s / run_s, "quick_ok": quick.ok, "full_ok": full.ok}
    save_json("sanity", figures)
    return figures


if __name__ == "__main__":
    main()
