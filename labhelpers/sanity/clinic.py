"""The broken-run clinic (notebook 14): the silent SFT bugs people hit most, each shown the way a practitioner meets it.

Every case in the notebook is a real setup on the real model with one bug: an ``SFTTrainer`` (its token view, a
tiny stored run, the loss of the same rows with and without gradient accumulation) or one real mixed-precision step
(:func:`amp_step`). The student names the bug from :data:`BUGS`; the sanity assistant's report (:func:`reveal`) is
what answers, and :func:`compare_reports` puts a fixed setup's findings beside the broken one's.

    from labhelpers.sanity.clinic import show_bugs, tiny_run, amp_step, reveal
    show_bugs()                                        # the seven names a diagnosis chooses from
    run = tiny_run(trainer, RUN / "clinic" / "leak.json")   # trains, keeps the log, gives the weights back
"""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from labhelpers.sanity.report import Finding, SanityReport
from labhelpers.views.display import HTMLText


@dataclass(frozen=True)
class Bug:
    """One silent bug: its name (the answer a diagnosis gives), what it is, the sanity checks that catch it."""

    name: str
    summary: str
    checks: tuple[str, ...]
    symptom: str  # what a practitioner sees


BUGS: dict[str, Bug] = {bug.name: bug for bug in (
    Bug("prompt_trained", "the loss trains the prompt too (assistant-only loss is off)", ("prompt_tokens_trained",),
        "the token view brackets the system prompt, the question and the template, not just the reply"),
    Bug("stop_token_masked", "pad token = end-of-turn token, and the collator masks padding by id",
        ("stop_token_trained",), "the reply is trained but its <|im_end|> is not: nothing teaches the model to stop"),
    Bug("template_twice", "the chat template applied by hand, then again by the trainer", ("doubled_end_of_turn", "double_bos"),
        "every row closes its last turn twice (<|im_end|> <|im_end|>), or starts with two BOS"),
    Bug("packing_leak", "packed examples attend to each other (packing without isolation)", ("packing_isolation",),
        "several conversations share one row with one plain attention mask; an example's logits change with its neighbour"),
    Bug("fp16_weights", "fp16 weights under fp16 mixed precision (no fp32 master weights)", ("precision",),
        "the first optimizer step fails: 'Attempting to unscale FP16 gradients'"),
    Bug("grad_accum_scale", "the loss is averaged per micro-batch under gradient accumulation", ("grad_accum_invariance",),
        "the same rows give another loss (and gradient) as accumulated micro-batches than as one batch"),
    Bug("eval_leak", "the eval split holds training rows", ("eval_overlap",),
        "the eval loss falls as fast as the train loss, far below a held-out split's"),
)}

# other ways students write a bug's name (normalised by :func:`_key`); each points at one name of BUGS
ALIASES: dict[str, str] = {
    **dict.fromkeys(("prompt_tokens_trained", "prompt_loss", "no_assistant_only_loss", "assistant_only_loss",
                     "training_on_prompt", "training_on_the_prompt", "train_on_inputs", "train_on_prompt",
                     "completion_only_loss", "prompt_not_masked", "loss_on_prompt"), "prompt_trained"),
    **dict.fromkeys(("pad_is_eos", "pad_eos", "pad_equals_eos", "pad_token_is_eos", "pad_token_eos_token",
                     "pad_token_eos", "stop_token", "eos_masked", "eos_token_masked", "im_end_masked",
                     "stop_token_not_trained", "pad_token_eos_masking"), "stop_token_masked"),
    **dict.fromkeys(("double_template", "doubled_template", "double_bos", "doubled_end_of_turn", "double_eos",
                     "double_im_end", "chat_template_applied_twice", "template_applied_twice", "double_chat_template",
                     "rendered_twice"), "template_twice"),
    **dict.fromkeys(("packing", "packing_contamination", "cross_contamination", "packing_leakage", "packing_leaks",
                     "attention_leak", "packing_cross_contamination", "packing_without_isolation"), "packing_leak"),
    **dict.fromkeys(("fp16", "fp16_amp", "mixed_precision", "fp16_mixed_precision", "half_precision", "amp",
                     "no_fp32_master_weights", "fp16_master_weights", "fp16_gradients"), "fp16_weights"),
    **dict.fromkeys(("grad_accum", "gradient_accumulation", "gradient_accumulation_scale", "loss_normalization",
                     "loss_normalisation", "num_items_in_batch", "grad_accumulation", "accumulation"),
                    "grad_accum_scale"),
    **dict.fromkeys(("eval_overlap", "data_leak", "data_leakage", "eval_leakage", "eval_contamination", "leaky_eval",
                     "test_leak", "train_eval_overlap", "eval_on_train", "eval_on_training_rows"), "eval_leak"),
}
AMBIGUOUS: dict[str, tuple[str, ...]] = {"leak": ("eval_leak", "packing_leak"), "leakage": ("eval_leak", "packing_leak"),
                                         "contamination": ("eval_leak", "packing_leak"),
                                         "masking": ("prompt_trained", "stop_token_masked")}
