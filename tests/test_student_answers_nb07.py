"""Notebook 07's TODO, `plot_losses(log_history)`, as students write it: near misses that `check_loss_plot` must reject
with their own mistake named (curves on separate Axes or figures, eval against its index, the learning rate instead of
the loss, no labels or legend, ...), and right answers written differently from the solution that it must accept.
Every failure is one clean line, and a message that shows two points shows two that differ."""

from __future__ import annotations

import math
import random
import re
import time

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from labhelpers.checks import TodoCheckError, check_loss_plot  # noqa: E402


def trainer_log(total: int = 30, logging_steps: int = 1, eval_steps: int = 5, steps_per_epoch: int = 40,
                seed: int = 0) -> list[dict]:
    """A log_history as the Trainer writes it (eval_on_start, train entries every logging_steps with the loss rounded
    to 4 digits, eval entries every eval_steps, the final summary with train_loss): eval loss falls, then rises."""
    rng = random.Random(seed)

    def evaluation(step):
        loss = 2.1 + 0.9 * math.exp(-step / 6) + 0.012 * max(0, step - 14) + rng.uniform(-0.01, 0.01)
        return {"eval_loss": loss, "eval_runtime": 1.8 + rng.random(), "eval_samples_per_second": 8.5,
                "eval_steps_per_second": 1.1, "eval_entropy": 1.9, "eval_num_tokens": 600.0 * step,
                "eval_mean_token_accuracy": 0.55, "epoch": step / steps_per_epoch, "step": step}

    log = [evaluation(0)]
    for step in range(1, total + 1):
        if step % logging_steps == 0:
            log.append({"loss": round(3.0 * math.exp(-step / 9) + 1.7 + rng.uniform(-0.05, 0.05), 4),
                        "grad_norm": 2.0 + rng.random(), "learning_rate": 2e-4 * min(1, step / 3),
                        "entropy": 1.8, "num_tokens": 600.0 * step, "mean_token_accuracy": 0.5 + step / 100,
                        "epoch": step / steps_per_epoch, "step": step})
        if step % eval_steps == 0:
            log.append(evaluation(step))
    log.append({"train_runtime": 210.0, "train_samples_per_second": 0.6, "train_steps_per_second": 0.14,
                "total_flos": 1.2e12, "train_loss": 2.3456, "epoch": total / steps_per_epoch, "step": total})
    return log


LOG = trainer_log()


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _points(log, key):
    return [e["step"] for e in log if key in e], [e[key] for e in log if key in e]


def _finish(ax):
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()


# ------------------------------------------------------------------------------------------- wrong answers
def separate_axes(log_history):
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3))
    ax1.plot(*_points(log_history, "loss"), label="train loss")
    ax2.plot(*_points(log_history, "eval_loss"), label="eval loss")
    for ax in (ax1, ax2):
        _finish(ax)
    return fig


def twin_axis(log_history):
    fig, ax = plt.subplots()
    ax.plot(*_points(log_history, "loss"), label="train loss")
    other = ax.twinx()
    other.plot(*_points(log_history, "eval_loss"), label="eval loss", color="C1")
    _finish(ax)
    other.set_ylabel("eval loss")
    other.legend()
    return fig


def separate_figures(log_history):
    fig = plt.figure()
    plt.plot(*_points(log_history, "loss"), label="train loss")
    _finish(plt.gca())
    plt.figure()
    plt.plot(*_points(log_history, "eval_loss"), label="eval loss")
    _finish(plt.gca())
    return fig


def eval_against_its_index(log_history):
    fig, ax = plt.subplots()
    ax.plot(*_points(log_history, "loss"), label="train loss")
    ax.plot([e["eval_loss"] for e in log_history if "eval_loss" in e], label="eval loss")
    _finish(ax)
    return fig


def train_against_epoch(log_history):
    fig, ax = plt.subplots()
    ax.plot([e["epoch"] for e in log_history if "loss" in e], [e["loss"] for e in log_history if "loss" in e],
            label="train loss")
    ax.plot(*_points(log_history, "eval_loss"), label="eval loss")
    _finish(ax)
    return fig


def no_labels(log_history):
    fig, ax = plt.subplots()
    ax.plot(*_points(log_history, "loss"))
    ax.plot(*_points(log_history, "eval_loss"))
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    return fig


