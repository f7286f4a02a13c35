"""TODO check of notebook 11 (a custom training loop): the student's masked LM loss on toy batches (shifted,
-100 ignored, mean over trained tokens) and against SFTTrainer's loss on a real batch, tolerance by dtype."""

from __future__ import annotations

from labhelpers.checks.core import TodoCheckError, passed, require, student_code


def _loss_candidates(logits, labels) -> dict[str, object]:
    """Masked LM loss, right and in common wrong ways, on the same logits/labels: {name: scalar tensor}.

    >>> import torch
    >>> logits, labels = torch.zeros(1, 3, 4), torch.tensor([[-100, 1, 2]])
    >>> {k: round(float(v), 4) for k, v in _loss_candidates(logits, labels).items()}["reference"]
    1.3863
    """
    import torch
    import torch.nn.functional as F

    logits = logits.detach().float()
    vocab = logits.size(-1)

    def ce(lg, lb):
        per = F.cross_entropy(lg.reshape(-1, vocab), lb.reshape(-1), ignore_index=-100, reduction="none")
        return per.view(lb.shape), (lb != -100)

    out: dict[str, object] = {}
    per, mask = ce(logits[:, :-1], labels[:, 1:])
    n = mask.sum()
    out["reference"] = per.sum() / n.clamp(min=1)
    out["sum"] = per.sum()
    out["masked_in_mean"] = per.sum() / mask.numel()
    rows = mask.sum(1)
    out["mean_of_row_means"] = (per.sum(1) / rows).mean()  # NaN with a fully masked row
    kept = rows > 0
    out["mean_of_row_means_skipping_empty"] = (per.sum(1)[kept] / rows[kept]).mean() if kept.any() else torch.tensor(0.0)
    out["nan_when_empty"] = per.sum() / n  # plain cross_entropy(ignore_index) on an all-masked batch
    per0, mask0 = ce(logits, labels)
    out["no_shift"] = per0.sum() / mask0.sum().clamp(min=1)
    per1, mask1 = ce(logits[:, 1:], labels[:, :-1])
    out["wrong_shift"] = per1.sum() / mask1.sum().clamp(min=1)
    unmasked = labels.clamp(min=0)  # -100 replaced by token 0: the masked positions are trained too
    per2, _ = ce(logits[:, :-1], unmasked[:, 1:])
    out["ignored_nothing"] = per2.mean()
    out["counted_before_shift"] = per.sum() / (labels != -100).sum().clamp(min=1)
    picked = logits[:, :-1].gather(-1, labels[:, 1:].clamp(min=0).unsqueeze(-1)).squeeze(-1)
    out["nll_of_raw_logits"] = -(picked * mask).sum() / n.clamp(min=1)  # F.nll_loss(logits, ...): no log_softmax
    for half in (torch.float16, torch.bfloat16):  # the logits cast to half precision before the softmax
        lg = logits[:, :-1].to(half)
        total = F.cross_entropy(lg.reshape(-1, vocab), labels[:, 1:].reshape(-1), ignore_index=-100, reduction="sum")
        out[f"softmax_in_{str(half).removeprefix('torch.')}"] = total.float() / n.clamp(min=1)
    return out


_LOSS_MISTAKES = (
    ("no_shift", "you did not shift labels: the logits at position t predict token t+1",
     "compare logits[:, :-1] with labels[:, 1:]"),
    ("wrong_shift", "you shifted the wrong way round (logits[:, 1:] against labels[:, :-1])",
     "drop the LAST logit and the FIRST label: logits[:, :-1] vs labels[:, 1:]"),
    ("masked_in_mean", "you averaged over masked tokens too (divided by every position, not just the trained ones)",
     "divide the summed loss by the number of labels != -100 (cross_entropy(..., ignore_index=-100) does this)"),
    ("ignored_nothing", "you trained the masked positions as well (the -100 labels were turned into real tokens)",
     "pass ignore_index=-100 to cross_entropy and leave the labels as they are"),
    ("sum", "you summed the per-token losses instead of averaging them",
     "divide by the number of trained tokens (labels != -100)"),
    ("mean_of_row_means_skipping_empty", "you averaged per-row means: a short reply then weighs as much as a long one",
     "average over all trained tokens of the batch at once, not row by row"),
    ("counted_before_shift", "you counted the trained tokens before shifting: a trained labels[:, 0] is never "
     "predicted, yet it counts in your denominator", "count the shifted labels: (labels[:, 1:] != -100).sum()"),
    ("nll_of_raw_logits", "you gave raw logits to nll_loss: it expects log-probabilities, so no softmax normalises "
     "the scores", "use F.cross_entropy on the logits (it applies log_softmax), or F.nll_loss(F.log_softmax(...))"),
)
# A loss computed from logits cast to half precision: named when it lies this close to that candidate (a share of the
# candidate's own distance to the float32 loss; the student's order of operations rounds a little differently).
_HALF_MATCH = 0.35
_HALF_FIX = ("compute the loss in float32: logits[:, :-1].float() before cross_entropy / log_softmax (TRL upcasts "
             "the logits too); no .half() or .to(torch.float16)")


