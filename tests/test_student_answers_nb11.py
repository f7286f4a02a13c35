"""Notebook 11's TODO, `masked_lm_loss(logits, labels)`, as students write it: near misses (no shift or the wrong one,
the wrong ignore_index, the wrong denominator, no flattening, half-precision softmax, ...) that the check must reject
with their own mistake named, and right answers written differently from the solution (nn.CrossEntropyLoss, a
(batch, vocab, time) layout, log_softmax and gather, a loop over rows) that it must accept, on the toy batches and on
a real-like batch as SFTTrainer's loss comes (float32 and bfloat16 logits)."""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from labhelpers.checks import TodoCheckError, check_masked_lm_loss


# ------------------------------------------------------------------------------------------------------ wrong
def no_shift(logits, labels):
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100)


def shifted_the_wrong_way(logits, labels):
    lg, lb = logits[:, 1:], labels[:, :-1]
    total = F.cross_entropy(lg.reshape(-1, lg.size(-1)), lb.reshape(-1), ignore_index=-100, reduction="sum")
    return total / (lb != -100).sum().clamp(min=1)


def mean_over_every_position(logits, labels):
    lg, lb = logits[:, :-1], labels[:, 1:]
    per_token = F.cross_entropy(lg.reshape(-1, lg.size(-1)), lb.reshape(-1), ignore_index=-100, reduction="none")
    return per_token.mean()


def ignore_index_minus_one(logits, labels):
    lg, lb = logits[:, :-1], labels[:, 1:]
    total = F.cross_entropy(lg.reshape(-1, lg.size(-1)), lb.reshape(-1), ignore_index=-1, reduction="sum")
    return total / (lb != -1).sum().clamp(min=1)


def ignore_index_zero(logits, labels):
    lg, lb = logits[:, :-1], labels[:, 1:]
    loss = F.cross_entropy(lg.reshape(-1, lg.size(-1)), lb.reshape(-1), ignore_index=0)
    return torch.nan_to_num(loss)


def summed(logits, labels):
    lg, lb = logits[:, :-1], labels[:, 1:]
    return F.cross_entropy(lg.reshape(-1, lg.size(-1)), lb.reshape(-1), ignore_index=-100, reduction="sum")


def mean_per_sequence_then_batch(logits, labels):
    lg, lb = logits[:, :-1], labels[:, 1:]
    per_token = F.cross_entropy(lg.transpose(1, 2), lb, ignore_index=-100, reduction="none")  # (B, T-1)
    mask = lb != -100
    return (per_token.sum(dim=1) / mask.sum(dim=1)).mean()


def forgot_to_flatten(logits, labels):
    total = F.cross_entropy(logits[:, :-1], labels[:, 1:], ignore_index=-100, reduction="sum")
    return total / (labels[:, 1:] != -100).sum().clamp(min=1)


def flattened_the_logits_only(logits, labels):
    lg = logits[:, :-1].reshape(-1, logits.size(-1))
    total = F.cross_entropy(lg, labels[:, 1:], ignore_index=-100, reduction="sum")
    return total / (labels[:, 1:] != -100).sum().clamp(min=1)


def view_on_a_slice(logits, labels):
    lg, lb = logits[:, :-1], labels[:, 1:]
    total = F.cross_entropy(lg.view(-1, lg.size(-1)), lb.view(-1), ignore_index=-100, reduction="sum")
    return total / (lb != -100).sum().clamp(min=1)


def float16_softmax(logits, labels):
    log_probs = torch.log_softmax(logits[:, :-1].half(), dim=-1)
    targets = labels[:, 1:]
    mask = targets != -100
    picked = log_probs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return -(picked.float() * mask).sum() / mask.sum().clamp(min=1)


def counted_before_shifting(logits, labels):
    lg, lb = logits[:, :-1], labels[:, 1:]
    total = F.cross_entropy(lg.reshape(-1, lg.size(-1)), lb.reshape(-1), ignore_index=-100, reduction="sum")
    return total / (labels != -100).sum().clamp(min=1)


