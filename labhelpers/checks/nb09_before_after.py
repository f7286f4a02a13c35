"""TODO checks of notebook 09 (before and after): the behaviour scores (the shares, and the house-format verdict on
near-miss replies, so a hand-written classifier is told which rule it misses), and the optional teacher-forced reply
loss against the usual mistakes."""

from __future__ import annotations

import math
from typing import Any

from labhelpers.checks.core import TodoCheckError, call_student, passed, require, student_code


_GOOD = "Answer: Paris is the capital.\n- It is on the Seine.\n- It has the Louvre.\n- It is old.\nConfidence: high"
# Near misses for a hand-written house-format classifier: (reply, follows the house format, the rule it probes).
FORMAT_PROBES: tuple[tuple[str, bool, str], ...] = (
    (_GOOD, True, "this reply is the house format exactly"),
    (_GOOD.replace("high", "low"), True, "low is one of its three confidence levels (high, medium, low)"),
    ("\n  " + _GOOD + "\n\n", True, "whitespace around the reply does not count (follows_house_format strips it)"),
    ("Answer: Yes.\n- One.\n- Two.\nConfidence: medium", False, "it needs exactly three '- ' bullets (this one has two)"),
    ("Answer: Yes.\n- One.\n- Two.\n- Three.\n- Four.\nConfidence: medium", False,
     "it needs exactly three '- ' bullets (this one has four)"),
    ("answer: yes.\n- one.\n- two.\n- three.\nconfidence: medium", False,
     "case matters: 'Answer:' and 'Confidence:' are capitalised, as the data writes them"),
    ("Answer: Yes.\n- One.\n- Two.\n- Three.\nConfidence: very sure", False,
     "the confidence is one of high, medium, low"),
    (_GOOD + "\nHope this helps!", False, "nothing may follow the Confidence line (match the whole reply)"),
    ("Sure! " + _GOOD, False, "the reply must start with 'Answer:'"),
    ("Answer: Yes.\n* One.\n* Two.\n* Three.\nConfidence: high", False, "bullets are '- ' lines, not '* '"),
    ("Answer:\n- One.\n- Two.\n- Three.\nConfidence: high", False, "the Answer line needs text after 'Answer: '"),
    ("Answer: Yes.\n- One.\n- Two.\n- Three.", False, "a 'Confidence: ...' line must end the reply"),
    ("Answer: Paris is the capital.\n- It is on the Seine.\n- It has the Louvre.\n- It is on the Seine.\n"
     "Confidence: high", False, "each line must say something new: this one repeats a bullet, as small tuned models "
                                "often do (the layout is right, the reply is not)"),
    ("Answer: ...\n- One.\n- Two.\n- Three.\nConfidence: high", False,
     "every line must say something: 'Answer: ...' has no words"),
)

_SCORES_ERROR_FIXES = (
    ("ZeroDivisionError", "divide by len(outputs), the number of replies scored"),
    ("IndexError", "a reply may have fewer lines than your code expects: score each one with "
                   "follows_house_format(text) (labhelpers.measure.behaviour)"),
)


def _scores(behaviour_scores, outputs: list[str], hit: list[bool]) -> tuple[float, float]:
    """(format_rate, hit_limit_rate) of the student's function, as floats; a result of the wrong shape fails."""
    got = call_student(behaviour_scores, list(outputs), list(hit), name="behaviour_scores", hints=_SCORES_ERROR_FIXES)
    require(isinstance(got, dict) and {"format_rate", "hit_limit_rate"} <= set(got),
            f"behaviour_scores returned {str(got)[:100]!r}", 'return a dict with "format_rate" and "hit_limit_rate"')
    try:
        return float(got["format_rate"]), float(got["hit_limit_rate"])
    except (TypeError, ValueError):
        raise TodoCheckError(f"behaviour_scores returned {got!r}: the rates are not numbers. Fix: return the two "
                             "shares as floats between 0 and 1, e.g. 0.25") from None


