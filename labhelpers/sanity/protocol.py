"""The three-step protocol before a real run: overfit a few examples, a short run with eval, sample generations.

    result = run_protocol(model, tokenizer, ds["train"], ds["test"], prompts)   # GO / NO-GO with reasons
    lr = lr_range_test(model, tokenizer, ds["train"]).suggested_lr

Each step trains a deep copy of the model; the model you pass is never changed. Sizes default to the
lab's numbers (20 examples, 50 steps) and scale down through the arguments for CI.
"""

from __future__ import annotations

import copy
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch

from labhelpers.model.loading import has_random_weights
from labhelpers.sanity.monitor import SanityMonitor
from labhelpers.sanity.postflight import RANDOM_WEIGHTS_SKIP, generate_replies, postflight, skipped_for_random_weights
from labhelpers.sanity.preflight import collated_batches, preflight
from labhelpers.sanity.report import Finding, SanityReport

if TYPE_CHECKING:
    from labhelpers.model.hardware import Recipe


def _dataset(rows: Any, n: int | None = None) -> Any:
    from datasets import Dataset

    ds = rows if hasattr(rows, "column_names") else Dataset.from_list(list(rows))
    if "messages" in ds.column_names:
        ds = ds.select_columns(["messages"])
    return ds.select(range(min(n, len(ds)))) if n is not None else ds


def build_trainer(model: Any, tokenizer: Any, train: Any, eval_rows: Any = None, recipe: Recipe | None = None,
                  output_dir: str | None = None, callbacks: Sequence[Any] = (), **overrides: Any) -> Any:
    """An SFTTrainer with the lab recipe and assistant-only loss; ``overrides`` replace SFTConfig fields."""
    from trl import SFTTrainer

    if recipe is None:
        from labhelpers.model.hardware import detect_recipe

        recipe = detect_recipe()
    no_eval = {} if eval_rows is not None else {"eval_strategy": "no"}
    args = recipe.sft_config(output_dir or tempfile.mkdtemp(prefix="sanity-"), assistant_only_loss=True,
                             save_strategy="no", report_to="none", **{**no_eval, **overrides})
    try:
        return SFTTrainer(model=model, args=args, train_dataset=_dataset(train),
                          eval_dataset=_dataset(eval_rows) if eval_rows is not None else None,
                          processing_class=tokenizer, callbacks=list(callbacks))
    except Exception as err:  # TRL often blames the template for bad rows: the dataset check names the real cause
        raise trainer_error_explained(err, train, eval_rows) from err


class TrainerBuildError(ValueError):
    """SFTTrainer refused the setup; the message names the dataset's real problem first, TRL's own words after."""


