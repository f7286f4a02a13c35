"""TODO check of notebook 07 (loss curves): the student's figure holds the logged train and eval losses against the
step, both on one Axes, each line labelled and shown in a legend, the axes labelled. The lines are found by their
data, so a near miss (eval against its index, the learning rate instead of the loss, curves on two Axes or two
figures, NaN gaps from a DataFrame) is named for what it is."""

from __future__ import annotations

import math
from dataclasses import dataclass

from labhelpers.checks.core import TodoCheckError, passed, require

# the log keys a student may plot by mistake, with the loss keys (the Trainer's summary entry has train_loss)
_WHICH = {"train": "loss", "eval": "eval_loss"}


@dataclass
class _Series:
    """One drawn series of the figure: a line (``ax.plot``) or a scatter (``ax.scatter``)."""

    artist: object
    ax: object
    label: str
    points: list[tuple[float, float]] | None  # None: values that are not numbers

    @property
    def named(self) -> str:
        return repr(self.label) if self.label and not self.label.startswith("_") else "without a label"


def _float_points(xs: object, ys: object) -> list[tuple[float, float]] | None:
    """(x, y) floats of a series (masked values as NaN), or None when the values are not numbers."""
    import numpy as np

    try:
        x = np.ma.asarray(xs, dtype=float).filled(np.nan).ravel()
        y = np.ma.asarray(ys, dtype=float).filled(np.nan).ravel()
    except (TypeError, ValueError):
        return None
    return [(float(a), float(b)) for a, b in zip(x, y)]


def _series(figure: object) -> list[_Series]:
    """Every line and scatter on every Axes of ``figure``."""
    from matplotlib.collections import PathCollection
    from matplotlib.container import ErrorbarContainer

    found = []
    for ax in figure.axes:  # type: ignore[attr-defined]
        # ax.errorbar(..., label=...) labels its container, not the data line
        container_labels = {id(c.lines[0]): str(c.get_label()) for c in ax.containers
                            if isinstance(c, ErrorbarContainer) and c.lines and c.lines[0] is not None}
        for line in ax.get_lines():
            label = str(line.get_label())
            if label.startswith("_") and id(line) in container_labels:
                label = container_labels[id(line)]
            found.append(_Series(line, ax, label, _float_points(line.get_xdata(), line.get_ydata())))
        for coll in ax.collections:
            if isinstance(coll, PathCollection):
                offsets = coll.get_offsets()
                found.append(_Series(coll, ax, str(coll.get_label()), _float_points(offsets[:, 0], offsets[:, 1])))
    return found


def _close(a: float, b: float, x: bool = False) -> bool:
    """Equal as drawn: steps exactly (up to float noise), losses to float32 precision; a logged NaN loss (the recipes
    keep them: logging_nan_inf_filter=False) is drawn as NaN."""
    if math.isnan(a) and math.isnan(b):
        return True
    if x:
        return abs(a - b) <= 1e-9 * max(1.0, abs(b))
    return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)


def _same(drawn: list[tuple[float, float]] | None, points: list[tuple[float, float]]) -> bool:
    return drawn is not None and len(drawn) == len(points) and all(
        _close(a[0], b[0], x=True) and _close(a[1], b[1]) for a, b in zip(drawn, points))


def _same_values(got: list[float], want: list[float], x: bool = False) -> bool:
    return len(got) == len(want) and all(_close(a, b, x) for a, b in zip(got, want))


def _pair(a: float, b: float) -> tuple[str, str]:
    """``a`` and ``b`` printed with enough significant digits to tell them apart.

    >>> _pair(3.006888437030501, 3.006890437030501)
    ('3.00688844', '3.00689044')
    >>> _pair(5.0, 0.0)
    ('5', '0')
    """
    from labhelpers.checks.nb08_lr_schedulers import _digits_to_tell_apart

    digits = _digits_to_tell_apart(a, b)
    return f"{a:.{digits}g}", f"{b:.{digits}g}"