def _rate_problem(key: str, got: float, count: int, n: int, counted: str,
                  also: tuple[tuple[float, str], ...] = ()) -> str | None:
    """What ``got`` is when it is not ``count / n``: "problem. Fix: fix", or None when it is right. ``also``: more
    (wrong value, "what it is. Fix: fix") pairs to recognise."""
    want = count / n
    if math.isclose(got, want, abs_tol=1e-6):
        return None
    said = f"{key} is {got:g} for {count} {counted} of {n} replies, expected {want:g}"
    for value, what in also:
        if math.isclose(got, value, abs_tol=1e-6):
            return f"{said}: {what}"
    if math.isclose(got, 100 * want, rel_tol=1e-6):
        return f"{said}: a percentage. Fix: return the fraction (count / number of outputs); the notebook formats it as a %"
    if math.isclose(got, count, rel_tol=1e-6):
        return f"{said}: the count itself. Fix: divide the count by the number of outputs"
    if math.isclose(got, (n - count) / n, abs_tol=1e-6):
        return (f"{said}: the share of the other replies. Fix: count the replies that "
                + ("follow the format" if key == "format_rate" else "hit the limit (the True flags)"))
    if got == 0 and count:
        return f"{said}. Fix: divide with / (a // rounds the share down to 0)"
    return f"{said}. Fix: count the {counted} replies and divide by the number of outputs"


@student_code("behaviour_scores")
def check_behaviour_scores(behaviour_scores: object) -> None:
    """Run the student's ``behaviour_scores(outputs, hit_limit)``: the hit-limit share on flags with known answers, the
    format verdict of each near-miss reply of :data:`FORMAT_PROBES` (one reply per call, so a hand-written classifier
    is told which rule it misses), then the format share of a mixed batch.
    """
    from labhelpers.measure.behaviour import follows_house_format

    plain = ["Just some text.", "Sure! Here you go.", "Paris.", "No idea.", "It depends."]
    hit = [True, False, False, False, False]
    fmt, hits = _scores(behaviour_scores, plain, hit)
    if math.isclose(fmt, 1 / 5, abs_tol=1e-6) and math.isclose(hits, 0.0, abs_tol=1e-6):
        raise TodoCheckError("format_rate is 0.2 and hit_limit_rate 0.0 for 5 free-text replies, one of them cut: "
                             "the two are swapped. Fix: format_rate from the outputs, hit_limit_rate from hit_limit")
    problem = _rate_problem("hit_limit_rate", hits, 1, 5, "cut (hit_limit True)")
    if problem:
        raise TodoCheckError(problem)
    require(math.isclose(fmt, 0.0, abs_tol=1e-6), f"format_rate is {fmt:g} for 5 free-text replies (none in the house "
            "format)", "count only the outputs for which follows_house_format(text) is True")
    verdicts = [(text, truth, why, _scores(behaviour_scores, [text], [False])[0] > 0)
                for text, truth, why in FORMAT_PROBES]
    wrong = [(text, truth, why) for text, truth, why, counted in verdicts if counted != truth]
    if wrong and len(wrong) == len(FORMAT_PROBES):
        raise TodoCheckError("your format_rate counts exactly the replies that are NOT in the house format. Fix: count "
                             "the outputs for which follows_house_format(text) is True")
    if wrong:
        text, truth, why = wrong[0]
        verdict = "does not count" if truth else "counts"
        raise TodoCheckError(
            f"your format_rate {verdict} {text!r} as the house format, but it {'is' if truth else 'is not'}: {why}"
            + (f" ({len(wrong)} of {len(FORMAT_PROBES)} near-miss replies are judged wrong)" if len(wrong) > 1 else "")
            + ". Fix: judge each reply with follows_house_format(text) from labhelpers.measure.behaviour (it checks every "
            "rule of the format), not a check of your own")
    mixed = [_GOOD, "Just some text.", _GOOD, FORMAT_PROBES[2][0], "Answer: Yes.\n- One.\n- Two.\nConfidence: low"]
    cut = [True, False, False, True, False]
    fmt, hits = _scores(behaviour_scores, mixed, cut)
    finished = [text for text, flag in zip(mixed, cut) if not flag]
    problem = _rate_problem("format_rate", fmt, sum(map(follows_house_format, mixed)), 5, "house-format", also=(
        (sum(map(follows_house_format, finished)) / len(finished),
         "the share among the replies that were not cut. Fix: divide by the number of all outputs; a cut reply that "
         "misses the format is part of what the rate measures"),))
    if problem:
        raise TodoCheckError(problem)
    passed(f"behaviour_scores gives the format and hit-limit shares (fractions), and judges all {len(FORMAT_PROBES)} "
           "near-miss replies as follows_house_format does")


