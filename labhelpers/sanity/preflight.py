"""Preflight: look at a built, not yet trained ``SFTTrainer`` and report silent SFT bugs before ``train()``.

Everything is measured on what the trainer will really see: collated batches from
``trainer.get_train_dataloader()`` (RNG and accelerator state saved and restored), the model's own loss in
eval mode under ``no_grad``. Weights, optimizer, trainer state, RNG, ``model.training`` and
``requires_grad`` flags are left exactly as they were.

    report = preflight(trainer)            # ~seconds; level="full" adds two slower numerical checks
    report                                 # coloured table in a notebook; print(report) in a terminal
"""

from __future__ import annotations

import contextlib
import copy
import functools
import random
import re
from typing import Any, Callable, Iterator, Sequence

import torch

from labhelpers.base.batching import rows_per_step, updates_per_epoch
from labhelpers.views.display import IGNORE_INDEX, bracket_trained, render_masked_tokens
from labhelpers.sanity.lora import LORA_LR_FAIL, LORA_LR_HIGH, LORA_LR_LOW, lora_findings
from labhelpers.sanity.config import doubled_end_findings, generation_findings, plan_run, schedule_findings, strategy
from labhelpers.sanity.dataset import STRUCTURAL, _escape_code, duplicate_findings, special_text_hits, special_token_kinds
from labhelpers.sanity.masking import (
    LossSetup,
    custom_collator_name,
    data_kind,
    label_alignment_counts,
    label_alignment_findings,
    masking_findings,
)
from labhelpers.sanity.numerics import (
    conversation_start,
    grad_accum_findings,
    loss_at_init_findings,
    packing_findings,
    prompt_swap_findings,
)
from labhelpers.sanity.report import STATUSES, Finding, SanityReport
from labhelpers.sanity.run_facts import checkpoint_bytes, run_fact_findings
from labhelpers.sanity.tokens import assistant_header, assistant_mask, end_of_turn_id, examples_in_batch, rendered_ids, reply_ends

LEVELS = ("quick", "full")
QUICK_MAX_BATCHES = 64  # collated batches inspected by the masking checks at level="quick" (all at "full")
TEMPLATE_ROWS = 8  # conversations checked for the train/inference template round trip
TRUNCATION_ROWS_QUICK = 512  # conversations re-rendered untruncated by the truncation check at level="quick"
SPECIAL_TEXT_RENDER_ROWS = 64  # rows with special-token text re-rendered to find the examples they became
# findings that special-token text in the content or misaligned labels can cause on their own (see blame_cause)
SYMPTOMS = ("prompt_tokens_trained", "stop_token_trained", "response_tokens_masked", "zero_trainable_rows",
            "trainable_share", "template_round_trip", "doubled_end_of_turn")
_CHATML_TURN = re.compile(r"<\|im_start\|>(\w+)\n(.*?)<\|im_end\|>", re.DOTALL)