def nll_loss_on_raw_logits(logits, labels):
    lg, lb = logits[:, :-1], labels[:, 1:]
    total = F.nll_loss(lg.reshape(-1, lg.size(-1)), lb.reshape(-1), ignore_index=-100, reduction="sum")
    return total / (lb != -100).sum().clamp(min=1)


def returned_a_float(logits, labels):
    lg, lb = logits[:, :-1], labels[:, 1:]
    total = F.cross_entropy(lg.reshape(-1, lg.size(-1)), lb.reshape(-1), ignore_index=-100, reduction="sum")
    return total.item() / max(int((lb != -100).sum()), 1)


def no_return(logits, labels):
    lg, lb = logits[:, :-1], labels[:, 1:]
    loss = F.cross_entropy(lg.reshape(-1, lg.size(-1)), lb.reshape(-1), ignore_index=-100)  # noqa: F841


# (name, the student's function, distinctive words of the message)
WRONG = [
    ("no shift", no_shift, "you did not shift labels"),
    ("shifted the wrong way", shifted_the_wrong_way, "you shifted the wrong way round"),
    ("mean over every position", mean_over_every_position, "you averaged over masked tokens too"),
    ("ignore_index=-1", ignore_index_minus_one, "ignore_index=-1: the masked labels are -100"),
    ("ignore_index=0", ignore_index_zero, "ignore_index=0: the masked labels are -100"),
    ("summed", summed, "you summed the per-token losses instead of averaging them"),
    ("mean per sequence, then over the batch", mean_per_sequence_then_batch,
     "one row has no trained token and you averaged per-row means"),
    ("forgot to flatten", forgot_to_flatten, "you did not flatten"),
    ("flattened the logits only", flattened_the_logits_only, "you did not flatten"),
    (".view on a slice", view_on_a_slice, "logits[:, :-1] is a slice: .view cannot flatten it"),
    ("float16 softmax", float16_softmax, "half-precision rounding"),
    ("counted before shifting", counted_before_shifting, "you counted the trained tokens before shifting"),
    ("nll_loss on raw logits", nll_loss_on_raw_logits, "you gave raw logits to nll_loss"),
    ("returned a float", returned_a_float, "returned a float"),
    ("no return", no_return, "masked_lm_loss returned None"),
]


# ------------------------------------------------------------------------------------------------------ right
def cross_entropy_loss_module(logits, labels):
    """nn.CrossEntropyLoss with reduction='sum', divided by the count; contiguous().view to flatten."""
    shift_logits = logits[..., :-1, :].contiguous().float()
    shift_labels = labels[..., 1:].contiguous()
    loss_sum = nn.CrossEntropyLoss(reduction="sum")(shift_logits.view(-1, shift_logits.shape[-1]), shift_labels.view(-1))
    n = shift_labels.ne(-100).sum()
    return loss_sum / torch.clamp(n, min=1)


def batch_vocab_time_layout(logits, labels):
    """cross_entropy on (B, V, T) logits, reduction='none', masked sum over the count."""
    per_token = F.cross_entropy(logits[:, :-1].float().permute(0, 2, 1), labels[:, 1:], reduction="none")
    trained = (labels[:, 1:] != -100).float()
    return (per_token * trained).sum() / trained.sum().clamp(min=1.0)


def log_softmax_and_gather(logits, labels):
    """log_softmax and gather, the -100 targets replaced before the gather and masked out after."""
    log_probs = F.log_softmax(logits[:, :-1].float(), dim=-1)
    targets = labels[:, 1:]
    trained = targets != -100
    picked = log_probs.gather(2, targets.masked_fill(~trained, 0).unsqueeze(2)).squeeze(2)
    n = int(trained.sum())
    if n == 0:
        return logits.sum() * 0.0
    return -(picked * trained).sum() / n


def mean_reduction_with_a_guard(logits, labels):
    """cross_entropy's default mean over non-ignored targets (ignore_index defaults to -100); 0 when none."""
    targets = labels[:, 1:].flatten()
    if (targets == -100).all():
        return torch.zeros((), device=logits.device)
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets)