PLACEHOLDERS = ("", "todo", "bug_name", "name", "bug")  # a TODO left as written: no diagnosis yet


def _key(text: str) -> str:
    """A name reduced to lower-case words joined by "_" (camel case split, punctuation dropped).

    >>> _key("`TemplateTwice`."), _key("pad_token == eos_token"), _key(" Eval-Leak ")
    ('template_twice', 'pad_token_eos_token', 'eval_leak')
    """
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text.strip())
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def is_placeholder(answer: Any) -> bool:
    """True for an answer that is still the TODO's placeholder (None, ..., "", "<bug name>", "TODO").

    >>> is_placeholder("<bug name>"), is_placeholder(...), is_placeholder("eval_leak")
    (True, True, False)
    """
    return answer is None or answer is ... or (isinstance(answer, str) and _key(answer) in PLACEHOLDERS)


def choice(answer: Any) -> str:
    """The bug a student's answer names (a name of :data:`BUGS` in any spelling, a known alias, or a :class:`Bug`).

    >>> choice("Stop token masked"), choice("pad-is-eos"), choice(" EVAL_LEAK "), choice("mixed precision")
    ('stop_token_masked', 'stop_token_masked', 'eval_leak', 'fp16_weights')
    >>> choice("packing leaks")
    'packing_leak'
    >>> choice("leak")
    Traceback (most recent call last):
    ...
    ValueError: 'leak' fits two bugs: eval_leak (the eval split holds training rows) or packing_leak (packed examples attend to each other (packing without isolation)); write the one you mean
    >>> choice("overfitting")
    Traceback (most recent call last):
    ...
    ValueError: 'overfitting' is not one of the bug names. Choose from: prompt_trained, stop_token_masked, template_twice, packing_leak, fp16_weights, grad_accum_scale, eval_leak
    """
    if isinstance(answer, Bug):
        return answer.name
    if not isinstance(answer, str):
        raise ValueError(f"a {type(answer).__name__} is not a bug name: write one of {', '.join(BUGS)} as a string")
    key = _key(answer)
    if key in BUGS:
        return key
    if key in ALIASES:
        return ALIASES[key]
    if key in AMBIGUOUS:
        options = " or ".join(f"{b} ({BUGS[b].summary})" for b in AMBIGUOUS[key])
        raise ValueError(f"{answer!r} fits two bugs: {options}; write the one you mean")
    close = difflib.get_close_matches(key, list(BUGS), n=1, cutoff=0.75) or [
        ALIASES[m] for m in difflib.get_close_matches(key, list(ALIASES), n=1, cutoff=0.85)]
    hint = f"; did you mean {close[0]!r}?" if close else "."
    raise ValueError(f"{answer!r} is not one of the bug names{hint} Choose from: {', '.join(BUGS)}")


def show_bugs() -> HTMLText:
    """The seven bug names a diagnosis chooses from, what each is and what a practitioner sees (an HTML table)."""
    rows = "".join(f"<tr><td><code>{b.name}</code></td><td>{b.summary}</td><td>{_escape(b.symptom)}</td></tr>"
                   for b in BUGS.values())
    return HTMLText("<table><tr><th>name</th><th>the bug</th><th>what you would see</th></tr>" + rows + "</table>")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ------------------------------------------------------------------------------------------------ the cases' rows
