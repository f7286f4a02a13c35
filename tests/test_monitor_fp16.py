"""SanityMonitor under fp16 AMP: a step the loss scaler skipped (finite loss, Inf/NaN grad norm) must not stop the run.

The callback is driven directly with the args/state/control the Trainer would pass; no model is trained.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from transformers import TrainerControl, TrainerState, TrainingArguments

from labhelpers.sanity import SanityMonitor
from labhelpers.sanity.monitor import FP16_FAIL_AFTER, FP16_WARN_AFTER

INF, NAN = float("inf"), float("nan")


def fake_args(fp16: bool, bf16: bool = False) -> SimpleNamespace:
    """The TrainingArguments fields the monitor reads."""
    return SimpleNamespace(fp16=fp16, bf16=bf16, logging_nan_inf_filter=False)


def drive(monitor: SanityMonitor, args, logs: list[tuple[int, dict]]) -> TrainerControl:
    """on_train_begin, then on_log for each (step, logs) until the monitor asks to stop; returns the control."""
    state, control = TrainerState(), TrainerControl()
    monitor.on_train_begin(args, state, control)
    for step, entry in logs:
        state.global_step = step
        monitor.on_log(args, state, control, logs=dict(entry))
        if control.should_training_stop:
            break
    return control


def skipped(steps, loss: float = 2.0, grad: float = INF) -> list[tuple[int, dict]]:
    return [(s, {"loss": loss, "grad_norm": grad, "learning_rate": 1e-4}) for s in steps]


def healthy(steps, loss: float = 2.0, grad: float = 1.0) -> list[tuple[int, dict]]:
    return [(s, {"loss": loss, "grad_norm": grad, "learning_rate": 1e-4}) for s in steps]


def checks(monitor: SanityMonitor) -> list[tuple[str, str]]:
    return [(f.check, f.status) for f in monitor.findings]


def test_thresholds_are_a_handful_then_beyond_any_scale():
    assert (FP16_WARN_AFTER, FP16_FAIL_AFTER) == (5, 20)
    assert 2.0 ** 16 * 0.5 ** FP16_FAIL_AFTER < 1  # by the fail threshold the halved scale is below 1


def test_fp16_calibration_skips_then_finite_do_not_stop_warn_or_fail():
    monitor = SanityMonitor(verbose=False)
    control = drive(monitor, fake_args(fp16=True), skipped([1, 2, 3]) + healthy(range(4, 9)))
    assert control.should_training_stop is False
    assert monitor.findings == []
    assert monitor.skipped_steps == [1, 2, 3]
    assert [s for s, _ in monitor.losses] == list(range(1, 9))  # a skipped step's loss is still a real loss
    report = monitor.report()
    assert report.ok and report.warnings == []
    total = report.by_check("fp16_skipped_steps_total")
    assert total.status == "pass" and "3 of 8 logged steps" in total.message and "steps 1-3" in total.message
    assert report.extras["fp16_skipped_steps"] == [1, 2, 3]


def test_fp16_skip_with_real_training_arguments(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, fp16=True, logging_nan_inf_filter=False, report_to=[])
    monitor = SanityMonitor(verbose=False)
    control = drive(monitor, args, skipped([1, 2]) + healthy([3]))
    assert control.should_training_stop is False and monitor.report().ok and monitor.skipped_steps == [1, 2]


def test_fp16_long_streak_warns_at_threshold_then_fails_and_stops():
    monitor = SanityMonitor(verbose=False)
    state, control, args = TrainerState(), TrainerControl(), fake_args(fp16=True)
    monitor.on_train_begin(args, state, control)
    for step in range(1, FP16_FAIL_AFTER + 1):
        state.global_step = step
        monitor.on_log(args, state, control, logs={"loss": 2.5, "grad_norm": INF})
        if step == FP16_WARN_AFTER - 1:
            assert monitor.findings == []
        if step == FP16_WARN_AFTER:
            assert checks(monitor) == [("fp16_skipped_steps", "warn")]
            assert not control.should_training_stop
        if step == FP16_FAIL_AFTER - 1:
            assert checks(monitor) == [("fp16_skipped_steps", "warn")] and not control.should_training_stop
    assert checks(monitor) == [("fp16_skipped_steps", "warn"), ("fp16_scaler_stuck", "fail")]
    assert control.should_training_stop is True
    warn, fail = monitor.findings
    assert "steps 1-5" in warn.message and "loss scaler" in warn.message and "fp16=True" in warn.message
    assert "bf16" in warn.fix and "LR" in warn.fix
    assert f"steps 1-{FP16_FAIL_AFTER}" in fail.message and "training stopped" in fail.message
    assert "bf16=True" in fail.fix and "fp32" in fail.fix
    report = monitor.report()
    assert not report.ok and [f.check for f in report.failed] == ["fp16_scaler_stuck"]
    assert f"skipped {FP16_FAIL_AFTER} of {FP16_FAIL_AFTER}" in report.by_check("fp16_skipped_steps_total").message


def test_fp16_custom_thresholds_and_stop_on_nan_false():
    monitor = SanityMonitor(verbose=False, fp16_warn_after=2, fp16_fail_after=4, stop_on_nan=False)
    control = drive(monitor, fake_args(fp16=True), skipped(range(1, 7)))
    assert checks(monitor) == [("fp16_skipped_steps", "warn"), ("fp16_scaler_stuck", "fail")]
    assert control.should_training_stop is False and monitor.skipped_steps == list(range(1, 7))


@pytest.mark.parametrize("bad_loss", [NAN, INF])
def test_fp16_non_finite_loss_still_fails_and_stops(bad_loss):
    monitor = SanityMonitor(verbose=False)
    logs = healthy([1, 2]) + [(3, {"loss": bad_loss, "grad_norm": INF})] + healthy([4])
    control = drive(monitor, fake_args(fp16=True), logs)
    assert control.should_training_stop is True
    assert checks(monitor) == [("nan_loss", "fail")] and "step 3" in monitor.findings[0].message
    assert monitor.skipped_steps == []


@pytest.mark.parametrize("args", [fake_args(fp16=False, bf16=True), fake_args(fp16=False), SimpleNamespace()],
                         ids=["bf16", "fp32", "no-precision-fields"])
@pytest.mark.parametrize("bad_grad", [INF, NAN])
def test_without_fp16_a_non_finite_grad_norm_fails_and_stops_as_before(args, bad_grad):
    monitor = SanityMonitor(verbose=False)
    control = drive(monitor, args, healthy([1]) + skipped([2], grad=bad_grad) + healthy([3]))
    assert control.should_training_stop is True
    assert checks(monitor) == [("nan_grad_norm", "fail")] and "step 2" in monitor.findings[0].message
    assert monitor.skipped_steps == [] and [s for s, _ in monitor.losses] == [1]  # stopped at step 2, nothing after


def test_fp32_real_training_arguments_fail_on_inf_grad_norm(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, fp16=False, logging_nan_inf_filter=False, report_to=[])
    monitor = SanityMonitor(verbose=False)
    control = drive(monitor, args, skipped([1]))
    assert control.should_training_stop is True and checks(monitor) == [("nan_grad_norm", "fail")]


def test_fp16_inf_grad_norm_without_a_loss_still_fails():
    monitor = SanityMonitor(verbose=False)
    control = drive(monitor, fake_args(fp16=True), [(1, {"grad_norm": INF})])
    assert control.should_training_stop is True and checks(monitor) == [("nan_grad_norm", "fail")]


def test_finite_grad_norm_resets_the_streak():
    monitor = SanityMonitor(verbose=False)
    warn_minus_one = list(range(1, FP16_WARN_AFTER))  # one short of the warning
    logs = skipped(warn_minus_one) + healthy([FP16_WARN_AFTER]) + skipped(range(FP16_WARN_AFTER + 1, 2 * FP16_WARN_AFTER))
    control = drive(monitor, fake_args(fp16=True), logs)
    assert monitor.findings == [] and control.should_training_stop is False
    assert len(monitor.skipped_steps) == 2 * (FP16_WARN_AFTER - 1)  # the total still counts both streaks
    # without the reset the same 8 skips would have warned: check that a plain streak of that length does
    straight = SanityMonitor(verbose=False)
    drive(straight, fake_args(fp16=True), skipped(range(1, 2 * FP16_WARN_AFTER - 1)))
    assert checks(straight) == [("fp16_skipped_steps", "warn")]


def test_a_second_streak_warns_again():
    monitor = SanityMonitor(verbose=False)
    logs = skipped(range(1, 6)) + healthy([6]) + skipped(range(100, 105))
    drive(monitor, fake_args(fp16=True), logs)
    fp16 = [f for f in monitor.findings if f.check.startswith("fp16")]  # a flat loss past step 50 also warns (plateau)
    assert [(f.check, f.status) for f in fp16] == [("fp16_skipped_steps", "warn")] * 2
    assert "steps 1-5" in fp16[0].message and "steps 100-104" in fp16[1].message


def test_skipped_grad_norm_stays_out_of_the_spike_history():
    monitor = SanityMonitor(verbose=False)
    logs = healthy([1, 2, 3], grad=1.0) + skipped([4], grad=INF) + skipped([5], grad=NAN) + healthy([6], grad=1.1)
    drive(monitor, fake_args(fp16=True), logs)
    assert monitor.grad_norms == [1.0, 1.0, 1.0, 1.1]
    assert all(math.isfinite(g) for g in monitor.grad_norms)
    # the spike check still works afterwards: the history is clean, so a real spike is flagged
    state, control = TrainerState(global_step=7), TrainerControl()
    monitor.on_log(fake_args(fp16=True), state, control, logs={"loss": 2.0, "grad_norm": 50.0})
    assert checks(monitor) == [("grad_norm_spike", "warn")] and not control.should_training_stop
