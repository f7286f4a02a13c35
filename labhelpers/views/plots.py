"""Plotting helpers for the notebooks: each function draws one figure, saves it as PNG and returns the path.

Figures are built on a bare ``matplotlib.figure.Figure`` (no pyplot state), so a headless run never opens a
window and never leaks figures between cells. Show the saved file inline with ``IPython.display.Image``.
Functions here are independent of each other: add new ones without touching the others.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Mapping, Sequence


def figure_png(fig: Any, dpi: int = 90) -> bytes:
    """The PNG bytes of a matplotlib figure (drawn by Agg, whatever the backend).

    >>> from matplotlib.figure import Figure
    >>> figure_png(Figure(figsize=(1, 1)))[:4]
    b'\\x89PNG'
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _save(fig, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` (folders created, previous file replaced) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def plot_lr_schedules(schedules: Mapping[str, Sequence[float]], path: str | Path, *, warmup_steps: int | None = None,
                      title: str = "Learning-rate schedules") -> Path:
    """Plot LR against optimizer step for each named schedule (value i is the LR of step i); save to ``path``.

    >>> import tempfile, os
    >>> p = plot_lr_schedules({"linear": [0.0, 1.0, 0.5, 0.0]}, os.path.join(tempfile.mkdtemp(), "lr.png"), warmup_steps=1)
    >>> p.suffix, p.stat().st_size > 1000
    ('.png', True)
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.6))
    ax = fig.add_subplot()
    for name, lrs in schedules.items():
        ax.plot(range(len(lrs)), list(lrs), label=name, linewidth=2)
    if warmup_steps:
        ax.axvline(warmup_steps, color="grey", linestyle=":", linewidth=1)
        ax.annotate(f"end of warmup ({warmup_steps})", (warmup_steps, 0), xytext=(4, 4), textcoords="offset points",
                    fontsize=8, color="grey")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)  # outside: never hides a curve
    return _save(fig, path)


def plot_loss_curves(curves: Mapping[str, Sequence[tuple[int, float]]], path: str | Path, *,
                     title: str = "Training loss", ylabel: str = "train loss") -> Path:
    """Overlay loss curves, each a list of ``(step, loss)`` points, one line per name; save to ``path``.

    >>> import tempfile, os
    >>> p = plot_loss_curves({"a": [(1, 2.0), (2, 1.5)], "b": [(1, 2.1), (2, 1.9)]},
    ...                      os.path.join(tempfile.mkdtemp(), "plots", "loss.png"))
    >>> p.parent.name, p.is_file()
    ('plots', True)
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.6))
    ax = fig.add_subplot()
    for name, points in curves.items():
        if not points:
            continue
        steps, losses = zip(*points)
        ax.plot(steps, losses, marker="o", markersize=3, label=name, linewidth=1.8)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)  # outside: never hides a curve
    return _save(fig, path)


def plot_metric(log_history: Sequence[Mapping[str, Any]], key: str, path: str | Path, *, title: str | None = None) -> Path:
    """Plot one logged value (e.g. ``"learning_rate"``, ``"grad_norm"``) against the step; save to ``path``.

    >>> import tempfile, os
    >>> p = plot_metric([{"step": 1, "grad_norm": 1.2}, {"step": 2, "grad_norm": 0.9}], "grad_norm",
    ...                 os.path.join(tempfile.mkdtemp(), "g.png"))
    >>> p.is_file()
    True
    """
    from matplotlib.figure import Figure

    points = [(entry["step"], entry[key]) for entry in log_history if key in entry]
    if not points:
        raise ValueError(f"no {key!r} in the log; logged keys: {sorted({k for e in log_history for k in e})}")
    fig = Figure(figsize=(7, 3.2))
    ax = fig.add_subplot()
    ax.plot(*zip(*points), marker="o", markersize=3)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(key)
    ax.set_title(title or f"{key} per step")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_padding_waste(shares: Mapping[str, float], path: str | Path, *, title: str = "Padding waste per batching scheme",
                       note: str | None = None) -> Path:
    """Bar chart of the share of pad tokens (0..1) for each batching scheme, labelled in percent; save to ``path``.

    >>> import tempfile, os
    >>> p = plot_padding_waste({"random": 0.3, "sorted": 0.05, "packed": 0.01}, os.path.join(tempfile.mkdtemp(), "pad.png"))
    >>> p.is_file()
    True
    """
    from matplotlib.figure import Figure

    names, values = list(shares), [100 * float(v) for v in shares.values()]
    fig = Figure(figsize=(7, 3.6))
    ax = fig.add_subplot()
    bars = ax.bar(range(len(names)), values, color=["#d62728", "#ff7f0e", "#2ca02c", "#1f77b4"][: len(names)] or None)
    for bar, value in zip(bars, values):
        ax.annotate(f"{value:.1f}%", (bar.get_x() + bar.get_width() / 2, value), xytext=(0, 3),
                    textcoords="offset points", ha="center", fontsize=9)
    import textwrap

    ax.set_xticks(range(len(names)), [textwrap.fill(name, 16) for name in names], fontsize=9)  # long names wrap
    ax.set_ylabel("pad tokens / all tokens (%)")
    ax.set_ylim(0, max(values + [1.0]) * 1.2)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    if note:
        ax.text(0.99, 0.97, note, transform=ax.transAxes, ha="right", va="top", fontsize=8, color="grey")
    return _save(fig, path)