# ------------------------------------------------------------------------------------------- state keeping
@contextlib.contextmanager
def preserved_state(trainer: Any) -> Iterator[None]:
    """Restore RNG (torch, CUDA, python, numpy), the accelerator's dataloader list and ``model.training`` on exit."""
    import numpy as np

    torch_rng, py_rng, np_rng = torch.random.get_rng_state(), random.getstate(), np.random.get_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    accelerator = getattr(trainer, "accelerator", None)
    loaders = list(getattr(accelerator, "_dataloaders", []))
    model = trainer.model
    training = model.training
    metrics = copy.deepcopy(getattr(trainer, "_metrics", None))
    try:
        yield
    finally:
        torch.random.set_rng_state(torch_rng)
        random.setstate(py_rng)
        np.random.set_state(np_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        if accelerator is not None and hasattr(accelerator, "_dataloaders"):
            accelerator._dataloaders[:] = loaders
        if metrics is not None:
            trainer._metrics = metrics
        model.train(training)


def collated_batches(trainer: Any, max_batches: int | None = 1) -> list[dict[str, torch.Tensor]]:
    """Up to ``max_batches`` batches exactly as training would collate them (trainer and RNG state untouched)."""
    with preserved_state(trainer):
        loader = trainer.get_train_dataloader()
        batches = []
        for batch in loader:
            batches.append({k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in batch.items()})
            if max_batches is not None and len(batches) >= max_batches:
                break
    if not batches:
        raise ValueError("the train dataloader is empty: the train dataset has no rows after preprocessing; "
                         "check max_length (whole replies cut?) and the dataset")
    return batches


def batches_per_epoch(trainer: Any) -> int | None:
    """Train batches per epoch as the trainer will draw them (after packing); None for a dataset without a length.

    >>> from types import SimpleNamespace as NS
    >>> batches_per_epoch(NS(get_train_dataloader=lambda: [1, 2, 3])), batches_per_epoch(NS(get_train_dataloader=lambda: iter([])))
    (3, None)
    """
    try:
        return len(trainer.get_train_dataloader())
    except TypeError:  # an IterableDataset (streaming): its loader has no len()
        return None


def _tokenizer_of(trainer: Any) -> Any:
    tok = getattr(trainer, "processing_class", None)
    return getattr(tok, "tokenizer", tok)  # processors wrap a tokenizer


# --------------------------------------------------------------------------------- special-token text
def special_text_examples(tokenizer: Any, conversations: Sequence[Any], examples: Sequence[tuple[list[int], list[int]]],
                          kinds: dict[str, str] | None = None,
                          max_rows: int = SPECIAL_TEXT_RENDER_ROWS) -> tuple[set[int], list[Any]]:
    """(indices of ``examples`` rendered from rows whose content holds turn-ending/forging special-token text, those
    rows' hits): the same detector as `labhelpers.sanity.dataset.special_token_findings`, on the rows preflight sees.

    Each such row (up to ``max_rows``) is rendered with the chat template; an example is that row when their tokens
    agree over the shorter of the two, from the start (keep_start truncation) or from the end (keep_end).
    """
    kinds = special_token_kinds(tokenizer) if kinds is None else kinds
    if not kinds or not any(k in STRUCTURAL for k in kinds.values()):
        return set(), []
    hits = special_text_hits([c if isinstance(c, (list, tuple)) else None for c in conversations], kinds,
                             structural_only=True)
    if not hits:
        return set(), []
    rendered = []
    for row in sorted({h.row for h in hits})[:max_rows]:
        try:
            rendered.append(rendered_ids(tokenizer.apply_chat_template(list(conversations[row]), tokenize=True)))
        except Exception:  # the template rejects the row: preflight's other checks say so
            continue
    affected = set()
    for i, (ids, _) in enumerate(examples):
        for full in rendered:
            n = min(len(ids), len(full))
            if n and (ids[:n] == full[:n] or ids[-n:] == full[-n:]):
                affected.add(i)
                break
    return affected, hits


def end_of_turn_follow(tokenizer: Any) -> list[int]:
    """The ids the chat template writes right after an end-of-turn token, up to the next special token (ChatML:
    newline, ``<|im_start|>``); [] when the template cannot render."""
    try:
        ids = rendered_ids(tokenizer.apply_chat_template([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}],
                                                 tokenize=True))
    except Exception:
        return []
    end, specials = end_of_turn_id(tokenizer), set(getattr(tokenizer, "all_special_ids", []) or [])
    if end not in ids:
        return []
    follow = []
    for token in ids[ids.index(end) + 1:]:
        follow.append(token)
        if token in specials:
            break
    return follow


def stray_end_of_turn(ids: Sequence[int], end_id: int, follow: Sequence[int], specials: Sequence[int],
                      blank: Callable[[int], bool] = lambda token: False) -> int | None:
    """Position of the first end-of-turn token followed by ordinary text where the template writes ``follow``: the
    token came from special-token text inside a message (None when there is none).

    A special token or whitespace (``blank``) in place of ``follow`` (a doubled end, a hand-rendered turn with other
    newlines) is not stray: other checks see those.

    >>> follow = [198, 1]  # ChatML: "<|im_end|>" "\\n" "<|im_start|>"
    >>> stray_end_of_turn([1, 7, 198, 5, 2, 198, 1, 9, 198, 6, 2, 198], 2, follow, [0, 1, 2]) is None
    True
    >>> stray_end_of_turn([1, 9, 198, 6, 2, 44, 45, 2, 198], 2, follow, [0, 1, 2])  # "...<|im_end|> more<|im_end|>"
    4
    """
    special = set(specials)
    for p, token in enumerate(ids):
        if token != end_id:
            continue
        for k, expected in enumerate(follow):
            q = p + 1 + k
            if q >= len(ids):
                break
            if ids[q] != expected:
                if ids[q] not in special and not blank(ids[q]):
                    return p
                break
    return None


