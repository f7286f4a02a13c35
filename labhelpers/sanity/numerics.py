"""Numerical preflight checks on the model itself: the loss at initialisation on the labels the trainer optimises,
packed rows against the same rows alone, a reply scored after another row's prompt, and the loss over gradient
accumulation against one large batch.

    findings = loss_at_init_findings(model, tokenizer, batch)
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from labhelpers.model.attention import forward_dtype, model_autocast
from labhelpers.views.display import IGNORE_INDEX
from labhelpers.model.loading import has_random_weights
from labhelpers.sanity.postflight import skipped_for_random_weights
from labhelpers.sanity.report import Finding
from labhelpers.sanity.tokens import assistant_header, assistant_mask, end_of_turn_id, examples_in_batch, last_reply_split, rendered_ids, segments

PACKING_TOLERANCE = 1e-2  # max |Δlogit| packed vs alone in fp32; sdpa gives ~5e-5, a leak gives ~28
# ... and in half precision (bf16/fp16 autocast, as flash-attention runs): rounding alone moves logits of magnitude
# 10-30 by up to ~0.5 (measured under the ampere-cpu emulation), still far below a leak
PACKING_TOLERANCE_HALF = 1.0
PROMPT_SWAP_MIN_RATIO = 1.04  # reply loss after another row's prompt / after its own (see prompt_swap_findings)


# ----------------------------------------------------------------------------------- numerical checks
_FORWARD_KEYS = ("input_ids", "attention_mask", "position_ids")


def _forward_logits(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    inputs = {k: batch[k].to(model.device) for k in _FORWARD_KEYS if k in batch}
    with torch.no_grad(), model_autocast(model):  # a flash kernel takes only half precision
        return model(**inputs, use_cache=False).logits.float()


def _ce(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, int]:
    shift_logits, shift_labels = logits[:, :-1], labels[:, 1:].to(logits.device)
    n = int((shift_labels != IGNORE_INDEX).sum())
    if n == 0:
        return float("nan"), 0
    loss = torch.nn.functional.cross_entropy(shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1),
                                             ignore_index=IGNORE_INDEX)
    return float(loss), n


def loss_at_init_findings(model: Any, tokenizer: Any, batch: dict[str, torch.Tensor], max_rows: int = 4) -> list[Finding]:
    """Loss at init on the labels the trainer will optimise vs ln(vocab) and a loaded chat model's usual 1-3 nats.

    Judged on the batch's own labels (the model shifts them by one, as in training), not on reply tokens re-derived
    from input_ids; when the labels differ from input_ids at trained positions, the loss of those positions scored
    against their own input ids tells misaligned labels from unloaded weights. NaN for all-masked labels.
    """
    batch = {k: v[:max_rows] if isinstance(v, torch.Tensor) and v.dim() > 1 else v for k, v in batch.items()}
    if tuple(batch["labels"].shape) != tuple(batch["input_ids"].shape):
        return [Finding("loss_at_init", "fail",
                        f"labels of shape {list(batch['labels'].shape)} for input_ids of shape "
                        f"{list(batch['input_ids'].shape)}: the loss pairs them position by position, so no loss the "
                        "trainer computes means anything", "give labels the shape of input_ids (see label_alignment)")]
    header, end_id = assistant_header(tokenizer), end_of_turn_id(tokenizer)
    reply_labels = batch["input_ids"].clone()
    for r in range(reply_labels.shape[0]):
        keep = torch.tensor(assistant_mask(batch["input_ids"][r].tolist(), header, end_id))
        if "attention_mask" in batch:
            keep &= batch["attention_mask"][r].bool()
        reply_labels[r][~keep] = IGNORE_INDEX
    model.eval()
    logits = _forward_logits(model, batch)
    labels = batch["labels"]
    train_loss, n_train = _ce(logits, labels)
    reply_loss, n_reply = _ce(logits, reply_labels)
    aligned_loss = None  # the same trained positions scored against their own input ids
    aligned = torch.where(labels != IGNORE_INDEX, batch["input_ids"], IGNORE_INDEX)
    if not torch.equal(aligned, labels):
        aligned_loss = _ce(logits, aligned)[0]
    vocab = logits.shape[-1]
    random_loss = math.log(vocab)
    detail = f"loss at init {train_loss:.2f} on {n_train} trained tokens, {reply_loss:.2f} on {n_reply} reply tokens"
    if aligned_loss is not None:
        detail += f", {aligned_loss:.2f} on the trained positions with labels = input_ids"
    detail += f"; ln(vocab)={random_loss:.1f}"
    finding = _loss_at_init_verdict(detail, n_train, train_loss, random_loss,
                                    reply_loss if n_reply else None, aligned_loss)
    if has_random_weights(model):  # GPU rehearsal: random weights are as bad as guessing by construction
        finding = skipped_for_random_weights(finding)
    return [finding]


def _loss_at_init_verdict(detail: str, n_train: int, train_loss: float, random_loss: float,
                          reply_loss: float | None = None, aligned_loss: float | None = None) -> Finding:
    """The verdict on the trained loss; ``aligned_loss`` (labels differ from input_ids) and ``reply_loss`` name the cause.

    >>> _loss_at_init_verdict("d", 10, 10.7, 10.8, 2.1, 2.2).message  # pre-shifted labels, loaded weights
    'd: as bad as random guessing on the labels the trainer optimises, yet 2.20 with labels = input_ids: the labels are misaligned (see label_alignment)'
    >>> _loss_at_init_verdict("d", 10, 10.7, 10.8, 10.6).fix.split(" (")[0]
    'weights not loaded'
    """
    if n_train == 0 or math.isnan(train_loss):
        return Finding("loss_at_init", "fail", detail + ": no trained tokens in the batch → NaN/0 loss",
                       "check truncation and the collator's labels (all -100)")
    misaligned = aligned_loss is not None and math.isfinite(aligned_loss) and aligned_loss + 1.0 < train_loss
    if not math.isfinite(train_loss) or train_loss > 0.75 * random_loss:
        if misaligned and aligned_loss <= 0.75 * random_loss:
            return Finding("loss_at_init", "fail",
                           f"{detail}: as bad as random guessing on the labels the trainer optimises, yet "
                           f"{aligned_loss:.2f} with labels = input_ids: the labels are misaligned (see label_alignment)",
                           "make labels equal input_ids at every trained position (no pre-shift: the model shifts by "
                           "one itself); label_alignment says which step builds them")
        return Finding("loss_at_init", "fail", detail + ": as bad as random guessing",
                       "weights not loaded (from_config instead of from_pretrained?) or a tokenizer from another model")
    if train_loss > 5.0:
        if misaligned:
            return Finding("loss_at_init", "warn",
                           f"{detail}: higher than a loaded chat model's usual 1-3 nats on the labels the trainer "
                           f"optimises, {aligned_loss:.2f} with labels = input_ids: misaligned labels (see label_alignment)",
                           "make labels equal input_ids at every trained position (no pre-shift)")
        if reply_loss is not None and reply_loss <= 5.0:
            return Finding("loss_at_init", "warn",
                           f"{detail}: the trained tokens include hard-to-predict prompt/template tokens (replies alone "
                           f"{reply_loss:.2f})", "train on replies only (see prompt_tokens_trained)")
        return Finding("loss_at_init", "warn", detail + ": higher than a loaded chat model's usual 1-3 nats",
                       "check the tokenizer and chat template belong to this model")
    if train_loss < 0.05:
        return Finding("loss_at_init", "warn", detail + ": near zero before training",
                       "the model already knows these replies (eval data seen?) or the labels leak the answer")
    return Finding("loss_at_init", "pass", detail, "")


def conversation_start(tokenizer: Any) -> list[int]:
    """The first ids of every rendered conversation (ChatML: ``<|im_start|>system\\n``)."""
    return rendered_ids(tokenizer.apply_chat_template([{"role": "user", "content": "x"}], tokenize=True))[:3]


def _conversation_starts(ids: Sequence[int], start: Sequence[int]) -> list[int]:
    n = len(start)
    return [i for i in range(len(ids) - n + 1) if list(ids[i : i + n]) == list(start)]


def packing_findings(model: Any, tokenizer: Any, batches: Sequence[dict[str, torch.Tensor]], packing: bool) -> list[Finding]:
    """Prove packed examples are isolated: logits of an example packed after another vs the same example alone."""
    start_ids = conversation_start(tokenizer)
    for batch in batches:
        ids, pos = batch["input_ids"], batch.get("position_ids")
        for r in range(ids.shape[0]):
            row = ids[r].tolist()
            if pos is not None and "attention_mask" not in batch:
                segs = segments(pos[r].tolist(), len(row))
                how = "position_ids restart, no attention_mask"
            else:
                length = int(batch["attention_mask"][r].sum()) if "attention_mask" in batch else len(row)
                cuts = [c for c in _conversation_starts(row[:length], start_ids) if c > 0]
                segs = [(s, e) for s, e in zip([0] + cuts, cuts + [length])] if cuts else []
                how = "a plain attention_mask over the whole row" if "attention_mask" in batch else "no attention mask"
            if len(segs) < 2:
                continue
            s, e = segs[1]
            e = min(e, s + 64)  # the first 64 tokens are enough to see a leak
            one = {k: v[r : r + 1] for k, v in batch.items() if k in _FORWARD_KEYS and isinstance(v, torch.Tensor)}
            model.eval()
            packed = _forward_logits(model, one)[0, s:e]
            alone = _forward_logits(model, {"input_ids": ids[r : r + 1, s:e]})[0]
            delta = float((packed - alone).abs().max())
            tolerance = PACKING_TOLERANCE if forward_dtype(model) == torch.float32 else PACKING_TOLERANCE_HALF
            if delta > tolerance:
                return [Finding("packing_isolation", "fail",
                                f"example packed after another differs from itself alone by max |Δlogit| {delta:.3g} "
                                f"({how}): packed examples attend to each other",
                                "use packing_strategy='bfd' (padding-free, position_ids restart) with sdpa/eager/"
                                "flash-attention and no attention_mask; never 'wrapped' with padding_free=False")]
            return [Finding("packing_isolation", "pass",
                            f"packed vs alone max |Δlogit| {delta:.2g} ({how}): examples are isolated", "")]
    if packing:
        return [Finding("packing_isolation", "warn", "packing is on but no row holds two examples to compare",
                        "nothing to do if rows are long; the check needs shorter rows to prove isolation")]
    return [Finding("packing_isolation", "pass", "no packing: each row is one example", "")]


def _reply_loss(model: Any, prompt: list[int], reply: list[int]) -> tuple[float, int]:
    """Mean cross-entropy of ``reply`` after ``prompt`` and the number of reply tokens scored."""
    labels = torch.tensor([[IGNORE_INDEX] * len(prompt) + reply])
    return _ce(_forward_logits(model, {"input_ids": torch.tensor([prompt + reply])}), labels)


def prompt_swap_findings(model: Any, tokenizer: Any, batches: Sequence[dict[str, torch.Tensor]], max_rows: int = 16,
                         min_ratio: float = PROMPT_SWAP_MIN_RATIO) -> list[Finding]:
    """Each reply must be likelier after its own prompt than after another row's: replies depend on their prompts.

    Every row's last reply is scored after its own prompt and after the next row's prompt. Shuffled or misaligned
    prompt/reply columns give a ratio near 1 (both prompts are unrelated to the reply). Calibrated with the base
    SmolLM2 on the bundled data: aligned rows 1.06-1.25 (9 samples of 4-16 rows, short and full conversations,
    padded and packed), the same rows with their replies shuffled 0.92-1.03 (5 samples); hence the 1.04 threshold.
    """
    header, end_id = assistant_header(tokenizer), end_of_turn_id(tokenizer)
    pairs = [split for batch in batches for ids, _ in examples_in_batch(batch)
             if (split := last_reply_split(ids, header, end_id)) is not None][:max_rows]
    if len(pairs) < 2:
        return [Finding("prompt_swap", "warn", f"only {len(pairs)} row(s) with a reply: need two to swap prompts",
                        "check the data has assistant replies, or pass more rows")]
    own_sum = other_sum = 0.0
    total = 0
    model.eval()
    for i, (prompt, reply) in enumerate(pairs):
        own, n = _reply_loss(model, prompt, reply)
        other, _ = _reply_loss(model, pairs[(i + 1) % len(pairs)][0], reply)
        if n:
            own_sum, other_sum, total = own_sum + own * n, other_sum + other * n, total + n
    if not total:
        return [Finding("prompt_swap", "warn", "no reply token could be scored", "check the replies are not empty")]
    ratio = other_sum / own_sum if own_sum > 0 else float("inf")
    status = "warn" if ratio < min_ratio else "pass"
    return [Finding("prompt_swap", status,
                    f"reply loss {own_sum / total:.3f} after its own prompt vs {other_sum / total:.3f} after another "
                    f"row's (x{ratio:.3f}, {len(pairs)} rows)",
                    "replies barely depend on their prompts: check prompt/reply alignment (shuffled or misjoined "
                    "columns?) and that the data teaches an input-dependent task" if status == "warn" else "")]


def grad_accum_findings(trainer: Any, batch: dict[str, torch.Tensor], tolerance: float = 1e-3) -> list[Finding]:
    """Loss and gradient of one batch vs the same rows as two accumulated micro-batches, as the Trainer scales them."""
    rows = batch["input_ids"].shape[0]
    if rows < 2:
        return [Finding("grad_accum_invariance", "pass", "skipped: batches are single packed rows", "")]
    model = trainer.model
    device = model.device
    half = rows // 2
    full = {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
    parts = [{k: v[sl] for k, v in full.items()} for sl in (slice(0, half), slice(half, 2 * half))]
    full = {k: v[: 2 * half] for k, v in full.items()}
    counts = trainer.model_accepts_loss_kwargs or trainer.compute_loss_func is not None
    n_items = full["labels"][..., 1:].ne(IGNORE_INDEX).sum() if counts else None
    scaled = (trainer.model_accepts_loss_kwargs and n_items is not None) or trainer.compute_loss_func is not None
    params = [p for p in model.parameters() if p.requires_grad][-2:]
    model.eval()  # no dropout, so both sides are deterministic

    def loss_and_grad(mbs: list[dict[str, torch.Tensor]], accum: int) -> tuple[float, torch.Tensor]:
        total = 0
        for mb in mbs:
            with model_autocast(model):  # as the Trainer's training_step: a flash kernel takes half precision only
                loss = trainer.compute_loss(model, dict(mb), num_items_in_batch=n_items)
            total = total + (loss if scaled else loss / accum)
        grads = torch.autograd.grad(total, params, allow_unused=True)
        flat = torch.cat([g.flatten() for g in grads if g is not None])
        return float(total.detach()), flat

    one_loss, one_grad = loss_and_grad([full], 1)
    acc_loss, acc_grad = loss_and_grad(parts, 2)
    rel_loss = abs(one_loss - acc_loss) / max(abs(one_loss), 1e-12)
    rel_grad = float((one_grad - acc_grad).norm() / one_grad.norm().clamp_min(1e-12))
    bad = max(rel_loss, rel_grad) > tolerance
    return [Finding("grad_accum_invariance", "fail" if bad else "pass",
                    f"batch of {2 * half} vs 2×{half} accumulated: loss {one_loss:.4f} vs {acc_loss:.4f} "
                    f"(rel {rel_loss:.1e}), grad rel diff {rel_grad:.1e}",
                    "normalise by the total trained tokens of the accumulated batch (num_items_in_batch, transformers "
                    "PR #34191): a custom compute_loss/model forward must accept and use num_items_in_batch" if bad else "")]
