"""LiveCurves driven by a fake training (its callback events called directly), and TensorBoard logs of a tiny real run."""

from __future__ import annotations

import pytest

# what Trainer logs: a train entry per logging step, an eval entry every 2 steps
LOGS = [{"loss": 2.5 - 0.1 * s, "grad_norm": 3.0 / s, "learning_rate": 1e-4 * min(1.0, s / 2), "epoch": s / 8}
        for s in range(1, 7)]
EVALS = {2: 2.45, 4: 2.3, 6: 2.35}


@pytest.fixture
def fake_training(tmp_path):
    """``run(callback)`` plays 6 steps of logs (and 3 evaluations) through the callback; returns the TrainerState."""
    from transformers import TrainerControl, TrainerState, TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True, report_to="none")

    def run(callback, state=None):
        state = state or TrainerState()
        control = TrainerControl()
        callback.on_train_begin(args, state, control)
        for step, logs in enumerate(LOGS, start=1):
            state.global_step = step
            state.log_history.append({**logs, "step": step})
            callback.on_log(args, state, control, logs=dict(logs))
            if step in EVALS:
                metrics = {"eval_loss": EVALS[step], "eval_runtime": 0.1, "epoch": step / 8}
                state.log_history.append({**metrics, "step": step})
                callback.on_log(args, state, control, logs=dict(metrics))
                callback.on_evaluate(args, state, control, metrics=metrics)
        summary = {"train_runtime": 9.0, "train_loss": 2.2, "epoch": 0.75}
        state.log_history.append({**summary, "step": state.global_step})
        callback.on_log(args, state, control, logs=summary)
        callback.on_train_end(args, state, control)
        return state

    return run


def test_headless_saves_the_png_once_with_the_logged_data(tmp_path, fake_training):
    from labhelpers.views.live import LiveCurves, curve_points

    curves = LiveCurves(tmp_path / "plots" / "live.png")
    assert curves.live is False  # pytest: no notebook frontend
    state = fake_training(curves)
    png = tmp_path / "plots" / "live.png"
    assert png.is_file() and png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
    assert curves.redraws == 0  # nothing drawn per step
    assert curves.points == curve_points(state.log_history)
    loss, lr, grad = curves.figure().axes
    train, evals = loss.lines
    assert train.get_xydata().tolist() == [[s, LOGS[s - 1]["loss"]] for s in range(1, 7)]
    assert evals.get_xydata().tolist() == [[s, v] for s, v in EVALS.items()]
    assert lr.lines[0].get_ydata().tolist() == [e["learning_rate"] for e in LOGS]
    assert grad.lines[0].get_ydata().tolist() == [e["grad_norm"] for e in LOGS]


def test_live_redraws_are_throttled(tmp_path, fake_training):
    from labhelpers.views.live import LiveCurves

    every_log = LiveCurves(tmp_path / "a.png", live=True, min_interval_s=0.0, budget=1e9)
    fake_training(every_log)
    assert every_log.redraws == len(LOGS) + len(EVALS)  # no throttle: each train log and each evaluation
    throttled = LiveCurves(tmp_path / "b.png", live=True, min_interval_s=3600.0, budget=1e-9)
    fake_training(throttled)
    assert throttled.redraws == 1  # the first evaluation (nothing drawn yet); after it the budget forbids more
    assert (tmp_path / "b.png").is_file()


def test_a_resumed_run_keeps_the_earlier_curves(tmp_path, fake_training):
    from transformers import TrainerState

    from labhelpers.views.live import LiveCurves

    state = TrainerState()
    state.log_history = [{"loss": 3.0, "learning_rate": 0.0, "grad_norm": 5.0, "step": 0}]  # from the checkpoint
    curves = LiveCurves(tmp_path / "resumed.png")
    fake_training(curves, state)
    assert curves.points["loss"][0] == (0, 3.0) and len(curves.points["loss"]) == len(LOGS) + 1


def test_a_nan_loss_is_named_in_the_title():
    from labhelpers.views.live import curves_figure

    fig = curves_figure({"loss": [(1, 2.0), (2, float("nan"))]}, title="run")
    assert fig._suptitle.get_text() == "run: train loss is not finite from step 2"


def test_tensorboard_dir_and_magic():
    from labhelpers.run.tracking import tensorboard_dir, tensorboard_magic

    assert tensorboard_dir("runs/ci", "07_overfit").parts[-2:] == ("tensorboard", "07_overfit")
    assert tensorboard_magic("runs/ci").splitlines()[0] == "%load_ext tensorboard"


@pytest.mark.slow
def test_tiny_real_run_writes_tensorboard_scalars_and_live_curves(tmp_path, model_and_tokenizer):
    import copy

    from trl import SFTTrainer

    from labhelpers.data.datasets import load_chat_dataset
    from labhelpers.model.hardware import recipe_for
    from labhelpers.views.live import LiveCurves
    from labhelpers.run.tracking import read_scalars, tensorboard_callback, tensorboard_dir
    from labhelpers.views.widgets import schedule_curve

    model, tokenizer = model_and_tokenizer
    rows = load_chat_dataset(source="bundled")["train"].select(range(4)).select_columns(["messages"])
    config = recipe_for("cpu", "ci").sft_config(tmp_path / "out", max_steps=2, max_length=64, logging_steps=1,
                                                per_device_train_batch_size=1, gradient_accumulation_steps=1,
                                                eval_strategy="no", save_strategy="no", disable_tqdm=True)
    logdir = tensorboard_dir(tmp_path, "tiny")
    curves = LiveCurves(tmp_path / "plots" / "tiny.png")
    trainer = SFTTrainer(model=copy.deepcopy(model), args=config, train_dataset=rows, processing_class=tokenizer,
                         callbacks=[tensorboard_callback(logdir), curves])
    trainer.train()

    scalars = read_scalars(logdir)
    logged = [e for e in trainer.state.log_history if "loss" in e]
    assert scalars["train/loss"] == [(e["step"], pytest.approx(e["loss"])) for e in logged]
    assert [s for s, _ in scalars["train/learning_rate"]] == [1, 2]
    assert [lr for _, lr in scalars["train/learning_rate"]] == pytest.approx(
        schedule_curve(config.lr_scheduler_type, config.learning_rate, config.warmup_steps, 2))  # what 08 draws
    assert (tmp_path / "plots" / "tiny.png").stat().st_size > 1000
    assert curves.points["loss"] == [(e["step"], e["loss"]) for e in logged]
    assert not (tmp_path / "out" / "runs").exists()  # nothing in the default <output_dir>/runs folder