def blame_cause(findings: Sequence[Finding], without: Sequence[Finding] | None, note: str, fix: str,
                cause: str = "special-token text in the content", unlike: str = "those examples") -> list[Finding]:
    """Findings whose symptom ``cause`` produces, re-worded to name it instead of the cause their own text gives.

    ``without``: the same checks with the cause taken away (the examples without such text, or the labels
    realigned); None when it cannot be taken away. A symptom that is worse with the cause than without is its own:
    alone when it passes without (the fix is the cause's), partly otherwise (both fixes). Only `SYMPTOMS` change.

    >>> bad = [Finding("stop_token_trained", "fail", "3 of 4 replies have their end-of-turn token trained", "pad != eos")]
    >>> f = blame_cause(bad, [Finding("stop_token_trained", "pass", "2 of 2", "")], "row 3 has '<|im_end|>'", "escape")[0]
    >>> f.status, f.message.split("; ")[1], f.fix
    ('fail', "caused by special-token text in the content, not the masking: row 3 has '<|im_end|>'", 'escape')
    """
    before = {f.check: f.status for f in without} if without is not None else {}
    out = []
    for f in findings:
        if f.check not in SYMPTOMS or f.status == "pass":
            out.append(f)
            continue
        was = before.get(f.check, "pass")
        if STATUSES.index(was) >= STATUSES.index(f.status):
            out.append(f)  # as bad without the cause: another one, named by the finding itself
            continue
        if was == "pass":
            out.append(Finding(f.check, f.status, f"{f.message}; caused by {cause}, not the masking: {note}", fix))
        else:
            out.append(Finding(f.check, f.status, f"{f.message}; made worse by {cause} ({was} without {unlike}): "
                               f"{note}", f"{fix}; then: {f.fix}"))
    return out


def realigned_examples(examples: Sequence[tuple[list[int], list[int]]],
                       counts: dict[str, Any]) -> list[tuple[list[int], list[int]]] | None:
    """``examples`` with labels shifted back by the one-token shift `label_alignment_counts` found (None: no such shift).

    >>> realigned_examples([([5, 6, 7], [6, 7, -100])], {"mismatched": 2, "left": 2, "right": 0})
    [([5, 6, 7], [-100, 6, 7])]
    """
    bad = counts.get("mismatched", 0)
    if not bad:
        return None
    if counts["left"] > 0.5 * bad:
        return [(ids, [IGNORE_INDEX] + labels[:-1]) for ids, labels in examples]
    if counts["right"] > 0.5 * bad:
        return [(ids, labels[1:] + [IGNORE_INDEX]) for ids, labels in examples]
    return None


def _special_text_note(hits: Sequence[Any], affected: int, n_examples: int, kinds: dict[str, str], source: str) -> str:
    rows = sorted({h.row for h in hits})
    first = hits[0]
    found = ", ".join(f"{t!r} ({kinds.get(t)})" for t in first.tokens)
    more = f" and {len(rows) - 1:,} more row{'s' if len(rows) != 2 else ''}" if len(rows) > 1 else ""
    return (f"{affected} of {n_examples} inspected examples come from rows whose message content holds special-token "
            f"text that tokenizes to real control tokens, e.g. row {first.row} of the {source} {first.field} "
            f"({first.role}) has {found}{more}")


def _special_text_fix(tokens: Sequence[str]) -> str:
    code = _escape_code(list(dict.fromkeys(tokens)))
    return (f"strip or escape special-token text in every message content c ({code}) or drop those rows; "
            "labhelpers.sanity.check_dataset lists them all (special_tokens_in_text)")


# --------------------------------------------------------------------------------------- template checks
def parse_chatml(text: str) -> list[dict[str, str]]:
    """Complete ChatML turns in ``text`` as messages.

    >>> parse_chatml("<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\nYo<|im_end|>\\n<|im_start|>assistant\\nc")
    [{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Yo'}]
    """
    return [{"role": m[1], "content": m[2]} for m in _CHATML_TURN.finditer(text)]