REPLY_LOSS_CHECK_PAIRS = (
    ("Name a colour.", "Blue."),
    ("What is the capital of France?", "Answer: Paris is the capital of France.\n- It is on the Seine.\n"
                                       "- It has about two million inhabitants.\n- It hosts the Louvre.\nConfidence: high"),
)


def _reply_loss_variants(model, tokenizer, prompt: str, reply: str) -> dict[str, Any]:
    """The right teacher-forced reply loss and the usual wrong ones, in nats per token (fp32 on the model's device);
    a value that needs a forward of its own is a function computing it."""
    import torch
    import torch.nn.functional as F

    from labhelpers.model.attention import model_autocast
    from labhelpers.run.generation import reply_token_span

    full, start, end = reply_token_span(tokenizer, prompt, reply)  # ids[start:end]: the reply and its <|im_end|>
    user = [{"role": "user", "content": prompt}]
    header = len(tokenizer.apply_chat_template(user, tokenize=True, return_dict=True)["input_ids"])  # no gen. prompt
    # a hand-written ChatML string without the system turn the template adds
    bare_head = f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"
    bare_start = len(tokenizer(bare_head, add_special_tokens=False)["input_ids"])
    bare = tokenizer(bare_head + reply + "<|im_end|>", add_special_tokens=False)["input_ids"]

    def nll_of(token_ids: list[int]):
        ids = torch.tensor([token_ids], device=model.device)
        with torch.no_grad(), model_autocast(model):
            logits = model(input_ids=ids).logits[0].float()
        return (F.cross_entropy(logits[:-1], ids[0, 1:], reduction="none"),  # [t - 1]: token t given tokens < t
                F.cross_entropy(logits, ids[0], reduction="none"))

    nll, unshifted = nll_of(full)
    right = float(nll[start - 1:end - 1].mean())
    return {"right": right,
            "prompt tokens included": float(nll[:end - 1].mean()),
            "whole chat": float(nll.mean()),
            "header included": float(nll[header - 1:end - 1].mean()),
            "<|im_end|> left out": float(nll[start - 1:end - 2].mean()),
            "newline after <|im_end|> included": float(nll[start - 1:end].mean()),
            "first reply token left out": float(nll[start:end - 1].mean()),
            "not shifted": float(unshifted[start:end].mean()),
            "summed, not averaged": float(nll[start - 1:end - 1].sum()),
            "perplexity": math.exp(right),
            "log-likelihood": -right,
            # its own forward, run only when a wrong answer is matched (a callable): a right answer does not pay for it
            "no system turn": lambda: float(nll_of(bare)[0][bare_start - 1:len(bare) - 1].mean())}