def _scalar(value) -> float:
    import torch

    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TodoCheckError(f"your loss has shape {tuple(value.shape)}, not a single number. Fix: reduce it to a "
                                 "scalar: the mean over trained tokens")
        return float(value.detach())
    return float(value)


def _student_scalar(value) -> float:
    """The student's loss as a float; a missing return or something that is not a number fails the check."""
    import torch

    require(value is not None, "masked_lm_loss returned None: the function has no `return`",
            "end it with `return total / n_trained.clamp(min=1)` (a scalar tensor)")
    require(isinstance(value, (torch.Tensor, int, float)) and not isinstance(value, bool),
            f"masked_lm_loss returned a {type(value).__name__}, not a scalar tensor", "return the loss tensor itself")
    return _scalar(value)


def _diagnose_loss(got: float, candidates: dict[str, object], context: str, rtol: float = 1e-4) -> None:
    """Raise :class:`TodoCheckError` naming the mistake whose loss ``got`` matches (within ``rtol``), else the recipe."""
    import math

    want = float(candidates["reference"])
    if math.isnan(got) and not math.isnan(want):
        if math.isnan(float(candidates["mean_of_row_means"])):
            require(False, f"{context}: your loss is NaN because one row has no trained token and you averaged per-row "
                    "means (0/0 for that row)", "average over all trained tokens of the batch at once")
        require(False, f"{context}: your loss is NaN, expected {want:.6f}",
                "check for a division by a zero token count")
    for key, problem, fix in _LOSS_MISTAKES:
        value = float(candidates[key])
        if math.isfinite(value) and not math.isclose(value, want, rel_tol=2 * rtol, abs_tol=1e-6) \
                and math.isclose(got, value, rel_tol=rtol, abs_tol=1e-6):
            require(False, f"{context}: your loss is {got:.6f}, expected {want:.6f}: {problem}", fix)
    for half in ("float16", "bfloat16"):
        value = float(candidates.get(f"softmax_in_{half}", math.nan))
        off = abs(value - want)
        if math.isfinite(value) and off > 2 * rtol * abs(want) and abs(got - value) <= _HALF_MATCH * off + 1e-6:
            require(False, f"{context}: your loss is {got:.6f}, expected {want:.6f}: off by "
                    f"{abs(got - want) / abs(want):.1e} relative, the size of half-precision rounding: you computed "
                    f"the softmax on {half} logits ({half} keeps steps of {_half_step(half)} between 32 and 64, where "
                    "LM logits often lie)", _HALF_FIX)
    require(False, f"{context}: your loss is {got:.6f}, expected {want:.6f}",
            "shift by one (logits[:, :-1] vs labels[:, 1:]), flatten, cross_entropy with ignore_index=-100, "
            "mean over the trained tokens")


def _half_step(dtype_name: str) -> str:
    """The spacing of ``dtype_name`` numbers between 32 and 64, as a fraction for a message.

    >>> _half_step("float16"), _half_step("bfloat16")
    ('1/32', '1/4')
    """
    return {"float16": "1/32", "bfloat16": "1/4"}[dtype_name]


def _toy_batches() -> list[tuple[str, object, object]]:
    """(description, logits, labels) toy cases: unequal trained counts, a fully masked row, an all-masked batch."""
    import torch

    g = torch.Generator().manual_seed(0)
    # around 40, as a real LM head's logits (tens): the loss does not change (softmax ignores an offset), but between
    # 32 and 64 float16 / bfloat16 keep steps of 1/32 / 1/4 only, so a loss computed in half precision is visibly off
    logits = torch.randn(3, 7, 11, generator=g) + 40.0
    labels = torch.randint(0, 11, (3, 7), generator=g)
    labels[0, :3] = -100  # prompt of row 0
    labels[1, :6] = -100  # row 1 trains a single token
    labels[2, :] = -100  # row 2 is fully masked (e.g. its reply was truncated away)
    first = torch.randint(0, 11, (3, 7), generator=g)  # labels[:, 0] vs labels[:, -1]: makes a missing shift visible
    unequal = labels.clone()
    unequal[0, 0] = first[0, 0]
    return [
        ("toy batch (3 rows: 4, 1 and 0 trained tokens)", logits, labels),
        ("toy batch with a trained first position", logits, unequal),
        ("toy batch with no trained token at all", logits[:1], torch.full((1, 7), -100)),
    ]