def template_findings(examples: Sequence[tuple[list[int], list[int]]], tokenizer: Any,
                      n_rows: int = TEMPLATE_ROWS) -> list[Finding]:
    """Training rendering starts with exactly inference's ``apply_chat_template(..., add_generation_prompt=True)``; no double BOS."""
    header, end_id = assistant_header(tokenizer), end_of_turn_id(tokenizer)
    bos = tokenizer.bos_token_id
    doubles = sum(1 for ids, _ in examples if bos is not None and len(ids) > 1 and ids[0] == ids[1] == bos)
    out = [Finding("double_bos", "fail" if doubles else "pass",
                   f"{doubles} of {len(examples)} examples start with BOS twice (id {bos})",
                   "don't prepend BOS to text the chat template already opens (or set add_special_tokens=False / "
                   "dataset_kwargs={'add_special_tokens': False})" if doubles else "")]
    checked, mismatches, first_bad = 0, 0, ""
    for ids, _ in examples:
        if checked >= n_rows:
            break
        mask = assistant_mask(ids, header, end_id)
        if not any(mask):
            continue
        start = mask.index(True)  # first reply token; the prompt is ids[:start]
        first = 1 if bos is not None and ids[:2] == [bos, bos] else 0
        messages = parse_chatml(tokenizer.decode(ids[first:start], skip_special_tokens=False))
        if not messages:
            continue
        inference = rendered_ids(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True))
        checked += 1
        if ids[:start] != inference:
            mismatches += 1
            if not first_bad:
                first_bad = (f"train {tokenizer.decode(ids[:start])[:80]!r} vs inference "
                             f"{tokenizer.decode(inference)[:80]!r}")
    if checked == 0:
        out.append(Finding("template_round_trip", "warn", "no ChatML conversation found to compare with inference",
                           "render training data with tokenizer.apply_chat_template (a `messages` dataset)"))
    else:
        out.append(Finding(
            "template_round_trip", "fail" if mismatches else "pass",
            f"{checked - mismatches} of {checked} training prompts equal inference's generation prompt token for token"
            + (f"; e.g. {first_bad}" if first_bad else ""),
            "render training rows with the same tokenizer.apply_chat_template used at inference (keep the system "
            "prompt, roles and newlines identical); prefer a `messages` dataset over a hand-rendered `text` column"
            if mismatches else ""))
    return out


# ------------------------------------------------------------------------------------------- truncation
def truncation_stats(lengths: Sequence[int], stop_positions: Sequence[int | None], reply_starts: Sequence[int | None],
                     max_length: int) -> dict[str, float | int]:
    """Counts of rows cut at ``max_length``: any cut, final stop token cut, whole first reply cut.

    >>> truncation_stats([100, 140, 300], [98, 138, 298], [60, 100, 200], max_length=128)
    {'rows': 3, 'truncated': 2, 'stop_cut': 2, 'reply_cut': 1}
    """
    return {
        "rows": len(lengths),
        "truncated": sum(n > max_length for n in lengths),
        "stop_cut": sum(p is not None and p >= max_length for p in stop_positions),
        "reply_cut": sum(s is not None and s >= max_length for s in reply_starts),
    }


def _conversations(dataset: Any, limit: int | None) -> list[Any]:
    if dataset is None:
        return []
    cols = getattr(dataset, "column_names", None) or []
    key = "messages" if "messages" in cols else "text" if "text" in cols else None
    if key is None:
        return []
    n = len(dataset) if limit is None else min(limit, len(dataset))
    return list(dataset.select(range(n))[key]) if hasattr(dataset, "select") else [r[key] for r in dataset[:n]]


def truncation_findings(trainer: Any, tokenizer: Any, raw_dataset: Any = None, limit: int | None = None) -> list[Finding]:
    """Share of rows cut at max_length, rows whose final stop token was cut, rows whose whole reply was cut."""
    max_length = getattr(trainer.args, "max_length", None)
    if not max_length:
        return [Finding("truncation", "warn", "max_length is None: rows are never truncated (memory grows with the longest row)",
                        "set SFTConfig(max_length=...) e.g. 1024")]
    source = raw_dataset if raw_dataset is not None else trainer.train_dataset
    convs = _conversations(source, limit)
    if not convs:
        return [Finding("truncation", "warn", "no `messages` or `text` column to measure untruncated lengths",
                        "pass the raw dataset: preflight(trainer, dataset=raw_train)")]
    header, end_id = assistant_header(tokenizer), end_of_turn_id(tokenizer)
    lengths, stops, starts = [], [], []
    for conv in convs:
        if isinstance(conv, str):
            ids = tokenizer(conv, add_special_tokens=False)["input_ids"]
        else:
            ids = rendered_ids(tokenizer.apply_chat_template(conv, tokenize=True))
        mask = assistant_mask(ids, header, end_id)
        ends = reply_ends(ids, header, end_id)
        lengths.append(len(ids))
        stops.append(ends[-1] if ends else None)
        starts.append(mask.index(True) if any(mask) else None)
    s = truncation_stats(lengths, stops, starts, max_length)
    rows = s["rows"]
    dropped = ""
    if raw_dataset is not None and not getattr(trainer.args, "packing", False):
        lost = len(raw_dataset) - len(trainer.train_dataset)
        dropped = f"; {lost} rows dropped by preprocessing" if lost > 0 else ""
    status = "fail" if s["stop_cut"] > 0.2 * rows else "warn" if s["stop_cut"] or s["reply_cut"] else "pass"
    msg = (f"{s['truncated']}/{rows} rows ({s['truncated'] / rows:.0%}) longer than max_length={max_length}; "
           f"final stop token cut in {s['stop_cut']}, whole reply cut in {s['reply_cut']} (all labels -100 → "
           f"dropped by TRL, or NaN/0 loss with a custom collator){dropped}")
    fix = ("raise max_length (e.g. to the 95th percentile length "
           f"{sorted(lengths)[int(0.95 * (rows - 1))]}) or drop/shorten long rows; rows without their stop token "
           "teach the model never to stop") if status != "pass" else ""
    return [Finding("truncation", status, msg, fix)]