# variant -> (what the student's number is, the fix); the names appear in the message
_REPLY_LOSS_MISTAKES = {
    "prompt tokens included": ("that is the value with the prompt tokens included (system, user and header scored too)",
                               "average only over the reply's tokens: positions from len(prompt ids) on"),
    "whole chat": ("that is the loss of the whole chat, as labels=input_ids gives it: the prompt tokens included and "
                   "the newline after <|im_end|> too",
                   "set the label of every prompt position to -100 (labels[:, :len(prompt ids)] = -100) and drop what "
                   "follows the reply's <|im_end|>; then model(input_ids=ids, labels=labels).loss is the reply loss"),
    "header included": ("that is the value with the assistant header <|im_start|>assistant\\n included: the template "
                        "writes it, not the model",
                        "tokenize the prompt with add_generation_prompt=True; the reply starts after its length"),
    "<|im_end|> left out": ("that is the value with the <|im_end|> left out",
                            "the <|im_end|> that ends the reply is part of it (the model must learn to stop): "
                            "include it"),
    "newline after <|im_end|> included": ("that is the value with the newline after <|im_end|> included",
                                          "stop at the reply's <|im_end|>: the newline after it is the template's"),
    "first reply token left out": ("that is the value with the reply's first token left out (an off-by-one in "
                                   "the slice)",
                                   "token t is scored by logits[t - 1]: for a reply starting at position s, use "
                                   "logits[s - 1:end - 1] against ids[s:end]"),
    "not shifted": ("that is the value not shifted: each token scored by its own position's logits",
                    "logits[t - 1] predicts token t: compare logits[:-1] with the ids shifted by one (ids[1:])"),
    "summed, not averaged": ("that is the value summed, not averaged",
                             "divide by the number of reply tokens: the loss is per token (nats/token)"),
    "perplexity": ("that is the perplexity, exp(loss)", "return the mean negative log-likelihood itself, not its exp"),
    "log-likelihood": ("that is the mean log-likelihood: the sign is flipped",
                       "return the negative log-likelihood (cross_entropy gives it), a positive number"),
    "no system turn": ("that is the value for a prompt without the system turn the chat template adds (a hand-written "
                       "ChatML string)",
                       "render the conversation with tokenizer.apply_chat_template, so the prompt is what the model "
                       "sees in training and generation"),
}

_REPLY_LOSS_ERROR_FIXES = (
    ("Tensor.index()", "a tensor's index() is not a list's: find the token in ids.tolist() (a list of ints) or with "
                       "(ids == token_id).nonzero()"),
    ("same device", "move the ids to the model's device: torch.tensor([ids], device=model.device)"),
    ("is not in list", "look for the <|im_end|> id (tokenizer.convert_tokens_to_ids('<|im_end|>')) after the prompt's "
                       "tokens"),
    ("Expected input batch_size", "give cross_entropy logits of shape (tokens, vocab) and targets of shape (tokens,), "
                                  "the same number of positions"),
)


@student_code("reply_loss")
def check_reply_loss(reply_loss, model, tokenizer) -> None:
    """The optional harder TODO of 09: ``reply_loss(model, tokenizer, prompt, reply)`` is the teacher-forced mean NLL
    of the reply's tokens and its ``<|im_end|>`` after the chat-templated prompt, as ``labhelpers.run.generation.
    reply_nll`` computes it; a wrong value is matched against the usual mistakes. Tolerance follows the dtype.
    """
    import torch

    rtol = 1e-4
    for prompt, reply in REPLY_LOSS_CHECK_PAIRS:
        # first: an unfilled TODO is named before anything else
        got = call_student(reply_loss, model, tokenizer, prompt, reply, name="reply_loss",
                           hints=_REPLY_LOSS_ERROR_FIXES)
        try:
            got = float(got.item() if hasattr(got, "item") else got)
        except (TypeError, ValueError, RuntimeError):
            raise TodoCheckError(f"reply_loss returned {str(got)[:80]!r}, not one number. Fix: return the mean loss "
                                 "as a float (loss.item())") from None
        rtol = 1e-4 if next(model.parameters()).dtype == torch.float32 else 2e-2  # half precision rounds logits
        variants = _reply_loss_variants(model, tokenizer, prompt, reply)
        if math.isclose(got, variants["right"], rel_tol=rtol, abs_tol=1e-5):
            continue
        match = next((name for name in _REPLY_LOSS_MISTAKES
                      if math.isclose(got, variants[name]() if callable(variants[name]) else variants[name],
                                      rel_tol=rtol, abs_tol=1e-5)), None)
        reason, fix = _REPLY_LOSS_MISTAKES[match] if match else (
            "it matches none of the usual mistakes", "score the reply's tokens and its <|im_end|>, each from the "
            "logits one position earlier, and average")
        raise TodoCheckError(f"the reply {reply[:30]!r} after {prompt!r}: your loss {got:.4f}, expected "
                             f"{variants['right']:.4f} nats/token; {reason}. Fix: {fix}")
    passed(f"your reply loss equals the teacher-forced reply NLL on {len(REPLY_LOSS_CHECK_PAIRS)} replies "
           f"(within {rtol:g})")