def loss_tolerance(dtype) -> tuple[float, float]:
    """(atol, rtol) for comparing a loss computed from logits of ``dtype`` with TRL's float32 loss.

    float32: 1e-5 each (TRL's fused LM head leaves a few 1e-6 of rounding). bfloat16 / float16: rtol = 2 x the dtype's
    epsilon (1.6e-2 / 2.0e-3): a cross-entropy computed in half precision rounds the log-softmax and the result to
    the dtype, up to about one epsilon relative (measured: 0.98 eps on random 49k-vocab logits).

    >>> import torch
    >>> loss_tolerance(torch.float32), loss_tolerance(torch.bfloat16), loss_tolerance(torch.float16)
    ((1e-05, 1e-05), (1e-05, 0.015625), (1e-05, 0.001953125))
    """
    import torch

    if dtype in (torch.bfloat16, torch.float16):
        return 1e-5, 2 * torch.finfo(dtype).eps
    return 1e-5, 1e-5


# (words of the error the student's code raised, the mistake, the fix)
_ERROR_MISTAKES = (
    ("Expected target size", "you did not flatten: cross_entropy takes (N, vocab) logits with (N,) labels",
     "logits[:, :-1].reshape(-1, logits.size(-1)) with labels[:, 1:].reshape(-1)"),
    ("to match target batch_size", "you did not flatten both: cross_entropy takes (N, vocab) logits with (N,) labels",
     "flatten the labels too: labels[:, 1:].reshape(-1), as the logits: logits[:, :-1].reshape(-1, logits.size(-1))"),
    ("same device", "your function mixes devices: a tensor it creates is on the CPU while the logits are not",
     "create tensors where the logits are: torch.zeros((), device=logits.device) or logits.new_zeros(())"),
    ("view size is not compatible", "logits[:, :-1] is a slice: .view cannot flatten it (its rows are not one block "
     "of memory)", "use .reshape(-1, vocab) (or .contiguous().view(-1, vocab))"),
)
_LOOKUP_FAILED = ("out of bounds", "Target -100", "index -100")


def _ignore_index_used(masked_lm_loss, logits, labels) -> int | None:
    """The ignore_index a function that fails on -100 labels uses instead (-1 or 0), found by running it on labels
    whose -100 are replaced by that value and comparing with the loss that ignores them; ``None`` when neither fits."""
    import math

    import torch
    import torch.nn.functional as F

    if labels.device.type != "cpu":
        return None  # on CUDA a probe that looks up an out-of-range id would kill the kernel (device-side assert)
    vocab = logits.size(-1)
    for fill in (-1, 0):
        probe = labels.masked_fill(labels == -100, fill)
        try:
            with torch.no_grad():
                got = float(masked_lm_loss(logits.clone(), probe))
        except Exception:  # noqa: BLE001  (a probe only: the original error is what gets reported)
            continue
        shifted = probe[:, 1:]
        total = F.cross_entropy(logits[:, :-1].float().reshape(-1, vocab), shifted.reshape(-1), ignore_index=fill,
                                reduction="sum")
        want = float(total / (shifted != fill).sum().clamp(min=1))
        if math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-6):
            return fill
    return None


def _run_student(masked_lm_loss, logits, labels, what: str):
    """``masked_lm_loss(logits, labels)``; an error it raises fails the check with the mistake it shows and a fix.

    A ``NotImplementedError`` other than the TODO's (a missing kernel for the device) is raised as it is.
    """
    from labhelpers.checks.core import _student_line

    try:
        return masked_lm_loss(logits, labels)
    except (TodoCheckError, NotImplementedError):
        raise
    except Exception as err:  # noqa: BLE001  (whatever the student's code raises is named, not shown as a traceback)
        said = f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0][:200]}"
        raised = f"{what}: masked_lm_loss raised {said}{_student_line(err)}"
        for words, problem, fix in _ERROR_MISTAKES:
            require(words not in str(err), f"{raised}: {problem}", fix)
        if any(words in str(err) for words in _LOOKUP_FAILED):
            fill = _ignore_index_used(masked_lm_loss, logits.detach(), labels)
            require(fill is None, f"{raised}: you passed ignore_index={fill}: the masked labels are -100 (TRL's "
                    "collator writes -100), so cross_entropy looked them up as token ids",
                    "ignore_index=-100, cross_entropy's default: write it or leave it out")
            require(False, f"{raised}: looking up the -100 labels as token ids failed",
                    "skip them: cross_entropy(..., ignore_index=-100), or mask labels != -100 before gathering "
                    "log-probabilities")
        require(False, raised, "run masked_lm_loss(logits, labels) in a cell of its own to see the whole traceback, "
                "fix that line, then this check")