# ------------------------------------------------------------------------------------------- precision
def precision_findings(fp16: bool, bf16: bool, model_dtype: str, device_type: str,
                       capability: tuple[int, int] | None = None) -> list[Finding]:
    """Precision flags vs hardware, as a pure function of plain values.

    >>> [f.status for f in precision_findings(False, True, "float32", "cuda", (7, 5))]
    ['fail']
    >>> [f.status for f in precision_findings(True, False, "float16", "cuda", (8, 0))]
    ['fail']
    >>> precision_findings(False, False, "float32", "cpu")[0].status
    'pass'
    """
    dtype = str(model_dtype).replace("torch.", "")
    out = []
    if device_type == "cuda" and bf16 and capability is not None and capability < (8, 0):
        out.append(Finding("precision", "fail", f"bf16=True on a compute-capability {capability[0]}.{capability[1]} GPU (bf16 needs >= 8.0)",
                           "use fp32 weights with fp16=True, bf16=False (labhelpers.model.hardware 't4' recipe)"))
    if device_type == "cuda" and dtype == "bfloat16" and capability is not None and capability < (8, 0):
        out.append(Finding("precision", "fail", f"bf16 weights on a compute-capability {capability[0]}.{capability[1]} GPU",
                           "load the model in float32 and train with fp16=True"))
    if fp16 and dtype == "float16":
        out.append(Finding("precision", "fail", "fp16 weights with fp16 AMP: fails with 'Attempting to unscale FP16 gradients'",
                           "load the model with dtype=torch.float32 (AMP keeps fp32 master weights)"))
    if device_type == "cpu" and bf16:
        out.append(Finding("precision", "warn", "bf16 AMP on CPU: runs, but ~12x slower than fp32 on this kind of CPU",
                           "set bf16=False on CPU (labhelpers.model.hardware 'cpu' recipe)"))
    if device_type == "cpu" and fp16:
        out.append(Finding("precision", "warn", "fp16=True on CPU is silently ignored", "set fp16=False on CPU"))
    if device_type == "cpu" and dtype in ("float16", "bfloat16"):
        out.append(Finding("precision", "warn", f"{dtype} weights on CPU: slow and lossy optimizer updates",
                           "load with dtype=torch.float32 on CPU"))
    if not out:
        amp = "bf16 AMP" if bf16 else "fp16 AMP" if fp16 else "no AMP"
        out.append(Finding("precision", "pass", f"{dtype} weights, {amp} on {device_type}"
                           + (f" (cc {capability[0]}.{capability[1]})" if capability else ""), ""))
    return out


