"""TODO check of notebook 07 (loss curves): the student's figure holds the logged train and eval losses."""

from __future__ import annotations

from labhelpers.checks.core import passed, require


def _line_points(line: object) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in zip(line.get_xdata(), line.get_ydata())]


def check_loss_plot(figure: object, log_history: list[dict]) -> None:
    """Check the student's figure: one Axes with a 'train loss' and an 'eval loss' line holding the logged points."""
    from matplotlib.figure import Figure

    require(isinstance(figure, Figure), f"plot_losses returned {type(figure).__name__}", "return the Figure (fig)")
    require(len(figure.axes) >= 1, "the figure has no Axes", "draw on fig, ax = plt.subplots()")
    lines = {line.get_label(): line for ax in figure.axes for line in ax.get_lines()}
    expected = {
        "train loss": [(float(e["step"]), float(e["loss"])) for e in log_history if "loss" in e],
        "eval loss": [(float(e["step"]), float(e["eval_loss"])) for e in log_history if "eval_loss" in e],
    }
    for label, points in expected.items():
        require(label in lines, f"no line labelled {label!r} (labels found: {sorted(lines)})",
                f"pass label={label!r} to ax.plot")
        drawn = _line_points(lines[label])
        require(len(drawn) == len(points), f"the {label!r} line has {len(drawn)} points, the log has {len(points)}",
                "plot one point per log entry that has the key" + (" 'eval_loss'" if label == "eval loss" else " 'loss'"))
        require(all(abs(a[0] - b[0]) < 1e-9 and abs(a[1] - b[1]) < 1e-6 for a, b in zip(drawn, points)),
                f"the {label!r} line's points differ from the log (first: {drawn[:1]} vs {points[:1]})",
                "use x = entry['step'] and y = the loss value")
    ax = lines["train loss"].axes
    require(bool(ax.get_xlabel()) and bool(ax.get_ylabel()), "an axis has no label", "call ax.set_xlabel / ax.set_ylabel")
    passed(f"loss plot: {len(expected['train loss'])} train points and {len(expected['eval loss'])} eval points, labelled")