def shortest_rows(rows: Any, tokenizer: Any, n: int) -> Any:
    """The ``n`` rows of a ``messages`` dataset with the fewest tokens, in their original order: cases that run in seconds.

    >>> from datasets import Dataset
    >>> class Tok:
    ...     def apply_chat_template(self, messages, tokenize=True): return list(range(len(messages[0]["content"])))
    >>> rows = Dataset.from_list([{"messages": [{"role": "user", "content": c}]} for c in ("long one", "ab", "abc")])
    >>> [r["messages"][0]["content"] for r in shortest_rows(rows, Tok(), 2)]
    ['ab', 'abc']
    """
    if n > len(rows):
        raise ValueError(f"asked for the {n} shortest rows of a split of {len(rows)}; pass n <= {len(rows)}")
    lengths = [len(_ids(tokenizer.apply_chat_template(row["messages"], tokenize=True))) for row in rows]
    keep = sorted(sorted(range(len(rows)), key=lambda i: (lengths[i], i))[:n])
    return rows.select(keep)


def _ids(rendered: Any) -> list[int]:
    """Token ids from what ``apply_chat_template(tokenize=True)`` returned (a list, or a dict with input_ids)."""
    return list(rendered["input_ids"]) if isinstance(rendered, Mapping) else list(rendered)


# ------------------------------------------------------------------------------------------------ tiny stored runs
@dataclass
class TinyRun:
    """What a tiny run logged: ``(step, loss)`` points per curve ("train", and one per eval split)."""

    name: str
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "curves": {k: [list(p) for p in v] for k, v in self.curves.items()},
                "seconds": self.seconds}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TinyRun:
        return cls(data["name"], {k: [(int(s), float(v)) for s, v in pts] for k, pts in data["curves"].items()},
                   float(data.get("seconds", 0.0)))

    def last(self, curve: str) -> float:
        """The curve's last logged loss.

        >>> TinyRun("r", {"train": [(1, 2.0), (4, 1.5)]}).last("train")
        1.5
        """
        return self.curves[curve][-1][1]