# -------------------------------------------------------------------------------------- hyperparameters
def hyperparameter_findings(lr: float, warmup: float, is_lora: bool, n_params: int, n_rows: int,
                            effective_batch: int, max_steps: int, num_train_epochs: float) -> list[Finding]:
    """Learning rate vs model size and method, warmup, optimizer steps per epoch, epochs.

    >>> [f.status for f in hyperparameter_findings(2e-3, 0, False, 135_000_000, 500, 16, -1, 3)]
    ['fail', 'warn', 'pass', 'pass']
    >>> [f.status for f in hyperparameter_findings(1e-3, 0.1, True, 135_000_000, 8, 16, -1, 1)][2]
    'fail'
    >>> hyperparameter_findings(7e-5, 0.1, True, 135_000_000, 500, 16, -1, 1)[0].status  # lora_findings agrees
    'warn'
    """
    big = n_params > 1_000_000_000
    # LoRA's band is the one labhelpers.sanity.lora measured and lora_findings uses: one table, no second opinion
    warn_at, fail_at, low = ((LORA_LR_HIGH, LORA_LR_FAIL, LORA_LR_LOW) if is_lora else (1e-4, 5e-4, 1e-6) if big
                             else (3e-4, 1e-3, 1e-6))
    kind = "LoRA" if is_lora else f"full fine-tune of a {n_params / 1e6:.0f}M model"
    out = []
    if lr > fail_at:
        out.append(Finding("learning_rate", "fail", f"lr {lr:g} is above {fail_at:g} for a {kind}: expect divergence/forgetting",
                           f"use lr <= {warn_at:g} (lab measurement: full FT 1e-4, LoRA r=16 1e-3)"))
    elif lr > warn_at:
        out.append(Finding("learning_rate", "warn", f"lr {lr:g} is high for a {kind} (> {warn_at:g})", f"try {warn_at / 3:.0e}"))
    elif lr < low:
        out.append(Finding("learning_rate", "warn", f"lr {lr:g} is very low for a {kind} (< {low:g}): little will change",
                           "LoRA needs higher rates than full fine-tunes (lab: LoRA 2e-4 learned nothing in 40 steps, 1e-3 did)"
                           if is_lora else "try 1e-5..1e-4"))
    else:
        out.append(Finding("learning_rate", "pass", f"lr {lr:g} for a {kind}", ""))
    high = lr >= (5e-4 if is_lora else 1e-4)
    if warmup <= 0 and high:
        out.append(Finding("warmup", "warn", f"no warmup at lr {lr:g}: early steps hit the full LR with fresh Adam statistics",
                           "set warmup_steps=0.05 (a float < 1 is a ratio in TRL 1.x)"))
    else:
        out.append(Finding("warmup", "pass", f"warmup {warmup:g} at lr {lr:g}", ""))
    steps = updates_per_epoch(n_rows, max(1, effective_batch)) if n_rows else 0
    if n_rows < effective_batch:
        out.append(Finding("steps_per_epoch", "fail",
                           f"{n_rows} training rows < one effective batch of {effective_batch}: each epoch is one "
                           f"optimizer step on {n_rows} rows, the batch you set is never filled",
                           "lower per_device_train_batch_size x gradient_accumulation_steps or add data"))
    else:
        out.append(Finding("steps_per_epoch", "pass", f"{steps} optimizer steps per epoch ({n_rows} rows / effective batch {effective_batch})", ""))
    epochs = max_steps * effective_batch / n_rows if max_steps and max_steps > 0 and n_rows else num_train_epochs
    out.append(Finding("epochs", "warn" if epochs > 5 else "pass",
                       f"{epochs:.1f} passes over {n_rows} rows" + (" (from max_steps)" if max_steps and max_steps > 0 else ""),
                       "more than ~3-5 epochs memorises small SFT sets: add data or lower max_steps/num_train_epochs"
                       if epochs > 5 else ""))
    return out


def _warmup(args: Any) -> float:
    return float(getattr(args, "warmup_steps", 0) or 0) or float(getattr(args, "warmup_ratio", 0) or 0)


def _is_lora(model: Any) -> bool:
    return hasattr(model, "peft_config")


# ------------------------------------------------------------------------------------------------ eval
def eval_findings(trainer: Any, train_raw: Any = None) -> list[Finding]:
    """Eval split present and enabled; then the dataset checks' duplicates and eval/train overlap (exact and near,
    `labhelpers.sanity.dataset.duplicate_findings`) on the rows this trainer trains and evaluates on."""
    args, evald = trainer.args, trainer.eval_dataset
    eval_strategy = strategy(args, "eval_strategy")
    out = []
    if evald is None or eval_strategy == "no":
        why = "no eval_dataset" if evald is None else "eval_strategy='no'"
        out.append(Finding("eval_split", "warn", f"{why}: overfitting will go unseen",
                           "pass eval_dataset=ds['test'] and set eval_strategy='steps', eval_steps=..."))
    else:
        out.append(Finding("eval_split", "pass", f"{len(evald)} eval rows, eval_strategy={eval_strategy!r}", ""))
    train_rows = _conversations(train_raw if train_raw is not None else trainer.train_dataset, None)
    if not train_rows:
        return out
    eval_rows = []
    if evald is not None:
        eval_rows = _conversations(evald if not isinstance(evald, dict) else next(iter(evald.values())), None)
    return out + duplicate_findings(train_rows, eval_rows or None)


# ------------------------------------------------------------------------------------------------- entry
def show_example(trainer_or_batch: Any, tokenizer: Any = None, index: int = 0, html: bool = True) -> str:
    """One collated example's tokens, trained vs masked: HTML spans (notebooks) or ``[trained]`` brackets."""
    if isinstance(trainer_or_batch, dict):
        batch = trainer_or_batch
    else:
        batch = collated_batches(trainer_or_batch, 1)[0]
        tokenizer = tokenizer or _tokenizer_of(trainer_or_batch)
    examples = examples_in_batch(batch)
    if not 0 <= index < len(examples):
        raise IndexError(f"example {index} out of range: the batch has {len(examples)} examples; pass index < {len(examples)}")
    ids, labels = examples[index]
    if html:
        return render_masked_tokens(tokenizer, ids, labels)
    pieces = [tokenizer.decode([t], skip_special_tokens=False) for t in ids]
    return bracket_trained(pieces, [lab != IGNORE_INDEX for lab in labels])