def _first_difference(drawn: list[tuple[float, float]], points: list[tuple[float, float]]) -> str:
    """The first point where the drawn line and the log differ, both printed so that the difference shows:
    ``"point 3: drawn (15, 2.31) vs logged (15, 2.3142)"``."""
    for i, (a, b) in enumerate(zip(drawn, points)):
        if not (_close(a[0], b[0], x=True) and _close(a[1], b[1])):
            (ax, bx), (ay, by) = _pair(a[0], b[0]), _pair(a[1], b[1])
            return f"point {i}: drawn ({ax}, {ay}) vs logged ({bx}, {by})"
    return f"{len(drawn)} points drawn, {len(points)} logged"


def _label_kind(label: str | None) -> str | None:
    """'train', 'eval' or None for what a legend label names: ``"Train loss"``, ``"train_loss"``, ``"training loss"``,
    ``"eval loss"``, ``"validation loss"``...

    >>> [_label_kind(x) for x in ("Train loss", "eval_loss", "Validation loss", "loss", "_child0", None)]
    ['train', 'eval', 'eval', None, None, None]
    """
    import re

    if not label or label.startswith("_"):
        return None
    words = set(re.split(r"[\s_\-:/()]+", label.lower()))
    train = bool(words & {"train", "training", "trn"})
    evals = bool(words & {"eval", "evaluation", "val", "valid", "validation", "dev", "test"})
    return "train" if train and not evals else "eval" if evals and not train else None


def _legend_entries(figure: object) -> list[tuple[object, str]]:
    """(legend handle, text) of every legend of the figure (on an Axes or on the figure)."""
    legends = [ax.get_legend() for ax in figure.axes] + list(figure.legends)  # type: ignore[attr-defined]
    entries = []
    for legend in legends:
        if legend is None:
            continue
        handles = getattr(legend, "legend_handles", None) or getattr(legend, "legendHandles", [])
        entries += [(h, t.get_text()) for h, t in zip(handles, legend.get_texts())]
    return entries


def _color(artist: object) -> tuple[float, ...] | None:
    from matplotlib.colors import to_rgba

    try:
        if hasattr(artist, "get_color") and not hasattr(artist, "get_facecolor"):
            return tuple(round(c, 4) for c in to_rgba(artist.get_color()))
        colors = artist.get_facecolor()  # type: ignore[attr-defined]
        return tuple(round(float(c), 4) for c in (colors[0] if len(colors) else ()))
    except (TypeError, ValueError, IndexError, AttributeError):
        return None


def _shown_label(series: _Series, entries: list[tuple[object, str]]) -> str | None:
    """The name a reader sees for ``series``: its own label, else the legend text whose handle has its colour
    (``ax.legend(["train loss", "eval loss"])`` names unlabelled lines), else None."""
    if series.label and not series.label.startswith("_"):
        return series.label
    color = _color(series.artist)
    texts = {text for handle, text in entries if color is not None and _color(handle) == color}
    return texts.pop() if len(texts) == 1 else None


def _expected(log_history: list[dict], key: str) -> list[tuple[float, float]]:
    return [(float(e["step"]), float(e[key])) for e in log_history if key in e]