def no_legend(log_history):
    fig, ax = plt.subplots()
    ax.plot(*_points(log_history, "loss"), label="train loss")
    ax.plot(*_points(log_history, "eval_loss"), label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    return fig


def legend_too_early(log_history):
    fig, ax = plt.subplots()
    ax.plot(*_points(log_history, "loss"), label="train loss")
    ax.legend()
    ax.plot(*_points(log_history, "eval_loss"), label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    return fig


def learning_rate_for_train(log_history):
    fig, ax = plt.subplots()
    ax.plot(*_points(log_history, "learning_rate"), label="train loss")
    ax.plot(*_points(log_history, "eval_loss"), label="eval loss")
    _finish(ax)
    return fig


def grad_norm_for_train(log_history):
    fig, ax = plt.subplots()
    ax.plot(*_points(log_history, "grad_norm"), label="train loss")
    ax.plot(*_points(log_history, "eval_loss"), label="eval loss")
    _finish(ax)
    return fig


def only_train(log_history):
    fig, ax = plt.subplots()
    ax.plot(*_points(log_history, "loss"), label="train loss")
    _finish(ax)
    return fig


def log_of_the_loss(log_history):
    fig, ax = plt.subplots()
    steps, losses = _points(log_history, "loss")
    ax.plot(steps, np.log(losses), label="train loss")
    steps, losses = _points(log_history, "eval_loss")
    ax.plot(steps, np.log(losses), label="eval loss")
    _finish(ax)
    ax.set_ylabel("log loss")
    return fig


def log_x_axis(log_history):
    fig, ax = plt.subplots()
    ax.semilogx(*_points(log_history, "loss"), label="train loss")
    ax.semilogx(*_points(log_history, "eval_loss"), label="eval loss")
    _finish(ax)
    return fig


def labels_swapped(log_history):
    fig, ax = plt.subplots()
    ax.plot(*_points(log_history, "loss"), label="eval loss")
    ax.plot(*_points(log_history, "eval_loss"), label="train loss")
    _finish(ax)
    return fig


def dataframe_with_nan(log_history):
    df = pd.DataFrame(log_history)
    fig, ax = plt.subplots()
    df.plot(x="step", y="loss", ax=ax, label="train loss")
    df.plot(x="step", y="eval_loss", ax=ax, label="eval loss")
    ax.set_ylabel("loss")
    return fig


def every_key_ending_in_loss(log_history):
    train = [(e["step"], v) for e in log_history for k, v in e.items() if k.endswith("loss") and not k.startswith("eval")]
    fig, ax = plt.subplots()
    ax.plot(*zip(*train), label="train loss")
    ax.plot(*_points(log_history, "eval_loss"), label="eval loss")
    _finish(ax)
    return fig


def labelled_with_the_keys(log_history):
    fig, ax = plt.subplots()
    ax.plot(*_points(log_history, "loss"), label="loss")
    ax.plot(*_points(log_history, "eval_loss"), label="eval_loss")
    _finish(ax)
    return fig


def no_axis_labels(log_history):
    fig, ax = plt.subplots()
    ax.plot(*_points(log_history, "loss"), label="train loss")
    ax.plot(*_points(log_history, "eval_loss"), label="eval loss")
    ax.legend()
    return fig


def returns_the_axes(log_history):
    fig, ax = plt.subplots()
    ax.plot(*_points(log_history, "loss"), label="train loss")
    ax.plot(*_points(log_history, "eval_loss"), label="eval loss")
    _finish(ax)
    return ax


def forgets_to_return(log_history):
    fig, ax = plt.subplots()
    ax.plot(*_points(log_history, "loss"), label="train loss")
    ax.plot(*_points(log_history, "eval_loss"), label="eval loss")
    _finish(ax)


def rounded_eval(log_history):
    fig, ax = plt.subplots()
    ax.plot(*_points(log_history, "loss"), label="train loss")
    ax.plot([e["step"] for e in log_history if "eval_loss" in e],
            [round(e["eval_loss"], 2) for e in log_history if "eval_loss" in e], label="eval loss")
    _finish(ax)
    return fig


# (name, student function, distinctive words of the message it must get)
WRONG = [
    ("train and eval on separate Axes", separate_axes, "on separate Axes"),
    ("eval on ax.twinx()", twin_axis, "twinx"),
    ("eval on a second figure", separate_figures, "on another figure"),
    ("eval against its index", eval_against_its_index, "against its index"),
    ("train against the epoch", train_against_epoch, "against the epoch"),
    ("no label=", no_labels, "the train loss line has no label"),
    ("no legend", no_legend, "no legend"),
    ("legend before the eval line", legend_too_early, "the legend shows only ['train loss']"),
    ("learning rate as the train loss", learning_rate_for_train, "plots learning_rate, not loss"),
    ("grad norm as the train loss", grad_norm_for_train, "plots grad_norm, not loss"),
    ("only the train loss", only_train, "no line of the figure holds the logged eval losses"),
    ("log of the loss", log_of_the_loss, "plots log(loss)"),
    ("log x axis", log_x_axis, "logarithmic x axis"),
    ("labels swapped", labels_swapped, "labels are swapped"),
    ("DataFrame columns with NaN", dataframe_with_nan, "NaN"),
    ("the summary's train_loss too", every_key_ending_in_loss, "train_loss"),
    ("labelled with the log keys", labelled_with_the_keys, "labelled 'loss'"),
    ("no axis labels", no_axis_labels, "the x axis has no label"),
    ("returns the Axes", returns_the_axes, "returned an Axes"),
    ("no return", forgets_to_return, "returned None"),
    ("eval rounded to 2 decimals", rounded_eval, "differ from the log"),
]


# ------------------------------------------------------------------------------------------- right answers
def pyplot_state_machine(log_history):
    """plt.* calls on the current figure, the figure returned with plt.gcf()."""
    plt.figure(figsize=(7, 3.5))
    steps = [entry["step"] for entry in log_history if "loss" in entry]
    plt.plot(steps, [entry["loss"] for entry in log_history if "loss" in entry], "o-", label="train loss")
    evals = [entry for entry in log_history if "eval_loss" in entry]
    plt.plot([entry["step"] for entry in evals], [entry["eval_loss"] for entry in evals], "s--", label="eval loss")
    plt.xlabel("optimizer step")
    plt.ylabel("cross-entropy")
    plt.legend()
    return plt.gcf()


def pandas_dropna(log_history):
    """A DataFrame of the log, each line from the rows that have its column (pandas sets the x label)."""
    df = pd.DataFrame(log_history)
    fig, ax = plt.subplots()
    df.dropna(subset=["loss"]).plot(x="step", y="loss", ax=ax, label="Train loss")
    df.dropna(subset=["eval_loss"]).plot(x="step", y="eval_loss", ax=ax, label="Eval loss", marker="o")
    ax.set_ylabel("loss")
    return fig


def eval_as_scatter_and_figure_legend(log_history):
    """Eval points as a scatter (no line between them), a figure-level legend, the OO API without pyplot."""
    fig = Figure(figsize=(6, 3))
    ax = fig.add_subplot()
    train = np.array([(e["step"], e["loss"]) for e in log_history if "loss" in e], dtype=np.float32)
    ax.plot(train[:, 0], train[:, 1], label="training loss")
    ax.scatter([e["step"] for e in log_history if "eval_loss" in e],
               [e["eval_loss"] for e in log_history if "eval_loss" in e], label="validation loss", color="C3")
    ax.set(xlabel="step", ylabel="loss", yscale="log")
    fig.legend()
    return fig


def one_plot_call_and_legend_names(log_history):
    """Both lines in one ax.plot call, named by ax.legend([...]); axis labels with ax.set()."""
    tx, ty = zip(*[(e["step"], e["loss"]) for e in log_history if "loss" in e])
    ex, ey = zip(*[(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e])
    fig, ax = plt.subplots()
    ax.plot(tx, ty, "-", ex, ey, "o-")
    ax.legend(["train loss", "eval loss"])
    ax.set(xlabel="step", ylabel="loss")
    return fig


def with_extra_lines(log_history):
    """A smoothed train curve and the best eval step marked too: extra lines are fine."""
    fig, ax = plt.subplots()
    steps, losses = _points(log_history, "loss")
    ax.plot(steps, losses, alpha=0.4, label="train_loss")
    ax.plot(steps, pd.Series(losses).rolling(5, min_periods=1).mean(), label="train loss (smoothed)")
    esteps, elosses = _points(log_history, "eval_loss")
    ax.plot(esteps, elosses, marker="o", label="eval_loss")
    ax.axvline(esteps[int(np.argmin(elosses))], color="grey", ls=":")
    _finish(ax)
    return fig


def errorbar_train(log_history):
    """The train loss as ax.errorbar (its label sits on the container), the eval loss with ax.plot."""
    fig, ax = plt.subplots()
    steps, losses = _points(log_history, "loss")
    ax.errorbar(steps, losses, yerr=[0.02] * len(losses), label="train loss", capsize=2)
    ax.plot(*_points(log_history, "eval_loss"), "o-", label="eval loss")
    _finish(ax)
    return fig


RIGHT = [
    ("pyplot state machine", pyplot_state_machine),
    ("errorbar for the train loss", errorbar_train),
    ("pandas with dropna", pandas_dropna),
    ("eval as a scatter, fig.legend, Figure()", eval_as_scatter_and_figure_legend),
    ("one plot call, legend([...])", one_plot_call_and_legend_names),
    ("extra lines, labels by log key with train/eval", with_extra_lines),
]


@pytest.mark.parametrize("name, student, words", WRONG, ids=[w[0] for w in WRONG])
def test_wrong_plot_is_named(name, student, words):
    with pytest.raises(TodoCheckError) as err:
        check_loss_plot(student(LOG), LOG)
    assert words in str(err.value) and "Fix:" in str(err.value), str(err.value)


@pytest.mark.parametrize("name, student", RIGHT, ids=[r[0] for r in RIGHT])
def test_right_plot_is_accepted(name, student, capsys):
    check_loss_plot(student(LOG), LOG)
    assert capsys.readouterr().out.startswith("✓ loss plot: 30 train points and 7 eval points"), name


@pytest.mark.parametrize("name, student", RIGHT[:2], ids=[r[0] for r in RIGHT[:2]])
def test_right_plot_is_accepted_on_a_colab_shaped_log(name, student, capsys):
    """Logging every 2 steps, eval every 12, 96 steps: the check is not tied to the ci log's shape."""
    log = trainer_log(total=96, logging_steps=2, eval_steps=12, seed=3)
    check_loss_plot(student(log), log)
    assert capsys.readouterr().out.startswith("✓ loss plot: 48 train points and 9 eval points")


@pytest.mark.parametrize("name, student, words", WRONG, ids=[w[0] for w in WRONG])
def test_every_failure_is_one_clean_line(name, student, words):
    """A TodoCheckError, never another exception from inside the check; one line in Jupyter."""
    try:
        check_loss_plot(student(LOG), LOG)
    except TodoCheckError as err:
        shown = err._render_traceback_()
        assert type(err) is TodoCheckError and len(shown) == 1 and "\n" not in shown[0], shown
        assert "Traceback" not in shown[0]
    else:
        pytest.fail(f"{name} was accepted")


def test_a_differing_point_is_shown_with_the_digits_that_differ():
    """The held-out trial's complaint: the 'first differing point' showed the same numbers on both sides."""
    for student in (eval_against_its_index, rounded_eval, every_key_ending_in_loss):
        with pytest.raises(TodoCheckError) as err:
            check_loss_plot(student(LOG), LOG)
        for drawn, logged in re.findall(r"drawn \(([^)]*)\) vs logged \(([^)]*)\)", str(err.value)):
            assert drawn != logged, str(err.value)
    log = [dict(e) for e in LOG]
    fig, ax = plt.subplots()
    ax.plot(*_points(log, "loss"), label="train loss")
    steps, losses = _points(log, "eval_loss")
    ax.plot(steps, [v * (1 + 3e-5) for v in losses], label="eval loss")  # just past the tolerance (rel 1e-5)
    _finish(ax)
    with pytest.raises(TodoCheckError) as err:
        check_loss_plot(fig, log)
    drawn, logged = re.search(r"drawn \(([^)]*)\) vs logged \(([^)]*)\)", str(err.value)).groups()
    assert drawn != logged, str(err.value)


def test_not_a_figure_is_named_without_a_crash():
    for value, words in ((None, "returned None"), ((plt.figure(), None), "returned a tuple"), (plt, "the pyplot module"),
                         ("fig", "returned str")):
        with pytest.raises(TodoCheckError, match=re.escape(words)):
            check_loss_plot(value, LOG)


def test_the_check_cost_is_small():
    fig = pyplot_state_machine(LOG)
    start = time.perf_counter()
    check_loss_plot(fig, LOG)
    assert time.perf_counter() - start < 1


def test_the_solution_notebooks_answer_passes(capsys):
    """The TODO cell of solutions/07_loss_curves.ipynb, as it is, passes the check."""
    import json
    from pathlib import Path

    cells = json.loads((Path(__file__).parents[1] / "solutions" / "07_loss_curves.ipynb").read_text())["cells"]
    source = next("".join(c["source"]) for c in cells if "def plot_losses" in "".join(c["source"]))
    namespace: dict = {"plt": plt}
    exec(source, namespace)
    check_loss_plot(namespace["plot_losses"](LOG), LOG)
    assert capsys.readouterr().out.startswith("✓ loss plot: 30 train points and 7 eval points")