def curves_from_log(log_history: Sequence[Mapping[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """Train and eval loss points of a Trainer's ``log_history``; a dict of eval splits gives one curve each.

    >>> curves_from_log([{"loss": 2.0, "step": 1}, {"eval_loss": 2.5, "step": 1}, {"eval_held_out_loss": 3.0, "step": 1}])
    {'train': [(1, 2.0)], 'eval': [(1, 2.5)], 'eval held_out': [(1, 3.0)]}
    """
    curves: dict[str, list[tuple[int, float]]] = {}
    for entry in log_history:
        for key, value in entry.items():
            if key == "loss":
                name = "train"
            elif key == "eval_loss":
                name = "eval"
            elif key.startswith("eval_") and key.endswith("_loss"):
                name = "eval " + key[len("eval_"):-len("_loss")]
            else:
                continue
            curves.setdefault(name, []).append((int(entry["step"]), float(value)))
    return curves


def tiny_run(trainer: Any, store: Path, name: str | None = None) -> TinyRun:
    """Train ``trainer`` (a few steps), keep its loss curves in ``store`` and give the model its weights back.

    The run is seeded, so the same model weights, rows and settings give the same curves: a re-run with the same
    inputs reads ``store`` back instead of training. The model is the notebook's shared one: its weights are restored
    after training, so the next case starts from the same model.
    """
    import time

    from labhelpers.model.loading import weights_fingerprint
    from labhelpers.run.folder import content_key, reuse_or_compute
    from labhelpers.run.training import config_fingerprint

    name = name or Path(store).stem
    eval_sets = trainer.eval_dataset if isinstance(trainer.eval_dataset, Mapping) else {"eval": trainer.eval_dataset}
    key = {"weights": weights_fingerprint(trainer.model), "train": content_key(_rows_of(trainer.train_dataset)),
           "eval": {k: content_key(_rows_of(v)) for k, v in eval_sets.items() if v is not None},
           "config": config_fingerprint(trainer.args)}

    def train() -> TinyRun:
        saved = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        start = time.perf_counter()
        try:
            trainer.train()
        finally:
            trainer.model.load_state_dict(saved)
            trainer.model.zero_grad(set_to_none=True)
        return TinyRun(name, curves_from_log(trainer.state.log_history), round(time.perf_counter() - start, 1))

    return reuse_or_compute(Path(store), key, train, what=f"the tiny run {name!r}", encode=TinyRun.to_dict,
                            decode=TinyRun.from_dict)


def _rows_of(dataset: Any) -> list[Any]:
    """A dataset's rows as JSON-able values (for a content key); token ids and texts alike."""
    return [dict(row) for row in dataset] if dataset is not None else []


def plot_runs(runs: Mapping[str, TinyRun], path: Path, title: str = "loss") -> HTMLText:
    """One panel per run, side by side, same y axis: every curve of each run. Saved to ``path``, shown as an image."""
    import base64

    from matplotlib.figure import Figure

    from labhelpers.views.plots import figure_png

    fig = Figure(figsize=(4.2 * len(runs), 3.3))
    axes = fig.subplots(1, len(runs), sharey=True, squeeze=False)[0]
    for ax, (label, run) in zip(axes, runs.items()):
        for curve, points in run.curves.items():
            steps, losses = zip(*points)
            ax.plot(steps, losses, marker="o", markersize=3, label=curve, linewidth=1.6)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel(title)
    fig.tight_layout()
    png = figure_png(fig)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(png)
    return HTMLText(f"<img src='data:image/png;base64,{base64.b64encode(png).decode()}'/>")


# ------------------------------------------------------------------------------------------------ evidence
def first_rows_batch(trainer: Any, rows: int) -> dict[str, torch.Tensor]:
    """The trainer's first ``rows`` training rows as one batch, collated by its own collator (whatever its batch size)."""
    return trainer.data_collator([trainer.train_dataset[i] for i in range(min(rows, len(trainer.train_dataset)))])


def accumulation_evidence(trainer: Any, rows: int = 4) -> str:
    """The loss of the first ``rows`` training rows as one batch vs as accumulated micro-batches, as this trainer
    computes it (its ``compute_loss_func`` included), with the rows' trained-token counts: what the bug changes."""
    from labhelpers.sanity.numerics import grad_accum_findings
    from labhelpers.sanity.preflight import preserved_state

    batch = first_rows_batch(trainer, rows)
    counts = [int((labels != -100).sum()) for labels in batch["labels"]]
    with preserved_state(trainer):
        finding = grad_accum_findings(trainer, batch)[0]
    numbers = re.search(r"loss ([\d.]+) vs ([\d.]+).*grad rel diff ([\d.e+-]+)", finding.message)
    if numbers is None:
        return finding.message
    one, accumulated, grad = numbers.groups()
    half = len(counts) // 2
    return (f"the same {2 * half} rows (trained tokens per row: {', '.join(map(str, counts[: 2 * half]))}): as one batch "
            f"the loss is {one}; as 2 accumulated micro-batches of {half} it is {accumulated}, and the gradients differ "
            f"by {float(grad):.1%}")


def packing_evidence(trainer: Any) -> str:
    """What the first packed row holds: how many conversations, and what tells the model where each one starts."""
    from labhelpers.sanity.numerics import conversation_start
    from labhelpers.sanity.preflight import collated_batches, preserved_state, _tokenizer_of
    from labhelpers.sanity.tokens import split_at

    with preserved_state(trainer):
        batch = collated_batches(trainer, 1)[0]
    start = conversation_start(_tokenizer_of(trainer))
    row = batch["input_ids"][0].tolist()
    n = len(split_at(row, start)) if start else 1
    mask = batch.get("attention_mask")
    masks = ("an attention_mask of all ones over the whole row" if mask is not None and bool(mask[0].all())
             else "an attention_mask with zeros" if mask is not None else "no attention_mask")
    positions = ("position_ids restarting at each conversation" if "position_ids" in batch else "no position_ids")
    return f"row 0 of the first batch: {len(row)} tokens, {n} conversations, {masks}, {positions}"


@dataclass
class AmpStep:
    """One mixed-precision optimizer step as the Trainer takes it with ``fp16=True`` (autocast, GradScaler)."""

    weights_dtype: str
    loss: float | None
    error: str | None
    grads_finite: bool | None
    scale_after: float | None

    @property
    def ok(self) -> bool:
        return self.error is None

    def __repr__(self) -> str:
        if self.error:
            return f"fp16 AMP step on {self.weights_dtype} weights: loss {self.loss:.3f}, then {self.error}"
        taken = "taken" if self.grads_finite else f"skipped (inf gradients; the scaler lowers its scale to {self.scale_after:g})"
        return f"fp16 AMP step on {self.weights_dtype} weights: loss {self.loss:.3f}, gradients unscaled, step {taken}"

    def _repr_html_(self) -> str:
        colour = "#d4edda" if self.ok else "#f8d7da"
        return f"<div style='background:{colour};padding:6px'><code>{_escape(repr(self))}</code></div>"


def last_layer(model: Any) -> torch.nn.Module:
    """A copy of the model's last decoder layer (its real weights): a real network small enough for one CPU step."""
    layers = getattr(getattr(model, "model", model), "layers", None)
    if not layers:
        raise ValueError("the model has no .model.layers: pass a decoder-only transformers model (e.g. SmolLM2)")
    return copy.deepcopy(layers[-1])


def amp_step(model: Any, tokenizer: Any, weights_dtype: torch.dtype, text: str = "The capital of France is Paris.") -> AmpStep:
    """One real fp16 mixed-precision step on a copy of ``model``'s last decoder layer with ``weights_dtype`` weights.

    As ``Trainer(fp16=True)`` does it: the forward under ``autocast(float16)``, the loss scaled by a ``GradScaler``,
    ``unscale_`` before the optimizer step. The layer's input is the real hidden state of ``text``; its output goes
    through the model's own (frozen) final norm and LM head to a next-token loss. Runs on the model's device (on the
    CPU in about a second).
    """
    from labhelpers.model.attention import model_autocast

    device = next(model.parameters()).device
    layer = last_layer(model).to(weights_dtype)
    ids = tokenizer(text, return_tensors="pt")["input_ids"].to(device)
    inner = getattr(model, "model", model)
    positions = torch.arange(ids.shape[1], device=device)[None]
    with torch.no_grad():
        with model_autocast(model):  # a flash-attention model takes half precision only
            hidden = model(input_ids=ids, output_hidden_states=True, use_cache=False).hidden_states[-2].float()
        rotary = inner.rotary_emb(hidden, positions)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type)
    with torch.autocast(device.type, dtype=torch.float16):
        out = layer(hidden.to(weights_dtype), position_embeddings=rotary, attention_mask=None, position_ids=positions)
        out = out[0] if isinstance(out, tuple) else out
        logits = model.lm_head(inner.norm(out.float()).to(model.lm_head.weight.dtype))
    loss = torch.nn.functional.cross_entropy(logits[0, :-1].float(), ids[0, 1:])
    scaler.scale(loss).backward()
    name = str(weights_dtype).replace("torch.", "")
    try:
        scaler.unscale_(optimizer)
    except ValueError as err:
        return AmpStep(name, float(loss.detach()), f"{type(err).__name__}: {err}", None, None)
    finite = all(bool(torch.isfinite(p.grad).all()) for p in layer.parameters() if p.grad is not None)
    scaler.step(optimizer)
    scaler.update()
    return AmpStep(name, float(loss.detach()), None, finite, float(scaler.get_scale()))


# ------------------------------------------------------------------------------------------------ the reveal
_REPORTS: dict[int, tuple[Any, SanityReport]] = {}  # id(case) -> (case, report): a case is revealed once per kernel


def reveal(case: Any) -> SanityReport:
    """The sanity assistant's report on a case, computed once per case object.

    A trainer gets the quick ``preflight`` on its first two batches, plus the gradient-accumulation check on four of
    its rows when it accumulates (without accumulation that check has nothing to catch and is reported as not
    applicable); an :class:`AmpStep` gets the precision check.
    """
    cached = _REPORTS.get(id(case))
    if cached is not None and cached[0] is case:
        return cached[1]
    if isinstance(case, AmpStep):
        report = SanityReport(amp_findings(case), title="precision")
    else:
        report = _trainer_report(case)
    _REPORTS[id(case)] = (case, report)
    return report


def _trainer_report(trainer: Any) -> SanityReport:
    from labhelpers.sanity.numerics import grad_accum_findings
    from labhelpers.sanity.preflight import preflight, preserved_state

    report = preflight(trainer, level="quick", max_batches=2)
    if trainer.args.gradient_accumulation_steps == 1:
        report.findings.append(Finding("grad_accum_invariance", "pass", "not applicable: gradient_accumulation_steps=1 "
                                       "(each optimizer step is one micro-batch: nothing is averaged across them)", ""))
        return report
    with preserved_state(trainer):
        report.findings.extend(grad_accum_findings(trainer, first_rows_batch(trainer, 4)))
    trainer.model.zero_grad(set_to_none=True)
    return report


def amp_findings(step: AmpStep) -> list[Finding]:
    """The precision check for one AMP step: as ``preflight`` judges ``fp16=True`` with these weights on a T4.

    >>> amp_findings(AmpStep("float16", 2.0, "ValueError: Attempting to unscale FP16 gradients.", None, None))[0].status
    'fail'
    """
    from labhelpers.sanity.preflight import precision_findings

    found = precision_findings(fp16=True, bf16=False, model_dtype=step.weights_dtype, device_type="cuda",
                               capability=(7, 5))
    if step.error:  # the step itself failed: that is the finding, whatever the settings say
        return [Finding("precision", "fail", f"{step.error} (fp16 AMP on {step.weights_dtype} weights)",
                        next((f.fix for f in found if f.fix), "load the weights in float32 (dtype=torch.float32): AMP "
                             "computes in fp16 and keeps fp32 master weights"))]
    return found


def bug_status(report: SanityReport, bug: str, check: str | None = None) -> tuple[str, str]:
    """(worst status, its message) of the checks that catch ``bug`` in ``report`` (only ``check`` when given);
    ("pass", ...) when none ran.

    >>> r = SanityReport([Finding("eval_overlap", "fail", "4 of 8 eval rows are train rows", "split")])
    >>> bug_status(r, "eval_leak"), bug_status(r, "packing_leak")[0]
    (('fail', '4 of 8 eval rows are train rows'), 'pass')
    """
    rank = {"pass": 0, "warn": 1, "fail": 2}
    checks = (check,) if check else BUGS[bug].checks
    found = [f for f in report.findings if f.check in checks]
    if not found:
        return "pass", f"{', '.join(checks)}: not measured on this case"
    worst = max(found, key=lambda f: (rank[f.status], -checks.index(f.check)))  # ties: the bug's first check
    return worst.status, worst.message


def telling_check(report: SanityReport, bug: str) -> str:
    """The check of ``bug`` that ``report`` fails worst (the first of the bug's checks when none fails).

    >>> r = SanityReport([Finding("double_bos", "pass", "", ""), Finding("doubled_end_of_turn", "fail", "twice", "")])
    >>> telling_check(r, "template_twice")
    'doubled_end_of_turn'
    """
    rank = {"pass": 0, "warn": 1, "fail": 2}
    found = [f for f in report.findings if f.check in BUGS[bug].checks]
    checks = BUGS[bug].checks
    return max(found, key=lambda f: (rank[f.status], -checks.index(f.check))).check if found else checks[0]


def compare_reports(broken: SanityReport, fixed: SanityReport, bugs: Sequence[str] = tuple(BUGS)) -> HTMLText:
    """Each bug's telling check (see :func:`telling_check`), broken setup beside fixed setup, as an HTML table."""
    colours = {"pass": "#d4edda", "warn": "#fff3cd", "fail": "#f8d7da"}
    rows = []
    for bug in bugs:
        check = telling_check(broken, bug)
        cells = []
        for report in (broken, fixed):
            status, message = bug_status(report, bug, check)
            cells.append(f"<td style='background:{colours[status]}'><b>{status}</b> {_escape(message)}</td>")
        rows.append(f"<tr><td><code>{bug}</code> ({check})</td>{''.join(cells)}</tr>")
    return HTMLText("<table><tr><th>bug</th><th>broken</th><th>fixed</th></tr>" + "".join(rows) + "</table>")


def save_reveal(cases: Mapping[int, Any], path: Path) -> dict[str, list[dict[str, str]]]:
    """Every case's findings (check, status, message, fix) as JSON at ``path``: what the series measured, for tests
    and readers; returns what it wrote."""
    from labhelpers.run.folder import write_json

    found = {str(n): [dict(check=f.check, status=f.status, message=f.message, fix=f.fix) for f in reveal(c).findings]
             for n, c in cases.items()}
    write_json(Path(path), found, indent=1)
    return found
