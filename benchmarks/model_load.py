"""Cold (GGUF conversion) vs warm (safetensors cache) offline model load, measured in one run.

Goal (foundation issue): warm load at least 5x faster than cold.
Run: ``python -m benchmarks.model_load``.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

from benchmarks.report import format_table, save_json

WARM_REPEATS = 3
GOAL_RATIO = 5.0


def time_load(recipe) -> tuple[float, str]:
    """Seconds for one ``load_model_and_tokenizer`` call and the source it reported."""
    from labhelpers.model.loading import load_model_and_tokenizer

    start = time.perf_counter()
    model, _ = load_model_and_tokenizer(recipe=recipe, verbose=False)
    return time.perf_counter() - start, model.lab_load_info.source


def main() -> dict:
    os.environ["HF_HUB_OFFLINE"] = "1"
    from labhelpers.model.hardware import detect_recipe

    recipe = detect_recipe("ci")
    previous = os.environ.get("LAB_CACHE_DIR")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["LAB_CACHE_DIR"] = cache  # a fresh cache makes the first load cold
        try:
            cold_s, cold_source = time_load(recipe)
            warm = [time_load(recipe) for _ in range(WARM_REPEATS)]
        finally:  # later benchmarks in this process (and their workers) must use the real cache again
            if previous is None:
                os.environ.pop("LAB_CACHE_DIR", None)
            else:
                os.environ["LAB_CACHE_DIR"] = previous
    warm_s = statistics.median(s for s, _ in warm)
    ratio = cold_s / warm_s
    rows = [
        ["cold", cold_source, round(cold_s, 2), 1.0],
        [f"warm (median of {WARM_REPEATS})", warm[0][1], round(warm_s, 2), round(ratio, 1)],
    ]
    print(format_table(["load", "source", "seconds", "speed-up"], rows))
    verdict = "meets" if ratio >= GOAL_RATIO else "MISSES"
    print(f"warm is {ratio:.1f}x faster than cold: {verdict} the >= {GOAL_RATIO:.0f}x goal")
    figures = {"cold_s": cold_s, "warm_s": warm_s, "ratio": ratio, "goal_ratio": GOAL_RATIO}
    save_json("model_load", figures)
    return figures


if __name__ == "__main__":
    main()
