"""SanityMonitor: a TrainerCallback that watches the logs while training runs and stops a run that went NaN.

    trainer.add_callback(SanityMonitor())     # logging_steps=1 lets it see every step
    trainer.train(); print(monitor.report())
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


class SanityMonitor(TrainerCallback):
    """Watch loss and grad norm: stop on NaN/Inf, flag spikes, zero loss, growing eval gap, no progress."""

    def __init__(self, spike_factor: float = 3.0, window: int = 20, gap_patience: int = 3,
                 plateau_steps: int = 50, stop_on_nan: bool = True, verbose: bool = True) -> None:
        self.spike_factor = spike_factor  # a value above factor × running median is a spike
        self.window = window  # running-median window (logged values)
        self.gap_patience = gap_patience  # evaluations in a row with a growing eval−train gap before advising to stop
        self.plateau_steps = plateau_steps  # steps after which the loss must have gone down
        self.stop_on_nan = stop_on_nan
        self.verbose = verbose
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
        """Everything flagged so far (a pass line when nothing was)."""
        findings = list(self.findings) or [Finding("monitor", "pass", f"{len(self.losses)} logged steps, nothing unusual", "")]
        return SanityReport(findings, title="training monitor")

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if getattr(args, "logging_nan_inf_filter", False):
            self._add(Finding("logging_nan_inf_filter", "warn", "logging_nan_inf_filter=True hides NaN losses in the logs",
                              "set logging_nan_inf_filter=False; the monitor still watches grad_norm"))

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        logs = logs or {}
        step = state.global_step
        loss, grad = logs.get("loss"), logs.get("grad_norm")
        for name, value in (("loss", loss), ("grad_norm", grad)):
            if value is not None and not math.isfinite(float(value)):
                self._add(Finding(f"nan_{name}", "fail", f"{name} is {value} at step {step}; training stopped",
                                  "lower the LR / add warmup, check fp16 overflow (use bf16 or fp32), look for "
                                  "all-masked rows (0 trained tokens) and bad inputs in that batch"))
                if self.stop_on_nan:
                    control.should_training_stop = True
                return
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
