"""Render benchmark rows as a plain-text table and save them as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned text table.

    >>> print(format_table(["a", "bb"], [[1, 2.5], ["x", "y"]]))
    a | bb
    --+----
    1 | 2.5
    x | y
    """
    cells = [[str(h) for h in headers]] + [[f"{v:.3g}" if isinstance(v, float) else str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def save_json(name: str, figures: dict[str, Any], folder: Path = Path("benchmarks/results")) -> Path:
    """Write ``figures`` to ``folder/name.json`` and return the path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    return path


def step_clock() -> Any:
    """A ``TrainerCallback`` timing each optimizer step; ``clock.step_seconds()`` lists them (warm-up included).

    A step runs from on_step_begin to on_step_end, or to that step's own on_log when it logs (the other callbacks'
    work happens there); eval logs and the final summary do not count. Add it last, so that work is inside.
    """
    import time

    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self) -> None:
            self.begins: list[float] = []
            self.ends: list[float] = []

        def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
            self.begins.append(time.perf_counter())

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            self.ends.append(time.perf_counter())

        def on_log(self, *args: Any, logs: dict | None = None, **kwargs: Any) -> None:
            if logs and "loss" in logs and len(self.ends) == len(self.begins):
                self.ends[-1] = time.perf_counter()

        def step_seconds(self) -> list[float]:
            return [end - begin for begin, end in zip(self.begins, self.ends)]

    return StepClock()
