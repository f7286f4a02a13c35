"""TODO checks of notebook 09 (before and after): the behaviour scores of toy replies, and the optional
teacher-forced reply loss against the usual mistakes."""

from __future__ import annotations

import math

from labhelpers.checks.core import TodoCheckError, passed, require, student_code


@student_code("behaviour_scores")
def check_behaviour_scores(behaviour_scores: object) -> None:
    """Run the student's ``behaviour_scores(outputs, hit_limit)`` on toy replies with known answers."""
    good = "Answer: yes\n- a\n- b\n- c\nConfidence: high"
    cases = [
        (([good, "just text"], [False, True]), {"format_rate": 0.5, "hit_limit_rate": 0.5}),
        (([good, good, good, "Answer: x"], [False, False, False, False]), {"format_rate": 0.75, "hit_limit_rate": 0.0}),
    ]
    for (outputs, hit), want in cases:
        got = behaviour_scores(outputs, hit)
        require(isinstance(got, dict) and set(want) <= set(got),
                f"behaviour_scores returned {got!r}", 'return a dict with "format_rate" and "hit_limit_rate"')
        for key, value in want.items():
            require(abs(float(got[key]) - value) < 1e-9,
                    f"{key} is {got[key]!r} for {len(outputs)} outputs, expected {value}",
                    "divide the count by the number of outputs (a fraction, not a percentage)")
    passed("behaviour_scores gives the format and hit-limit shares")


REPLY_LOSS_CHECK_PAIRS = (
    ("Name a colour.", "Blue."),
    ("What is the capital of France?", "Answer: Paris is the capital of France.\n- It is on the Seine.\n"
                                       "- It has about two million inhabitants.\n- It hosts the Louvre.\nConfidence: high"),
)


def _reply_loss_variants(model, tokenizer, prompt: str, reply: str) -> dict[str, float]:
    """The right teacher-forced reply loss and the usual wrong ones, in nats per token (fp32 on the model's device)."""
    import torch
    import torch.nn.functional as F

    from labhelpers.generation import reply_token_span

    full, start, end = reply_token_span(tokenizer, prompt, reply)  # ids[start:end]: the reply and its <|im_end|>
    ids = torch.tensor([full], device=model.device)
    from labhelpers.attention import model_autocast

    with torch.no_grad(), model_autocast(model):
        logits = model(input_ids=ids).logits[0].float()
    nll = F.cross_entropy(logits[:-1], ids[0, 1:], reduction="none")  # nll[t - 1]: token t given tokens < t
    unshifted = F.cross_entropy(logits, ids[0], reduction="none")

    def mean(values) -> float:
        return float(values.mean())

    return {"right": mean(nll[start - 1:end - 1]),
            "prompt tokens included": mean(nll[:end - 1]),
            "<|im_end|> left out": mean(nll[start - 1:end - 2]),
            "newline after <|im_end|> included": mean(nll[start - 1:end]),
            "not shifted": mean(unshifted[start:end]),
            "summed, not averaged": float(nll[start - 1:end - 1].sum())}


_REPLY_LOSS_FIXES = {
    "prompt tokens included": "average only over the reply's tokens: positions from len(prompt ids) on",
    "<|im_end|> left out": "the <|im_end|> that ends the reply is part of it (the model must learn to stop): include it",
    "newline after <|im_end|> included": "stop at the reply's <|im_end|>: the newline after it is the template's",
    "not shifted": "logits[t - 1] predicts token t: compare logits[:-1] with the ids shifted by one (ids[1:])",
    "summed, not averaged": "divide by the number of reply tokens: the loss is per token (nats/token)",
}


@student_code("reply_loss")
def check_reply_loss(reply_loss, model, tokenizer) -> None:
    """The optional harder TODO of 09: ``reply_loss(model, tokenizer, prompt, reply)`` is the teacher-forced mean NLL
    of the reply's tokens and its ``<|im_end|>`` after the chat-templated prompt, as ``labhelpers.generation.
    reply_nll`` computes it; a wrong value is matched against the usual mistakes. Tolerance follows the dtype.
    """
    import torch

    rtol = 1e-4
    for prompt, reply in REPLY_LOSS_CHECK_PAIRS:
        got = reply_loss(model, tokenizer, prompt, reply)  # first: an unfilled TODO is named before anything else
        got = float(got.item() if hasattr(got, "item") else got)
        rtol = 1e-4 if next(model.parameters()).dtype == torch.float32 else 2e-2  # half precision rounds logits
        variants = _reply_loss_variants(model, tokenizer, prompt, reply)
        if math.isclose(got, variants["right"], rel_tol=rtol, abs_tol=1e-5):
            continue
        match = next((name for name, value in variants.items() if name != "right"
                      and math.isclose(got, value, rel_tol=rtol, abs_tol=1e-5)), None)
        reason = (f"that is the value with the {match}" if match and match.endswith(("included", "left out"))
                  else f"that is the value {match}" if match else "it matches none of the usual mistakes")
        raise TodoCheckError(f"the reply {reply[:30]!r} after {prompt!r}: your loss {got:.4f}, expected "
                             f"{variants['right']:.4f} nats/token; {reason}. Fix: "
                             + (_REPLY_LOSS_FIXES[match] if match else "score the reply's tokens and its <|im_end|>, "
                                "each from the logits one position earlier, and average"))
    passed(f"your reply loss equals the teacher-forced reply NLL on {len(REPLY_LOSS_CHECK_PAIRS)} replies "
           f"(within {rtol:g})")