def empty_train_findings(n_raw: int | None, max_length: int | None) -> list[Finding]:
    """The fail finding for a train set TRL emptied (instead of torch's ``num_samples=0`` crash).

    >>> f = empty_train_findings(12, 256)[0]
    >>> f.check, f.status, f.message.split(";")[0]
    ('train_rows_dropped', 'fail', 'TRL dropped all 12 training rows during preprocessing')
    """
    how_many = f"all {n_raw:,}" if n_raw is not None else "every one of the"
    return [Finding("train_rows_dropped", "fail",
                    f"TRL dropped {how_many} training rows during preprocessing; the train dataloader is empty, so "
                    "train() would fail with 'num_samples should be a positive integer value, but got num_samples=0' "
                    f"(rows whose first reply starts after max_length={max_length} keep only prompt tokens, all labels "
                    "-100, and are dropped)",
                    "raise max_length above the rows' prompt lengths (labhelpers.sanity.check_dataset suggests a value) "
                    "or shorten the prompts; check the dataset is not empty")]


def _special_text_symptoms(tokenizer: Any, source: Any, examples: Sequence[tuple[list[int], list[int]]]) -> Any:
    """A wrapper for the checks special-token text can trip: runs one on ``examples`` and, when some come from rows
    whose content holds turn-ending/forging special-token text, names that cause (`blame_cause`).

    The rows are ``source``'s ``messages`` (the raw dataset or the trainer's); without them (packed rows, a ``text``
    column) the examples' own tokens are read: an end-of-turn token followed by ordinary text is one from a message.
    """
    kinds = special_token_kinds(tokenizer)
    if not kinds:
        return lambda check: check(examples)
    convs = _conversations(source, None)
    if any(isinstance(c, (list, tuple)) for c in convs):
        affected, hits = special_text_examples(tokenizer, convs, examples, kinds)
        if affected:
            note = _special_text_note(hits, len(affected), len(examples), kinds, "train dataset")
            fix = _special_text_fix([t for h in hits for t in h.tokens])
    else:
        end, follow = end_of_turn_id(tokenizer), end_of_turn_follow(tokenizer)
        specials = list(getattr(tokenizer, "all_special_ids", []) or [])
        blank = functools.lru_cache(maxsize=None)(lambda token: not tokenizer.decode([token]).strip())
        stray = {i: p for i, (ids, _) in enumerate(examples)
                 if follow and (p := stray_end_of_turn(ids, end, follow, specials, blank)) is not None}
        affected = set(stray)
        if affected:
            i, p = next(iter(stray.items()))
            ids = examples[i][0]
            context = tokenizer.decode(ids[max(0, p - 6): p + 6], skip_special_tokens=False)
            note = (f"{len(affected)} of {len(examples)} inspected examples hold an end-of-turn token followed by "
                    f"ordinary text, where the chat template never writes one: special-token text inside a message, "
                    f"e.g. {context!r}")
            fix = _special_text_fix([tokenizer.eos_token or tokenizer.convert_ids_to_tokens(end)])
    if not affected:
        return lambda check: check(examples)
    clean = [ex for i, ex in enumerate(examples) if i not in affected]
    return lambda check: blame_cause(check(examples), check(clean) if clean else None, note, fix)


def _model_dtype(model: Any) -> str:
    return str(next(model.parameters()).dtype)


