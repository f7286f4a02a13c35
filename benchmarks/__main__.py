"""Run every benchmark (or those named) and print each table: ``python -m benchmarks [name ...]``."""

from __future__ import annotations

import importlib
import sys
import time

BENCHMARKS = ("model_load", "sanity", "training_modes", "packing", "trainer_overhead", "data_formats", "live_curves")
# run by name only: colab_profile about an hour on a 2-core CPU; samples_overhead ~15 minutes on the shared one
LONG_BENCHMARKS = ("colab_profile", "samples_overhead")
GOAL_MINUTES = 10.0  # the whole command on the 2-core CPU


def main(argv: list[str]) -> None:
    names = argv or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS) - set(LONG_BENCHMARKS))
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS + LONG_BENCHMARKS)}")
    started, minutes = time.perf_counter(), {}
    for name in names:
        print(f"\n== {name} ==", flush=True)
        begun = time.perf_counter()
        importlib.import_module(f"benchmarks.{name}").main()
        minutes[name] = (time.perf_counter() - begun) / 60
    total = (time.perf_counter() - started) / 60
    print("\n" + ", ".join(f"{name} {m:.1f}" for name, m in minutes.items()) + f" minutes: {total:.1f} in all"
          + (f" (goal for all {len(BENCHMARKS)}: <= {GOAL_MINUTES:.0f})" if len(names) == len(BENCHMARKS) else ""))


if __name__ == "__main__":
    main(sys.argv[1:])