def a_loop_over_rows(logits, labels):
    """Per-row sums and counts added up, divided once (token-weighted, not a mean of row means)."""
    total, count = logits.new_zeros((), dtype=torch.float32), 0
    for row_logits, row_labels in zip(logits, labels):
        keep = row_labels[1:] != -100
        if keep.any():
            total = total + F.cross_entropy(row_logits[:-1][keep].float(), row_labels[1:][keep], reduction="sum")
            count += int(keep.sum())
    return total / max(count, 1)


RIGHT = [
    ("nn.CrossEntropyLoss, sum / count", cross_entropy_loss_module),
    ("(B, V, T) layout, masked sum", batch_vocab_time_layout),
    ("log_softmax and gather", log_softmax_and_gather),
    ("default mean reduction with a guard", mean_reduction_with_a_guard),
    ("a loop over rows", a_loop_over_rows),
]


def real_like_batch(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits of ``dtype`` and labels as SFTTrainer's collator gives them, and the float32 loss TRL reports."""
    g = torch.Generator().manual_seed(3)
    logits = (3 * torch.randn(2, 24, 97, generator=g)).to(dtype)
    labels = torch.randint(0, 97, (2, 24), generator=g)
    labels[0, :9] = -100
    labels[1, :15] = -100
    labels[1, 22:] = -100  # padding
    shift = logits[:, :-1].float()
    trainer_loss = F.cross_entropy(shift.reshape(-1, 97), labels[:, 1:].reshape(-1), ignore_index=-100)
    return logits, labels, trainer_loss


@pytest.mark.parametrize("name, student, words", WRONG, ids=[w[0] for w in WRONG])
def test_wrong_loss_is_named(name, student, words):
    with pytest.raises(TodoCheckError) as err:
        check_masked_lm_loss(student)
    message = str(err.value)
    assert words in message and "Fix:" in message, message


@pytest.mark.parametrize("name, student, words", WRONG, ids=[w[0] for w in WRONG])
def test_every_failure_is_one_clean_line(name, student, words):
    """No crash from inside the student's code or the check: a TodoCheckError, shown in Jupyter as one line."""
    try:
        check_masked_lm_loss(student)
    except TodoCheckError as err:
        assert "\n" not in str(err) and err._render_traceback_() == [f"TodoCheckError: {err}"], str(err)
    else:
        pytest.fail(f"{name} was accepted")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("name, student", RIGHT, ids=[r[0] for r in RIGHT])
def test_right_loss_is_accepted(name, student, dtype, capsys):
    check_masked_lm_loss(student)
    assert capsys.readouterr().out.startswith("✓ masked_lm_loss is right on 3 toy batches")
    logits, labels, trainer_loss = real_like_batch(dtype)
    check_masked_lm_loss(student, logits, labels, trainer_loss)
    assert "equals SFTTrainer's loss on the real batch" in capsys.readouterr().out


@pytest.mark.parametrize("name, student, words", [w for w in WRONG if w[0] in {"no shift", "summed", "forgot to flatten"}],
                         ids=["no shift", "summed", "forgot to flatten"])
def test_wrong_loss_is_named_on_the_real_batch_too(name, student, words):
    """A function that is right on the toy batches but wrong on the real one still gets its own mistake named."""
    from labhelpers.checks.nb11_custom_accelerate_loop import _toy_batches

    toy_lengths = {lg.size(1) for _, lg, _ in _toy_batches()}

    def right_on_toys(logits, labels):
        return cross_entropy_loss_module(logits, labels) if logits.size(1) in toy_lengths else student(logits, labels)

    logits, labels, trainer_loss = real_like_batch(torch.float32)
    with pytest.raises(TodoCheckError) as err:
        check_masked_lm_loss(right_on_toys, logits, labels, trainer_loss)
    assert "real batch" in str(err.value) and words in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_check_cost():
    start = time.perf_counter()
    check_masked_lm_loss(cross_entropy_loss_module)
    assert time.perf_counter() - start < 2