def _why_not(series: _Series, which: str, points: list[tuple[float, float]], log_history: list[dict]
             ) -> tuple[str, str] | None:
    """(what is wrong, fix) when ``series`` is a recognisable near miss of the ``which`` loss line, else None."""
    key = _WHICH[which]
    line = f"the {which} loss line ({series.named})"
    drawn = series.points
    if drawn is None:
        return (f"{line} has values that are not numbers",
                f"plot numbers: x = entry['step'], y = entry['{key}']")
    steps, values = [p[0] for p in points], [p[1] for p in points]
    xs, ys = [p[0] for p in drawn], [p[1] for p in drawn]
    kept = [(x, y) for x, y in drawn if not math.isnan(y)]
    if len(kept) < len(drawn) and _same(kept, points):
        return (f"{line} holds {len(drawn) - len(kept)} NaN values between its {len(kept)} points (a DataFrame column "
                "of the whole log?): matplotlib breaks a line at every NaN, so its points are not joined",
                f"plot only the entries that have the key: df.dropna(subset=['{key}']) or "
                f"[e for e in log_history if '{key}' in e]")
    if _same_values(ys, values) and len(xs) == len(steps):
        for start in (0, 1):
            if _same_values(xs, [float(start + i) for i in range(len(xs))], x=True):
                return (f"{line} is drawn against its index ({start}, {start + 1}, {start + 2}, ...), not against the "
                        f"step (logged at steps {', '.join(f'{s:g}' for s in steps[:3])}, ...)",
                        f"pass the steps as x: ax.plot(steps, losses) with steps = [e['step'] for e in log_history "
                        f"if '{key}' in e]")
        epochs = [float(e["epoch"]) for e in log_history if key in e and "epoch" in e]
        if _same_values(xs, epochs, x=True):
            return (f"{line} is drawn against the epoch, not the step",
                    "use x = entry['step'] (the eval and train entries share it)")
        shown, logged = _pair(next(a for a, b in zip(xs, steps) if not _close(a, b, x=True)),
                              next(b for a, b in zip(xs, steps) if not _close(a, b, x=True)))
        return (f"{line} has the logged {key} values but other x values (x {shown} where the log has step {logged})",
                "use x = entry['step']")
    if _same_values(xs, steps, x=True) and _same_values(ys, [math.log(v) if v > 0 else math.nan for v in values]):
        return (f"{line} plots log({key}), not the {key} itself",
                "plot the loss as logged (it is already a log-likelihood, in nats); for a log scale use "
                "ax.set_yscale('log')")
    for other in sorted({k for e in log_history for k in e} - {key, "step", "epoch"}):
        entries = [e for e in log_history if other in e and isinstance(e[other], (int, float))]
        if len(entries) == len(drawn) and _same(drawn, [(float(e["step"]), float(e[other])) for e in entries]):
            if other == "train_loss":
                continue
            return (f"{line} plots {other}, not {key}",
                    f"take y from entry['{key}'] (notebook 07 plots learning_rate and grad_norm separately below)")
    summary = [(float(e["step"]), float(e["train_loss"])) for e in log_history if "train_loss" in e]
    if which == "train" and summary and len(drawn) == len(points) + len(summary) and _same(
            sorted(drawn), sorted(points + summary)):
        return (f"{line} has {len(drawn)} points, the log has {len(points)} 'loss' entries: it also holds the final "
                f"summary's train_loss ({summary[0][1]:g}, the average over the whole run)",
                "keep only the entries with the key 'loss' (if 'loss' in entry): train_loss is not a logged step")
    return None


def _find_or_diagnose(series: list[_Series], which: str, points: list[tuple[float, float]], log_history: list[dict],
                      taken: list[_Series], figure: object) -> _Series:
    """The series that draws the ``which`` loss of the log; else fail naming the nearest miss."""
    import matplotlib.pyplot as plt

    key = _WHICH[which]
    free = [s for s in series if not any(s is t for t in taken)]
    for s in free:
        if _same(s.points, points):
            return s
    labelled = [s for s in free if _label_kind(s.label) == which]
    for s in labelled + [s for s in free if s not in labelled]:
        why = _why_not(s, which, points, log_history)
        if why:
            raise TodoCheckError(f"{why[0]}. Fix: {why[1]}")
    for s in labelled:
        if s.points is not None and len(s.points) != len(points):
            raise TodoCheckError(f"the {which} loss line ({s.named}) has {len(s.points)} points, the log has "
                                 f"{len(points)} entries with the key '{key}'. Fix: plot one point per log entry that "
                                 f"has the key '{key}'")
        if s.points is not None:
            raise TodoCheckError(f"the {which} loss line ({s.named}) has points that differ from the log "
                                 f"({_first_difference(s.points, points)}). Fix: plot x = entry['step'] and "
                                 f"y = entry['{key}'] as logged, without rounding or transforming them")
    for number in plt.get_fignums():
        other = plt.figure(number)
        if other is not figure and any(_same(s.points, points) for s in _series(other)):
            raise TodoCheckError(f"the {which} loss is drawn on another figure (pyplot figure {number}), not on the "
                                 "figure plot_losses returned: a second plt.figure() or plt.subplots() opened a new "
                                 "one. Fix: make one figure, fig, ax = plt.subplots(), draw both lines on that ax and "
                                 "return fig")
    found = sorted({s.label for s in series})
    raise TodoCheckError(f"no line of the figure holds the logged {which} losses (the {len(points)} entries with "
                         f"'{key}'; lines found: {found}). Fix: ax.plot(steps, values, label='{which} loss') with the "
                         f"(entry['step'], entry['{key}']) of every entry that has '{key}'")