@student_code("masked_lm_loss")
def check_masked_lm_loss(masked_lm_loss, logits=None, labels=None, trainer_loss=None, atol: float | None = None,
                         rtol: float | None = None) -> None:
    """Test ``masked_lm_loss(logits, labels)`` on toy tensors, then (if given) against SFTTrainer's loss on a real batch.

    The toy batches are float32, on the CPU, then also on ``logits.device`` when a real batch on another device is
    given (a tensor the function creates on the wrong device shows there). The real comparison passes when
    ``|yours - trainer's| <= atol + rtol * |trainer's|`` (torch.isclose's rule), with :func:`loss_tolerance` for the
    logits' dtype unless ``atol`` / ``rtol`` are given; the message states the tolerance used.

    >>> import torch.nn.functional as F
    >>> def good(logits, labels):
    ...     s = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100, reduction="sum")
    ...     return s / (labels[:, 1:] != -100).sum().clamp(min=1)
    >>> check_masked_lm_loss(good)
    ✓ masked_lm_loss is right on 3 toy batches (shifted, -100 ignored, mean over trained tokens, 0 when nothing is trained)
    >>> check_masked_lm_loss(lambda lg, lb: F.cross_entropy(lg.flatten(0, 1), lb.flatten(), ignore_index=-100))
    Traceback (most recent call last):
    ...
    labhelpers.checks.TodoCheckError: toy batch (3 rows: 4, 1 and 0 trained tokens): your loss is 2.497339, expected 2.648923: you did not shift labels: the logits at position t predict token t+1. Fix: compare logits[:, :-1] with labels[:, 1:]
    """
    import math

    import torch

    cpu = torch.device("cpu")
    devices = [cpu]  # first on the CPU: a -100 looked up as a token id is an IndexError there, a dead kernel on CUDA
    if isinstance(logits, torch.Tensor) and logits.device != cpu:
        devices.append(logits.device)  # then where the real batch lives: a tensor created on the CPU shows up
    for device, (what, lg, lb) in ((d, toy) for d in devices for toy in _toy_batches()):
        what = what if device == cpu else f"{what} on {device}"
        lg, lb = lg.to(device), lb.to(device)
        lb_before = lb.clone()
        lg_in = lg.clone().requires_grad_(True)
        out = _run_student(masked_lm_loss, lg_in, lb, what)
        require(torch.equal(lb, lb_before), f"{what}: your function changed the labels tensor in place",
                "work on a copy (labels[:, 1:] is a view: do not assign into it)")
        got = _student_scalar(out)
        cands = _loss_candidates(lg, lb)
        want = float(cands["reference"])
        if "no trained token" in what:
            require(not math.isnan(got), f"{what}: your loss is NaN (0 trained tokens / 0): one such batch poisons "
                    "every weight through the optimizer (trl #1053)",
                    "divide by the trained-token count clamped to at least 1, e.g. n.clamp(min=1), "
                    "so the loss is 0 as in TRL")
        if not math.isclose(got, want, rel_tol=1e-5, abs_tol=1e-6):
            _diagnose_loss(got, cands, what)
        if "no trained token" not in what:
            require(isinstance(out, torch.Tensor), f"{what}: masked_lm_loss returned a {type(out).__name__}, not a "
                    "tensor, so your loss does not carry a gradient back to the logits (loss.backward() needs it)",
                    "return the tensor itself: no .item(), float() or int() on the way")
            require(out.requires_grad,
                    f"{what}: your loss does not carry a gradient back to the logits",
                    "build it from torch operations on logits (no .item(), .detach() or float())")
    if logits is None:
        passed("masked_lm_loss is right on 3 toy batches (shifted, -100 ignored, mean over trained tokens, "
               "0 when nothing is trained)")
        return
    default_atol, default_rtol = loss_tolerance(logits.dtype)
    atol = default_atol if atol is None else atol
    rtol = default_rtol if rtol is None else rtol
    labels = labels.to(logits.device)
    with torch.no_grad():
        got = _student_scalar(_run_student(masked_lm_loss, logits, labels, "real batch"))
    want = _scalar(trainer_loss)
    diff = abs(got - want)
    dtype = str(logits.dtype).removeprefix("torch.")
    tolerance = f"tolerance {atol:.0e} + {rtol:.1e} x |loss| for {dtype} logits"
    if diff > atol + rtol * abs(want):
        cands = _loss_candidates(logits, labels)
        cands["reference"] = torch.tensor(want, device=logits.device)
        _diagnose_loss(got, cands, f"real batch vs SFTTrainer ({tolerance})", rtol=max(rtol, 1e-4))
    n = int((labels[:, 1:] != -100).sum())
    passed(f"masked_lm_loss passes 3 toy batches and equals SFTTrainer's loss on the real batch: "
           f"{got:.6f} vs {want:.6f} (|diff| {diff:.1e}, {tolerance}; {n} trained tokens)")
