"""Run every benchmark (or those named) and print each table: ``python -m benchmarks [name ...]``."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("model_load", "sanity", "training_modes", "packing", "trainer_overhead")


def main(argv: list[str]) -> None:
    names = argv or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    for name in names:
        print(f"\n== {name} ==")
        importlib.import_module(f"benchmarks.{name}").main()


if __name__ == "__main__":
    main(sys.argv[1:])