def preflight(trainer: Any, level: str = "quick", dataset: Any = None, max_batches: int | None = None) -> SanityReport:
    """Check a built, untrained SFTTrainer for silent bugs; ``dataset``: the raw train split, to count dropped rows.

    When TRL dropped every row, the report holds one ``train_rows_dropped`` fail (no torch ``num_samples=0`` crash).
    Dataset-level checks that need no trainer are in `labhelpers.sanity.check_dataset`.
    """
    if level not in LEVELS:
        raise ValueError(f"level={level!r}; choose one of {LEVELS}")
    tokenizer = _tokenizer_of(trainer)
    if tokenizer is None:
        raise ValueError("the trainer has no processing_class; build it with SFTTrainer(..., processing_class=tokenizer)")
    model, args = trainer.model, trainer.args
    limit = max_batches if max_batches is not None else (QUICK_MAX_BATCHES if level == "quick" else None)
    report = SanityReport(title=f"preflight ({level})")
    n_raw = len(dataset) if dataset is not None and hasattr(dataset, "__len__") else None
    train_ds = trainer.train_dataset
    if train_ds is not None and hasattr(train_ds, "__len__") and len(train_ds) == 0:
        report.extend(empty_train_findings(n_raw, getattr(args, "max_length", None)))
        return report
    with preserved_state(trainer):
        try:
            batches = collated_batches(trainer, limit)
        except ValueError as err:  # torch's RandomSampler: "num_samples should be a positive integer value, but got num_samples=0"
            if "num_samples" not in str(err) and "dataloader is empty" not in str(err):
                raise
            report.extend(empty_train_findings(n_raw, getattr(args, "max_length", None)))
            return report
        collator = custom_collator_name(trainer)
        if any(tuple(b["labels"].shape) != tuple(b["input_ids"].shape) for b in batches):
            report.extend(label_alignment_findings(batches, collator))  # every label-reading check would misread
            return report
        start = conversation_start(tokenizer) if getattr(args, "packing", False) else None
        examples = [ex for b in batches for ex in examples_in_batch(b, start)]
        eos = model.generation_config.eos_token_id if getattr(model, "generation_config", None) else None
        eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
        symptoms = _special_text_symptoms(tokenizer, dataset if dataset is not None else train_ds, examples)
        header, end = assistant_header(tokenizer), end_of_turn_id(tokenizer)

        setup = LossSetup(data_kind(dataset if dataset is not None else train_ds),
                          bool(getattr(args, "assistant_only_loss", False)), getattr(args, "completion_only_loss", None))

        def masking(exs: Sequence[tuple[list[int], list[int]]]) -> list[Finding]:
            return masking_findings(exs, header, end, tokenizer.pad_token_id, eos_ids, collator, setup)

        masked = symptoms(masking)
        alignment = label_alignment_findings(batches, collator)
        realigned = realigned_examples(examples, label_alignment_counts(batches)) if alignment[0].status == "fail" else None
        if realigned is not None:  # a one-token shift also moves every mask by one: name it, not the masking
            masked = blame_cause(masked, masking(realigned), "labels shifted by one token (see label_alignment)",
                                 alignment[0].fix, cause="misaligned labels", unlike="the shift")
        report.extend(masked)
        report.extend(alignment)
        report.extend(symptoms(lambda exs: template_findings(exs, tokenizer)))
        report.extend(truncation_findings(trainer, tokenizer, dataset, TRUNCATION_ROWS_QUICK if level == "quick" else None))
        device = args.device
        cap = torch.cuda.get_device_capability(device) if device.type == "cuda" else None
        report.extend(precision_findings(bool(args.fp16), bool(args.bf16), _model_dtype(model), device.type, cap))
        eff = rows_per_step(args)
        n_params = sum(p.numel() for p in model.parameters())
        report.extend(hyperparameter_findings(args.learning_rate, _warmup(args), _is_lora(model), n_params,
                                              len(trainer.train_dataset), eff, args.max_steps, args.num_train_epochs))
        # the schedule as this run will have it: steps counted after packing, from the dataloader's length
        per_epoch = batches_per_epoch(trainer)
        if per_epoch is not None or args.max_steps > 0:  # a streamed dataset without max_steps has no known length
            plan = plan_run(args, per_epoch if per_epoch is not None else args.max_steps * args.gradient_accumulation_steps)
            report.extend(run_fact_findings(args, plan, len(trainer.train_dataset), trainer.eval_dataset is not None,
                                            checkpoint_bytes(model, args)))
            report.extend(schedule_findings(args, plan, trainer.eval_dataset is not None))
        newline = tokenizer.encode("\n", add_special_tokens=False)
        report.extend(symptoms(lambda exs: doubled_end_findings([ids for ids, _ in exs], end, tokenizer.eos_token,
                                                                newline)))
        if getattr(model, "generation_config", None) is not None:
            report.extend(generation_findings(model.generation_config, end, tokenizer.eos_token))
        # what trains: nothing frozen by mistake, LoRA targets hit and its LR band, new tokens learnable
        report.extend(lora_findings(model, args.learning_rate, tokenizer))
        report.extend(eval_findings(trainer, dataset))
        if getattr(args, "logging_nan_inf_filter", False):
            report.extend([Finding("logging_nan_inf_filter", "warn",
                                   "logging_nan_inf_filter=True: a NaN/Inf loss is logged as the running average",
                                   "set logging_nan_inf_filter=False so NaNs show up (SanityMonitor also watches grad_norm)")])
        report.extend(loss_at_init_findings(model, tokenizer, batches[0]))
        report.extend(packing_findings(model, tokenizer, batches, bool(getattr(args, "packing", False))))
        if level == "full":
            report.extend(prompt_swap_findings(model, tokenizer, batches))
            report.extend(grad_accum_findings(trainer, batches[0]))
        report.extras["example"] = show_example(batches[0], tokenizer, 0, html=True)
    return report
