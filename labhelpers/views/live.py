"""Training curves that draw themselves while ``trainer.train()`` runs: one figure, updated in place.

    trainer = SFTTrainer(..., callbacks=[LiveCurves(RUN / "plots" / "06_live.png")])

Loss (train and eval), learning rate and gradient norm, from the same logs as ``trainer.state.log_history``.
With a notebook frontend the figure is redrawn at most every ``min_interval_s`` seconds, after each evaluation, and
never more often than keeps drawing under ``budget`` (1%) of the wall time; ``benchmarks/live_curves.py`` measures
it. Headless (a script, or a kernel whose matplotlib backend is Agg, as papermill runs under ``MPLBACKEND=Agg``)
nothing is drawn per step: the PNG is written once at the end of training. Either way the PNG at ``path`` is the
final figure, and in a notebook it is the cell's output, so an executed notebook shows it without a frontend.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from transformers import TrainerCallback

from labhelpers.views.display import show_in_place
from labhelpers.views.plots import figure_png

# panel -> [(log key, line label)]: what each of the three panels of the figure draws
PANELS = {
    "loss": [("loss", "train loss"), ("eval_loss", "eval loss")],
    "learning_rate": [("learning_rate", "learning rate")],
    "grad_norm": [("grad_norm", "grad norm")],
}
KEYS = tuple(key for lines in PANELS.values() for key, _ in lines)


def curve_points(log_history: Sequence[Mapping[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """``(step, value)`` points of each curve (``loss``, ``eval_loss``, ``learning_rate``, ``grad_norm``) in a log.

    >>> curve_points([{"step": 1, "loss": 2.5, "learning_rate": 1e-4, "grad_norm": 3.0},
    ...               {"step": 2, "eval_loss": 2.4}, {"step": 2, "train_loss": 2.4, "train_runtime": 9.0}])
    {'loss': [(1, 2.5)], 'eval_loss': [(2, 2.4)], 'learning_rate': [(1, 0.0001)], 'grad_norm': [(1, 3.0)]}
    """
    points: dict[str, list[tuple[int, float]]] = {key: [] for key in KEYS}
    for entry in log_history:
        for key in KEYS:
            if key in entry and entry[key] is not None:
                points[key].append((int(entry["step"]), float(entry[key])))
    return points


def curves_figure(points: Mapping[str, Sequence[tuple[int, float]]], title: str | None = None) -> Any:
    """One figure, three panels side by side: train/eval loss, learning rate, grad norm (a bare Figure, no pyplot).

    >>> fig = curves_figure({"loss": [(1, 2.5), (2, 2.1)], "eval_loss": [(2, 2.3)], "learning_rate": [], "grad_norm": []})
    >>> [ax.get_title() for ax in fig.axes], fig.axes[0].lines[0].get_xydata().tolist()
    (['loss', 'learning_rate', 'grad_norm'], [[1.0, 2.5], [2.0, 2.1]])
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import FormatStrFormatter

    fig = Figure(figsize=(11, 3.0), layout="constrained")
    for ax, (panel, lines) in zip(fig.subplots(1, len(PANELS)), PANELS.items()):
        for key, label in lines:
            ax.plot(*_xy(points.get(key, [])), marker="o", markersize=3, linewidth=1.5, label=label)
        ax.set_title(panel)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        if panel == "learning_rate":
            ax.yaxis.set_major_formatter(FormatStrFormatter("%.1e"))  # 2.0e-05 on each tick: no offset over the title
        if len(lines) > 1:
            ax.legend(fontsize=8)
    nan_steps = [step for step, value in points.get("loss", []) if not math.isfinite(value)]
    if nan_steps:  # recipes log NaN as NaN (logging_nan_inf_filter=False): say so, a gap in a line is easy to miss
        title = f"{title + ': ' if title else ''}train loss is not finite from step {nan_steps[0]}"
    if title:
        fig.suptitle(title, color="#b00020" if nan_steps else "black")
    return fig


def frontend_present() -> bool:
    """True in a notebook kernel whose matplotlib backend can show figures (not Agg: papermill/CI set MPLBACKEND=Agg)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return False
    backend = os.environ.get("MPLBACKEND") or __import__("matplotlib").get_backend()
    return backend.lower() != "agg"


def _xy(points: Sequence[tuple[int, float]]) -> tuple[list[int], list[float]]:
    return [p[0] for p in points], [p[1] for p in points]


class LiveCurves(TrainerCallback):
    """Draw loss, eval loss, learning rate and grad norm while training; save the final figure as a PNG at ``path``."""

    def __init__(self, path: str | os.PathLike, *, live: bool | None = None,  # None: live when a frontend is present
                 min_interval_s: float = 5.0,  # seconds between two redraws at least
                 budget: float = 0.01,  # share of wall time drawing may take (render time / budget = interval)
                 title: str | None = None, dpi: int = 90):
        self.path = Path(path)
        self.live = frontend_present() if live is None else live
        self.min_interval_s, self.budget, self.title, self.dpi = min_interval_s, budget, title, dpi
        self.points: dict[str, list[tuple[int, float]]] = {key: [] for key in KEYS}
        self.redraws = 0  # figures rendered during training (0 when headless)
        self.render_s = 0.0  # seconds spent rendering them
        self._last_draw = 0.0
        self._last_render_s = 0.0
        self._handle: Any = None  # IPython display handle: the one output updated in place

    # -- the figure ---------------------------------------------------------------------------------------------------
    def figure(self) -> Any:
        """The figure of the points so far."""
        return curves_figure(self.points, self.title)

    def _render(self) -> bytes:
        started = time.perf_counter()
        png = figure_png(self.figure(), self.dpi)
        self._last_render_s = time.perf_counter() - started
        self._last_draw = time.monotonic()
        return png

    def _show(self, png: bytes) -> None:
        try:
            from IPython.display import Image
        except ImportError:
            return
        self._handle = show_in_place(self._handle, Image(data=png, format="png"))

    def _due(self, after_eval: bool = False) -> bool:
        wait = self._last_render_s / self.budget  # e.g. 0.15 s render at 1% -> at most every 15 s
        return time.monotonic() - self._last_draw >= (wait if after_eval else max(self.min_interval_s, wait))

    def _redraw(self) -> None:
        png = self._render()
        self.redraws += 1
        self.render_s += self._last_render_s
        self._show(png)

    def show_log(self, log_history: Sequence[Mapping[str, Any]]) -> None:
        """Draw a run that was loaded, not trained (`labhelpers.run.training.load_finished_run`): its curves from its log,
        saved at ``path`` and shown once, as at the end of training."""
        self.points = curve_points(log_history)
        self._finish()

    def _finish(self) -> None:
        png = self._render()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(png)
        self._show(png)  # live: the last update of the same output; headless notebook: the figure, once

    # -- TrainerCallback events ---------------------------------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.points = curve_points(state.log_history)  # a resumed run starts with the curves of its checkpoint
        self._last_draw = time.monotonic()  # the first redraw comes min_interval_s into training

    def on_log(self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        if not logs or not state.is_world_process_zero:
            return
        for key in KEYS:
            if key in logs and logs[key] is not None:
                self.points[key].append((int(state.global_step), float(logs[key])))
        if self.live and "loss" in logs and self._due():
            self._redraw()

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.live and state.is_world_process_zero and self._due(after_eval=True):
            self._redraw()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self._finish()
