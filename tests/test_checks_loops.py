"""Checks of notebooks 08 (LR schedules) and 11 (custom loop): each passes a reference answer and names typical
wrong answers; plus the plots they save. Toy tensors only: no model is loaded."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from labhelpers.checks import TodoCheckError, check_cosine_schedule, check_masked_lm_loss
from labhelpers.views.plots import plot_loss_curves, plot_lr_schedules


# ------------------------------------------------------------------------------------ masked LM loss (11)
def good_loss(logits, labels):
    s = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100, reduction="sum")
    return s / (labels[:, 1:] != -100).sum().clamp(min=1)


def no_shift(logits, labels):
    s = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="sum")
    return s / (labels != -100).sum().clamp(min=1)


def wrong_shift(logits, labels):
    s = F.cross_entropy(logits[:, 1:].flatten(0, 1), labels[:, :-1].flatten(), ignore_index=-100, reduction="sum")
    return s / (labels[:, :-1] != -100).sum().clamp(min=1)


def mean_over_all_positions(logits, labels):
    per = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100, reduction="none")
    return per.mean()  # masked positions count as 0 but are in the denominator


def summed(logits, labels):
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100, reduction="sum")


def row_means(logits, labels):
    per = F.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:], ignore_index=-100, reduction="none")
    n = (labels[:, 1:] != -100).sum(1)
    return (per.sum(1) / n).mean()


def row_means_skipping_empty(logits, labels):
    per = F.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:], ignore_index=-100, reduction="none")
    n = (labels[:, 1:] != -100).sum(1)
    keep = n > 0
    return (per.sum(1)[keep] / n[keep]).mean() if keep.any() else per.sum() * 0


def plain_mean(logits, labels):  # right except on a batch with no trained token: NaN
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)


def gather_without_mask(logits, labels):  # hand-rolled log-prob lookup that forgets the -100 labels
    logp = logits[:, :-1].log_softmax(-1)
    return -logp.gather(-1, labels[:, 1:].unsqueeze(-1)).mean()


def masked_trained(logits, labels):  # -100 turned into token 0: masked positions are trained too
    lb = labels.clamp(min=0)
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), lb[:, 1:].flatten())


def in_place(logits, labels):
    labels[labels == -100] = -100  # harmless, then the classic in-place edit
    labels[:, 0] = -100
    return good_loss(logits, labels)


def detached(logits, labels):
    return torch.tensor(float(good_loss(logits, labels).detach()))


def test_reference_loss_passes(capsys):
    check_masked_lm_loss(good_loss)
    assert "✓ masked_lm_loss is right on 3 toy batches" in capsys.readouterr().out


@pytest.mark.parametrize("fn, message", [
    (no_shift, "you did not shift labels"),
    (wrong_shift, "you shifted the wrong way round"),
    (mean_over_all_positions, "you averaged over masked tokens too"),
    (summed, "you summed the per-token losses"),
    (row_means, "one row has no trained token and you averaged per-row means"),
    (row_means_skipping_empty, "you averaged per-row means"),
    (plain_mean, "your loss is NaN (0 trained tokens / 0)"),
    (gather_without_mask, "looking up the -100 labels as token ids failed"),
    (masked_trained, "you trained the masked positions as well"),
    (in_place, "changed the labels tensor in place"),
    (detached, "does not carry a gradient"),
])
def test_wrong_losses_get_specific_feedback(fn, message):
    with pytest.raises(TodoCheckError) as err:
        check_masked_lm_loss(fn)
    assert message in str(err.value)
    assert "Fix:" in str(err.value)


def real_like_batch():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 12, 17, generator=g)
    labels = torch.randint(0, 17, (2, 12), generator=g)
    labels[0, :5] = -100
    labels[1, :9] = -100
    return logits, labels


def test_real_batch_comparison_passes_within_tolerance(capsys):
    logits, labels = real_like_batch()
    trainer_loss = good_loss(logits, labels) + 5e-6  # fused-head rounding of the order TRL shows
    check_masked_lm_loss(good_loss, logits, labels, trainer_loss)
    assert "equals SFTTrainer's loss on the real batch" in capsys.readouterr().out


def test_real_batch_comparison_names_the_mistake():
    logits, labels = real_like_batch()
    trainer_loss = good_loss(logits, labels)

    def right_on_toys_wrong_here(lg, lb):  # passes the toys, averages over every position on a long batch
        return good_loss(lg, lb) if lg.size(1) < 12 else mean_over_all_positions(lg, lb)

    tolerance = r"\(tolerance 1e-05 \+ 1.0e-05 x \|loss\| for float32 logits\)"
    with pytest.raises(TodoCheckError, match=rf"real batch vs SFTTrainer {tolerance}: .*averaged over masked tokens too"):
        check_masked_lm_loss(right_on_toys_wrong_here, logits, labels, trainer_loss)


# -------------------------------------------------------------------------------------- cosine LR (08)
def good_cosine(step, total, warmup, peak):
    if step < warmup:
        return peak * step / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def test_reference_cosine_passes(capsys):
    check_cosine_schedule(good_cosine)
    assert 'matches get_scheduler("cosine")' in capsys.readouterr().out


@pytest.mark.parametrize("fn, message", [
    (lambda s, t, w, p: p * 0.5 * (1 + math.cos(math.pi * s / t)), "at step 0 your LR is 2e-05 but warmup starts at 0"),
    (lambda s, t, w, p: p * min(1, (s + 1) / w) if s < w else good_cosine(s, t, w, p), "warmup starts at 0"),
    (lambda s, t, w, p: p * s / w if s < w else p * 0.5 * (1 + math.cos(math.pi * s / t)),
     "measures progress as step / total_steps"),
    (lambda s, t, w, p: p * s / w if s < w else p * math.cos(math.pi * (s - w) / (t - w)), "missing the 0.5 * (1 + ...)"),
    (lambda s, t, w, p: p * s / w if s < w else p * 0.5 * (1 + math.cos(2 * math.pi * (s - w) / (t - w))),
     "full period"),
    (lambda s, t, w, p: p * s / w if s < w else p * 0.5 * (1 - math.cos(math.pi * (s - w) / (t - w))), "goes up"),
    (lambda s, t, w, p: p * s / w if s < w else p * (1 - (s - w) / (t - w)), "get_scheduler('cosine') gives"),
    (lambda s, t, w, p: p * s / w if s <= w else good_cosine(s, t, w, p), "divided by zero"),
    (lambda s, t, w, p: p * (s - 1) / w if s < w else good_cosine(s, t, w, p), "warmup starts at 0"),
    (lambda s, t, w, p: p * s / (w + 1) if s < w else good_cosine(s, t, w, p), "warmup should be at"),
    (lambda s, t, w, p: torch.tensor(good_cosine(s, t, w, p)), "return the LR as a Python float"),
])
def test_wrong_cosines_get_specific_feedback(fn, message):
    with pytest.raises(TodoCheckError) as err:
        check_cosine_schedule(fn)
    assert message in str(err.value)


def test_cosine_check_matches_transformers_reference():
    from labhelpers.checks import _reference_cosine_lrs

    lrs = _reference_cosine_lrs(96, 10, 2e-5)
    assert lrs[0] == 0 and lrs[10] == pytest.approx(2e-5) and lrs[96] == pytest.approx(0, abs=1e-12)
    assert all(good_cosine(s, 96, 10, 2e-5) == pytest.approx(v, rel=1e-9, abs=1e-15) for s, v in enumerate(lrs))


# ----------------------------------------------------------------------------------------------- plots
def test_plots_write_pngs(tmp_path):
    p1 = plot_lr_schedules({"cosine": [0.0, 1.0, 0.5, 0.0], "constant": [0.0, 1.0, 1.0, 1.0]}, tmp_path / "a" / "lr.png",
                           warmup_steps=1)
    p2 = plot_loss_curves({"x": [(1, 3.0), (2, 2.5)], "empty": []}, tmp_path / "loss.png")
    for p in (p1, p2):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
