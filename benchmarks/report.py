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
