"""SanityMonitor: a TrainerCallback that watches the logs while training runs and stops a run that went NaN.

    trainer.add_callback(SanityMonitor())     # logging_steps=1 lets it see every step
    trainer.train(); print(monitor.report())

Under fp16 AMP a non-finite grad norm with a finite loss is a step the loss scaler skipped (it overflowed and the
update was dropped), not a NaN run: the monitor counts those, warns after a streak and stops only when the scaler
cannot find a scale at all.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from transformers import TrainerCallback

from labhelpers.sanity.report import Finding, SanityReport


def is_spike(value: float, history: list[float], factor: float = 3.0, min_history: int = 3) -> bool:
    """True when ``value`` exceeds ``factor`` × the median of earlier values (needs ``min_history`` of them).

    >>> is_spike(9.0, [2.0, 2.1, 1.9]), is_spike(3.0, [2.0, 2.1, 1.9]), is_spike(9.0, [2.0])
    (True, False, False)
    """
    if len(history) < min_history:
        return False
    median = statistics.median(history)
    return median > 0 and value > factor * median


def growing_gap(gaps: list[float], patience: int = 3) -> bool:
    """True when the eval−train gap grew at each of the last ``patience`` evaluations.

    >>> growing_gap([0.1, 0.2, 0.3, 0.5]), growing_gap([0.1, 0.3, 0.2, 0.5])
    (True, False)
    """
    tail = gaps[-(patience + 1):]
    return len(tail) == patience + 1 and all(b > a for a, b in zip(tail, tail[1:]))


def describe_steps(steps: list[int], shown: int = 6) -> str:
    """Name a list of (logged) steps briefly: one step, a consecutive range, or the first and last few.

    >>> describe_steps([4]), describe_steps([1, 2, 3]), describe_steps([10, 20, 30])
    ('step 4', 'steps 1-3', 'steps 10, 20, 30')
    >>> describe_steps([10 * i for i in range(1, 21)])
    'steps 10, 20, 30, …, 180, 190, 200 (20 steps)'
    """
    if len(steps) == 1:
        return f"step {steps[0]}"
    if steps == list(range(steps[0], steps[-1] + 1)):
        return f"steps {steps[0]}-{steps[-1]}"
    if len(steps) <= shown:
        return "steps " + ", ".join(map(str, steps))
    half = shown // 2
    return "steps " + ", ".join(map(str, steps[:half])) + ", …, " + ", ".join(map(str, steps[-half:])) + f" ({len(steps)} steps)"


def _non_finite(value: Any) -> bool:
    """True when a logged value is present and NaN/Inf.

    >>> _non_finite(float("inf")), _non_finite(1.5), _non_finite(None)
    (True, False, False)
    """
    return value is not None and not math.isfinite(float(value))


# fp16 AMP's GradScaler starts at scale 2^16 and halves it on every overflowing step (the step is skipped); it only
# grows it back after 2000 clean steps. Calibration normally takes a handful of skipped steps, so 5 in a row is more
# than calibration and worth a warning. After 16 in a row the scale is 2^0 = 1 (no scaling left), after 20 it is
# 1/16: the gradients overflow even unscaled, so no scale will ever fit and the run is not training at all.
FP16_WARN_AFTER = 5
FP16_FAIL_AFTER = 20


class SanityMonitor(TrainerCallback):
    """Watch loss and grad norm: stop on NaN/Inf, flag spikes, zero loss, growing eval gap, no progress.

    Under fp16 AMP (``args.fp16``) an Inf/NaN grad norm with a finite loss is a step the loss scaler skipped: it is
    counted in ``skipped_steps`` (warn after ``fp16_warn_after`` in a row, fail and stop after ``fp16_fail_after``).
    """

    def __init__(self, spike_factor: float = 3.0, window: int = 20, gap_patience: int = 3,
                 plateau_steps: int = 50, stop_on_nan: bool = True, verbose: bool = True,
                 fp16_warn_after: int = FP16_WARN_AFTER, fp16_fail_after: int = FP16_FAIL_AFTER) -> None:
        self.spike_factor = spike_factor  # a value above factor × running median is a spike
        self.window = window  # running-median window (logged values)
        self.gap_patience = gap_patience  # evaluations in a row with a growing eval−train gap before advising to stop
        self.plateau_steps = plateau_steps  # steps after which the loss must have gone down
        self.stop_on_nan = stop_on_nan
        self.verbose = verbose
        self.fp16_warn_after = fp16_warn_after  # logged fp16 skipped steps in a row before a warning
        self.fp16_fail_after = fp16_fail_after  # ... before a fail (the scaler cannot find a scale); stops the run
        self.skipped_steps: list[int] = []  # every step the fp16 loss scaler skipped (finite loss, inf/nan grad norm)
        self._skip_streak: list[int] = []  # the current run of consecutive skipped logged steps
        self.findings: list[Finding] = []
        self.losses: list[tuple[int, float]] = []
        self.grad_norms: list[float] = []
        self.gaps: list[float] = []
        self._flagged: set[str] = set()

    def _add(self, finding: Finding, once: bool = True) -> None:
        if once and finding.check in self._flagged:
            return
        self._flagged.add(finding.check)
        self.findings.append(finding)
        if self.verbose:
            print(f"[SanityMonitor] {finding.status.upper()} {finding.check}: {finding.message} → {finding.fix}")

    def report(self) -> SanityReport:
        """Everything flagged so far (a pass line when nothing was), plus the fp16 skipped-step total when any."""
        findings = list(self.findings) or [Finding("monitor", "pass", f"{len(self.losses)} logged steps, nothing unusual", "")]
        extras: dict[str, Any] = {}
        if self.skipped_steps:
            findings.append(Finding("fp16_skipped_steps_total", "pass",
                                    f"fp16=True: the loss scaler skipped {len(self.skipped_steps)} of {len(self.losses)} "
                                    f"logged steps in total ({describe_steps(self.skipped_steps)}); their updates were dropped",
                                    ""))
            extras["fp16_skipped_steps"] = list(self.skipped_steps)
        return SanityReport(findings, title="training monitor", extras=extras)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if getattr(args, "logging_nan_inf_filter", False):
            self._add(Finding("logging_nan_inf_filter", "warn", "logging_nan_inf_filter=True hides NaN losses in the logs",
                              "set logging_nan_inf_filter=False; the monitor still watches grad_norm"))

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        logs = logs or {}
        step = state.global_step
        loss, grad = logs.get("loss"), logs.get("grad_norm")
        if _non_finite(loss):  # a NaN/Inf loss is never a skipped step, fp16 or not
            self._fail_on_nan("loss", loss, step, control)
            return
        if _non_finite(grad):
            if not (bool(getattr(args, "fp16", False)) and loss is not None):
                self._fail_on_nan("grad_norm", grad, step, control)
                return
            self._note_skipped_step(step, grad, control)  # fp16 AMP, finite loss: the loss scaler skipped this step
            grad = None  # keep inf/nan out of the grad-norm history: it would poison the spike median
        elif grad is not None:
            self._skip_streak = []  # a finite grad norm: the scaler found a scale, the streak is over
        if loss is not None:
            loss = float(loss)
            history = [v for _, v in self.losses[-self.window:]]
            if is_spike(loss, history, self.spike_factor):
                self._add(Finding("loss_spike", "warn", f"loss {loss:.3g} at step {step} > {self.spike_factor:g}× running median",
                                  "lower the LR, add warmup or gradient clipping (max_grad_norm=1.0); inspect that batch"), once=False)
            if loss == 0.0:
                self._add(Finding("zero_loss", "fail", f"loss is exactly 0 at step {step}",
                                  "labels are all -100 or the model sees its labels; run preflight() on the trainer"))
            self.losses.append((step, loss))
            self._check_plateau(step)
        if grad is not None:
            grad = float(grad)
            if is_spike(grad, self.grad_norms[-self.window:], self.spike_factor):
                self._add(Finding("grad_norm_spike", "warn", f"grad norm {grad:.3g} at step {step} > {self.spike_factor:g}× running median",
                                  "lower the LR or clip gradients (max_grad_norm=1.0)"), once=False)
            self.grad_norms.append(grad)

    def _fail_on_nan(self, name: str, value: Any, step: int, control: Any) -> None:
        """Fail ``nan_loss`` / ``nan_grad_norm`` and stop the run (when ``stop_on_nan``)."""
        self._add(Finding(f"nan_{name}", "fail", f"{name} is {value} at step {step}; training stopped",
                          "lower the LR / add warmup, check fp16 overflow (use bf16 or fp32), look for "
                          "all-masked rows (0 trained tokens) and bad inputs in that batch"))
        if self.stop_on_nan:
            control.should_training_stop = True

    def _note_skipped_step(self, step: int, grad: Any, control: Any) -> None:
        """Record a step the fp16 loss scaler skipped; warn on a streak of them, fail and stop on a long one.

        >>> from types import SimpleNamespace
        >>> m, control = SanityMonitor(verbose=False, fp16_warn_after=2, fp16_fail_after=3), SimpleNamespace()
        >>> for step in (1, 2): m._note_skipped_step(step, float("inf"), control)
        >>> [(f.check, f.status) for f in m.findings], hasattr(control, "should_training_stop")
        ([('fp16_skipped_steps', 'warn')], False)
        >>> m._note_skipped_step(3, float("inf"), control)
        >>> m.findings[-1].check, m.findings[-1].status, control.should_training_stop, m.skipped_steps
        ('fp16_scaler_stuck', 'fail', True, [1, 2, 3])
        """
        self.skipped_steps.append(step)
        self._skip_streak.append(step)
        streak, where = len(self._skip_streak), describe_steps(self._skip_streak)
        if streak == self.fp16_warn_after:  # once per streak, at the threshold
            self._add(Finding("fp16_skipped_steps", "warn",
                              f"fp16=True: the loss scaler skipped {streak} steps in a row ({where}): grad_norm is "
                              f"{grad} with a finite loss, so it overflowed in fp16 and each update was dropped while "
                              "GradScaler lowers its scale from 2^16; a few at the start are normal calibration",
                              "if it goes on: lower the LR / add warmup, check no weights were loaded in float16 (load "
                              "fp32 and let AMP cast), or use bf16=True on a GPU with compute capability >= 8 "
                              "(not a T4)"), once=False)
        if streak == self.fp16_fail_after:
            self._add(Finding("fp16_scaler_stuck", "fail",
                              f"fp16=True: the loss scaler skipped {streak} steps in a row ({where}), grad_norm still "
                              f"{grad}: no loss scale keeps the gradients finite in fp16, so the model is not training"
                              + ("; training stopped" if self.stop_on_nan else ""),
                              "use bf16=True on compute capability >= 8 (A100/L4/H100), else fp32 (fp16=False) on a T4; "
                              "or lower the LR / add warmup; check the model was not loaded with dtype=float16 "
                              "(fp16 weights overflow: load fp32, AMP casts)"), once=False)
            if self.stop_on_nan:
                control.should_training_stop = True

    def _check_plateau(self, step: int) -> None:
        if step < self.plateau_steps or len(self.losses) < 6:
            return
        third = max(1, len(self.losses) // 3)
        first = statistics.mean(v for _, v in self.losses[:third])
        last = statistics.mean(v for _, v in self.losses[-third:])
        if last >= first:
            self._add(Finding("loss_not_decreasing", "warn",
                              f"mean loss {first:.3g} → {last:.3g} over {step} steps: not decreasing",
                              "raise the LR (or check it is not 0 after warmup), check the labels with preflight()"))

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict | None = None, **kwargs: Any) -> None:
        metrics = metrics or {}
        eval_loss = metrics.get("eval_loss")
        if eval_loss is None or not self.losses:
            return
        if not math.isfinite(float(eval_loss)):
            self._add(Finding("nan_eval_loss", "fail", f"eval loss is {eval_loss} at step {state.global_step}",
                              "eval rows with no trained token give NaN: check eval truncation"))
            return
        recent = [v for _, v in self.losses[-5:]]
        self.gaps.append(float(eval_loss) - statistics.mean(recent))
        if growing_gap(self.gaps, self.gap_patience):
            self._add(Finding("eval_gap_growing", "warn",
                              f"eval−train loss gap grew {self.gap_patience} evaluations in a row (now {self.gaps[-1]:.3g})",
                              "overfitting: stop earlier (EarlyStoppingCallback with load_best_model_at_end=True), "
                              "fewer epochs, more data or a lower LR"))