def check_loss_plot(figure: object, log_history: list[dict]) -> None:
    """Check the student's figure: the logged train and eval losses against the step on one Axes, each line labelled
    (``"train loss"``, ``"eval loss"``, or another name that says which) and shown in a legend, both axes labelled.
    Lines are matched by their data, so extra lines (a smoothed curve, a marker) do no harm."""
    import types

    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    if isinstance(figure, Axes):
        raise TodoCheckError("plot_losses returned an Axes, not the Figure. Fix: return fig (from fig, ax = "
                             "plt.subplots()), or ax.figure")
    require(figure is not None, "plot_losses returned None", "end plot_losses with return fig")
    require(not isinstance(figure, types.ModuleType), "plot_losses returned the pyplot module (plt), not a figure",
            "return fig (from fig, ax = plt.subplots()), or plt.gcf()")
    require(not isinstance(figure, (tuple, list)), f"plot_losses returned a {type(figure).__name__} of "
            f"{len(figure) if isinstance(figure, (tuple, list)) else 0} items", "return the figure alone: return fig")
    require(isinstance(figure, Figure), f"plot_losses returned {type(figure).__name__}", "return the Figure (fig)")
    require(len(figure.axes) >= 1, "the figure has no Axes", "draw on fig, ax = plt.subplots()")

    expected = {which: _expected(log_history, key) for which, key in _WHICH.items()}
    series = _series(figure)
    found: dict[str, _Series] = {}
    for which in ("train", "eval"):
        if expected[which] or which == "train":
            found[which] = _find_or_diagnose(series, which, expected[which], log_history, list(found.values()), figure)

    lines = list(found.values())
    ax = lines[0].ax
    if len(lines) == 2 and lines[1].ax is not ax:
        other = lines[1].ax
        twins = ax.get_shared_x_axes().joined(ax, other) and ax.get_position().bounds == other.get_position().bounds
        raise TodoCheckError(
            "the train and eval losses are on separate Axes"
            + (": ax.twinx() gives the eval loss its own y scale, so the two curves cannot be compared by height"
               if twins else " (two subplots), so the two curves cannot be compared point by point")
            + ". Fix: draw both lines on one Axes: fig, ax = plt.subplots(), then ax.plot(...) twice")

    entries = _legend_entries(figure)
    shown = {which: _shown_label(s, entries) for which, s in found.items()}
    kinds = {which: _label_kind(label) for which, label in shown.items()}
    if kinds.get("train") == "eval" and kinds.get("eval") == "train":
        raise TodoCheckError(f"the labels are swapped: the line of the logged 'loss' is labelled {shown['train']!r} and "
                             f"the line of 'eval_loss' {shown['eval']!r}. Fix: label the (step, loss) line 'train "
                             "loss' and the (step, eval_loss) line 'eval loss'")
    for which, label in shown.items():
        require(label is not None, f"the {which} loss line has no label", f"pass label='{which} loss' to its ax.plot "
                "call, then call ax.legend()")
        require(kinds[which] == which, f"the {which} loss line is labelled {label!r}, which does not say it is the "
                f"{which} loss", f"label it '{which} loss'")
    texts = [text for _, text in entries]
    require(bool(entries) or any(ax.get_legend() for ax in figure.axes) or bool(figure.legends),
            "the figure has no legend, so the reader cannot tell the two lines apart",
            "call ax.legend() after plotting both lines")
    for which, label in shown.items():
        require(label in texts, f"the legend shows only {texts}, not {label!r}: ax.legend() ran before the {which} loss "
                "line was drawn (or got a shorter list of names)", "call ax.legend() once, after both ax.plot calls")

    require(bool(ax.get_xlabel()), "the x axis has no label", "call ax.set_xlabel('step')")
    require(bool(ax.get_ylabel()), "the y axis has no label", "call ax.set_ylabel('loss')")
    low = min((x for s in lines for x, _ in s.points or []), default=1.0)
    require(not (ax.get_xscale() == "log" and low <= 0), f"the plot has a logarithmic x axis, which cannot show step "
            f"{low:g} (the eval at the start of training)", "keep the x axis linear (no semilogx, no set_xscale('log')); "
            "a log y axis (ax.set_yscale('log')) is fine")
    passed(f"loss plot: {len(expected['train'])} train points and {len(expected['eval'])} eval points, one Axes, "
           "labelled")