def trainer_error_explained(err: BaseException, train: Any, eval_rows: Any = None) -> BaseException:
    """``err`` (TRL refusing to build a trainer) with the dataset check's findings first when the rows are the cause:
    a wrong role order makes TRL blame the chat template; the conversation check says which row and why. ``err``
    itself when the rows are fine.

    >>> rows = [{"messages": [{"role": "assistant", "content": "Hi"}, {"role": "user", "content": "Hello"}]}]
    >>> str(trainer_error_explained(ValueError("the chat template has no generation markers"), rows)).split(";")[0]
    'the training rows are not valid conversations (this, not what TRL said, is the cause): rows: 1 invalid row'
    """
    from labhelpers.sanity.dataset import format_findings

    for split, rows in (("training", train), ("eval", eval_rows)):
        if rows is None:
            continue
        finding = format_findings(rows)[0]
        if finding.status == "fail":
            return TrainerBuildError(f"the {split} rows are not valid conversations (this, not what TRL said, is the "
                                     f"cause): {finding.message}. Fix: {finding.fix}. TRL's error: "
                                     f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
    return err


def _train_losses(trainer: Any) -> list[float]:
    return [e["loss"] for e in trainer.state.log_history if "loss" in e]


def overfit_test(model: Any, tokenizer: Any, train: Any, n_examples: int = 20, steps: int = 50, lr: float = 1e-4,
                 max_length: int = 256, batch_size: int = 4, min_drop: float = 0.5, recipe: Recipe | None = None) -> SanityReport:
    """Train a copy on ``n_examples`` for ``steps``: the loss must fall by at least ``min_drop`` (50%) or the setup is broken."""
    trainer = build_trainer(copy.deepcopy(model), tokenizer, _dataset(train, n_examples), recipe=recipe, max_steps=steps,
                            learning_rate=lr, max_length=max_length, per_device_train_batch_size=batch_size,
                            gradient_accumulation_steps=1, logging_steps=1, warmup_steps=0, lr_scheduler_type="constant")
    trainer.train()
    losses = _train_losses(trainer)
    first, last = losses[0], losses[-1]
    drop = 1 - last / first if first > 0 else 0.0
    ok = math.isfinite(last) and drop >= min_drop
    finding = Finding("overfit", "pass" if ok else "fail",
                      f"loss {first:.3f} → {last:.3f} ({drop:.0%} drop) on {n_examples} examples in {steps} steps at lr {lr:g}",
                      "" if ok else "a model that cannot memorise 20 examples has a broken setup: check preflight "
                      "(labels all masked? LR 0? frozen weights?) or raise lr/steps")
    report = SanityReport([finding], title="overfit test")
    report.extras["losses"] = losses
    return report


@dataclass
class LRRangeResult:
    """Loss per learning rate of an exponential LR sweep, the suggested LR and a report."""

    lrs: list[float]
    losses: list[float]
    suggested_lr: float
    report: SanityReport = field(repr=False)


def suggest_lr(lrs: Sequence[float], losses: Sequence[float]) -> float:
    """A tenth of the LR with the lowest loss (before divergence), the classic range-test rule.

    >>> suggest_lr([1e-5, 1e-4, 1e-3, 1e-2], [2.0, 1.5, 1.0, 9.0])
    0.0001
    """
    finite = [(loss, lr) for lr, loss in zip(lrs, losses) if math.isfinite(loss)]
    best = min(finite)[1] if finite else lrs[0]
    return float(f"{best / 10:.3g}")


def lr_range_test(model: Any, tokenizer: Any, train: Any, min_lr: float = 1e-6, max_lr: float = 1e-2, steps: int = 30,
                  max_length: int = 256, batch_size: int = 4, recipe: Recipe | None = None,
                  configured_lr: float | None = None) -> LRRangeResult:
    """Raise the LR exponentially from ``min_lr`` to ``max_lr`` over ``steps`` AdamW steps on a copy; stop on divergence."""
    work = copy.deepcopy(model)
    trainer = build_trainer(work, tokenizer, train, recipe=recipe, max_length=max_length, max_steps=steps,
                            per_device_train_batch_size=batch_size)
    batches = collated_batches(trainer, None)
    optimizer = torch.optim.AdamW([p for p in work.parameters() if p.requires_grad], lr=min_lr)
    ratio = (max_lr / min_lr) ** (1 / max(1, steps - 1))
    lrs, losses, best = [], [], math.inf
    work.train()
    for step in range(steps):
        lr = min_lr * ratio**step
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = {k: v.to(work.device) for k, v in batches[step % len(batches)].items() if isinstance(v, torch.Tensor)}
        loss = work(**batch, use_cache=False).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        lrs.append(lr)
        losses.append(float(loss.detach()))
        best = min(best, losses[-1])
        if not math.isfinite(losses[-1]) or losses[-1] > 4 * best:
            break
    suggested = suggest_lr(lrs, losses)
    findings = [Finding("lr_range", "pass", f"swept lr {lrs[0]:.0e}..{lrs[-1]:.0e} in {len(lrs)} steps; suggested lr {suggested:g}", "")]
    if configured_lr is not None and configured_lr > 10 * suggested:
        findings.append(Finding("learning_rate", "warn", f"configured lr {configured_lr:g} is >10× the range test's {suggested:g}",
                                f"try lr ≈ {suggested:g}"))
    return LRRangeResult(lrs, losses, suggested, SanityReport(findings, title="LR range test"))


# Findings that judge the weights rather than the setup; with random weights they are skipped, visibly.
# Postflight's own findings (hit_max_new_tokens, empty/degenerate replies, house_format) are skipped by postflight.
WEIGHT_QUALITY_CHECKS = frozenset({"loss_at_init", "prompt_swap", "overfit", "short_run_eval", "hit_max_new_tokens",
                                   "empty_replies", "degenerate_replies", "repeated_lines",
                                   "house_format"})


@dataclass
class ProtocolResult:
    """GO / NO-GO from the protocol, the reasons, and every step's report."""

    verdict: str  # "GO", "NO-GO", or "SKIPPED" (random weights: the mechanics ran, quality is not measurable)
    reasons: list[str]
    reports: dict[str, SanityReport]

    @property
    def go(self) -> bool:
        return self.verdict == "GO"

    def __str__(self) -> str:
        parts = [f"{name}\n{report}" for name, report in self.reports.items()]
        return "\n\n".join(parts + [f"VERDICT: {self.verdict}" + "".join(f"\n - {r}" for r in self.reasons)])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values; :meth:`from_dict` rebuilds the result (its reports included).

        >>> r = ProtocolResult("GO", ["every check passed"], {"overfit": SanityReport([Finding("a", "pass", "m")])})
        >>> ProtocolResult.from_dict(r.to_dict()).to_dict() == r.to_dict()
        True
        """
        return {"verdict": self.verdict, "reasons": self.reasons,
                "reports": {name: report.to_dict() for name, report in self.reports.items()}}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ProtocolResult:
        """The result :meth:`to_dict` described."""
        return cls(values["verdict"], list(values["reasons"]),
                   {name: SanityReport.from_dict(report) for name, report in values["reports"].items()})

    def _repr_html_(self) -> str:
        colour = "#d4edda" if self.go else "#fff3cd" if self.verdict == "SKIPPED" else "#f8d7da"
        body = "".join(f"<h4>{name}</h4>{report._repr_html_()}" for name, report in self.reports.items())
        reasons = "".join(f"<li>{r}</li>" for r in self.reasons)
        return f"{body}<div style='background:{colour};padding:6px'><b>VERDICT: {self.verdict}</b><ul>{reasons}</ul></div>"


def run_protocol(model: Any, tokenizer: Any, train: Any, eval_rows: Any, prompts: Sequence[Any],
                 overfit_examples: int = 20, overfit_steps: int = 50, short_steps: int = 20, lr: float = 1e-4,
                 max_length: int = 256, batch_size: int = 4, max_new_tokens: int = 64, overfit_min_drop: float = 0.5,
                 overfit_lr: float | None = None, recipe: Recipe | None = None,
                 store: Path | None = None) -> ProtocolResult:
    """Preflight, overfit ~20 examples, a short run with eval and monitor, sample generations → GO / NO-GO.

    ``store``: a JSON file where the result is kept with what made it (the model's weights fingerprint, the rows,
    prompts and every setting); the protocol is seeded and repeatable, so a re-run with the same inputs reads it back.
    """
    settings = dict(overfit_examples=overfit_examples, overfit_steps=overfit_steps, short_steps=short_steps, lr=lr,
                    max_length=max_length, batch_size=batch_size, max_new_tokens=max_new_tokens,
                    overfit_min_drop=overfit_min_drop, overfit_lr=overfit_lr)

    def work() -> ProtocolResult:
        return _protocol(model, tokenizer, train, eval_rows, prompts, recipe=recipe, **settings)

    if store is None:
        return work()
    from labhelpers.model.loading import weights_fingerprint
    from labhelpers.run.folder import content_key, reuse_or_compute

    key = {"weights": weights_fingerprint(model), "train": content_key(list(_dataset(train))),
           "eval": content_key(list(_dataset(eval_rows))), "prompts": content_key(list(prompts)),
           "recipe": ({**recipe.sft_config_kwargs(), **recipe.model_kwargs(), "device": recipe.device}
                      if recipe is not None else None), **settings}  # values only: not where the profile came from
    return reuse_or_compute(Path(store), key, work, what="the protocol's result", encode=ProtocolResult.to_dict,
                            decode=ProtocolResult.from_dict)


def _final_eval_loss(trainer: Any) -> float:
    """Eval loss after the last step: the one the trainer logged at that step, or a new evaluation when it logged none.

    >>> from types import SimpleNamespace as NS
    >>> _final_eval_loss(NS(state=NS(global_step=4, log_history=[{"eval_loss": 2.0, "step": 2}, {"eval_loss": 1.5, "step": 4}])))
    1.5
    >>> _final_eval_loss(NS(state=NS(global_step=5, log_history=[{"eval_loss": 1.5, "step": 4}]),
    ...                     evaluate=lambda: {"eval_loss": 1.4}))
    1.4
    """
    logged = [e["eval_loss"] for e in trainer.state.log_history
              if "eval_loss" in e and e.get("step") == trainer.state.global_step]
    return logged[-1] if logged else trainer.evaluate()["eval_loss"]


def _protocol(model: Any, tokenizer: Any, train: Any, eval_rows: Any, prompts: Sequence[Any], overfit_examples: int,
              overfit_steps: int, short_steps: int, lr: float, max_length: int, batch_size: int, max_new_tokens: int,
              overfit_min_drop: float, overfit_lr: float | None, recipe: Recipe | None) -> ProtocolResult:
    """The protocol's work (see :func:`run_protocol`)."""
    reports: dict[str, SanityReport] = {}
    base_texts, base_hit = generate_replies(model, tokenizer, prompts, max_new_tokens)
    work = copy.deepcopy(model)
    monitor = SanityMonitor(verbose=False)
    steps_between = max(1, short_steps // 2)
    trainer = build_trainer(work, tokenizer, train, eval_rows, recipe=recipe, callbacks=[monitor], max_steps=short_steps,
                            learning_rate=lr, max_length=max_length, per_device_train_batch_size=batch_size,
                            per_device_eval_batch_size=batch_size, gradient_accumulation_steps=1, logging_steps=1,
                            eval_strategy="steps", eval_steps=steps_between)
    reports["preflight"] = preflight(trainer, "quick")
    reports["overfit"] = overfit_test(model, tokenizer, train, overfit_examples, overfit_steps, lr=overfit_lr or max(lr, 1e-4),
                                      max_length=max_length, batch_size=batch_size, min_drop=overfit_min_drop, recipe=recipe)
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    after = _final_eval_loss(trainer)
    short = monitor.report()
    short.title = "short run"
    ok = math.isfinite(after) and after < before
    short.extend([Finding("short_run_eval", "pass" if ok else "fail",
                          f"eval loss {before:.3f} → {after:.3f} after {trainer.state.global_step} steps",
                          "" if ok else "eval loss did not fall: LR too low/high, labels wrong, or eval data unlike train")])
    reports["short_run"] = short
    reports["postflight"] = postflight(work, tokenizer, prompts, base_texts, max_new_tokens, base_hit_max=base_hit,
                                       train_rows=_dataset(train))
    skipped = []
    if has_random_weights(model):  # GPU rehearsal: what judges the weights' quality becomes a visible skip
        for name, r in reports.items():
            skipped += [f"{name}: {f.check}" for f in r.findings if f.check in WEIGHT_QUALITY_CHECKS]
            r.findings = [skipped_for_random_weights(f) if f.check in WEIGHT_QUALITY_CHECKS else f for f in r.findings]
    fails = [f"{name}: {f.check}: {f.message}" for name, r in reports.items() for f in r.failed]
    warns = [f"(warn) {name}: {f.check}: {f.message}" for name, r in reports.items() for f in r.warnings]
    if skipped and not fails:
        return ProtocolResult("SKIPPED", [f"{RANDOM_WEIGHTS_SKIP}; no GO without trained weights "
                                          f"(skipped: {', '.join(skipped)})"] + warns, reports)
    verdict = "NO-GO" if fails else "GO"
    return ProtocolResult(verdict, fails + warns if fails else (warns or ["every check passed"]), reports)
