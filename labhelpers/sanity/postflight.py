"""Postflight: generate from the tuned model and look for runaway, empty or degenerate replies and the house format."""

from __future__ import annotations

from typing import Any, Sequence

from labhelpers.measure.behaviour import data_teaches_house_format, house_format_rate, is_degenerate, repeats_itself
from labhelpers.measure.compare import new_token_counts
from labhelpers.run.generation import generate_replies
from labhelpers.sanity.config import generation_findings
from labhelpers.sanity.tokens import end_of_turn_id
from labhelpers.model.loading import has_random_weights
from labhelpers.sanity.report import Finding, SanityReport

RANDOM_WEIGHTS_SKIP = "skipped: random weights (GPU rehearsal), quality not measurable"


def skipped_for_random_weights(finding: Finding) -> Finding:
    """The finding as a visible skip (a warn, never a silent pass) because the model's weights are random.

    >>> skipped_for_random_weights(Finding("house_format", "fail", "house format 0% of replies", "x")).message
    'skipped: random weights (GPU rehearsal), quality not measurable (measured: house format 0% of replies)'
    """
    if finding.message.startswith(RANDOM_WEIGHTS_SKIP):  # already skipped (postflight inside the protocol)
        return finding
    return Finding(finding.check, "warn", f"{RANDOM_WEIGHTS_SKIP} (measured: {finding.message})",
                   "run on trained weights (not a RANDOM_WEIGHTS model folder) to judge this")


def postflight(model: Any, tokenizer: Any, prompts: Sequence[Any], base_outputs: Sequence[str] | None = None,
               max_new_tokens: int = 64, base_hit_max: Sequence[bool] | None = None,
               replies: tuple[Sequence[str], Sequence[bool]] | None = None, train_rows: Any = None,
               reference_replies: Sequence[str] | None = None) -> SanityReport:
    """Report runaway (hit max_new_tokens), empty, looping and self-repeating replies and house format for ``prompts``.

    The replies are generated here unless ``replies`` passes ``(texts, hit_max)`` that :func:`generate_replies`
    already made for these prompts with this ``max_new_tokens``. ``train_rows``: the training rows, to count the
    prompts (and ``reference_replies``) they already hold (``heldout_overlap``: a score on seen prompts measures
    memory). ``reference_replies``: the data's replies to ``prompts``; when they do not use the house format, no
    house-format finding is given (its 0% would mean nothing). ``base_hit_max`` is exact when it comes from
    the base's own generation (``generate_replies`` or a saved record's ``hit_limit``); without it the base
    replies are re-tokenized (:func:`labhelpers.measure.compare.new_token_counts`), as saved records are.
    """
    if not prompts:
        raise ValueError("postflight needs at least one prompt; pass e.g. 8 held-out user messages")
    texts, hit = replies if replies is not None else generate_replies(model, tokenizer, prompts, max_new_tokens)
    if len(texts) != len(prompts) or len(hit) != len(prompts):
        raise ValueError(f"replies hold {len(texts)} texts and {len(hit)} hit_max flags for {len(prompts)} prompts; "
                         "pass generate_replies(model, tokenizer, prompts, max_new_tokens) for the same prompts")
    texts, hit = list(texts), [bool(h) for h in hit]
    n = len(texts)
    report = SanityReport(title="postflight")
    report.extras.update(outputs=texts, hit_max=hit)
    hit_share = sum(hit) / n
    base_hit = None
    if base_outputs is not None:
        if base_hit_max is None:
            base_hit_max = [n >= max_new_tokens for n in new_token_counts(base_outputs, tokenizer)]
        base_hit = sum(base_hit_max) / max(1, len(base_hit_max))
    worse = base_hit is not None and hit_share > base_hit + 0.2
    # Runaway replies are a fail when training made them worse, or when there is no base to compare with.
    # When the base model already ran away as often, fine-tuning has not fixed it yet (a short run) — a warn:
    # after a full run, read it as "the stop token was not learned".
    unchanged = base_hit is not None and not worse
    status = "fail" if worse or (hit_share >= 0.5 and not unchanged) else "warn" if hit_share > 0.2 else "pass"
    report.extend([Finding("hit_max_new_tokens", status,
                           f"{hit_share:.0%} of {n} replies ran to max_new_tokens={max_new_tokens} without a stop token"
                           + (f" (base {base_hit:.0%})" if base_hit is not None else ""),
                           "the stop token was not learned: check preflight's stop_token_trained and truncation, and "
                           "generation_config.eos_token_id" if status != "pass" else "")])
    empty = sum(not t.strip() for t in texts)
    report.extend([Finding("empty_replies", "fail" if empty > n / 2 else "warn" if empty else "pass",
                           f"{empty} of {n} replies are empty",
                           "the model learned to stop at once: check labels (reply tokens trained?) and the template"
                           if empty else "")])
    loops = sum(is_degenerate(t) for t in texts)
    report.extend([Finding("degenerate_replies", "fail" if loops > n / 2 else "warn" if loops else "pass",
                           f"{loops} of {n} replies loop (≥ half their 4-grams repeat)",
                           "lower the LR or train fewer steps (collapse), and check the stop token" if loops else "")])
    repeating = sum(repeats_itself(t) for t in texts)
    base_repeating = sum(map(repeats_itself, base_outputs)) if base_outputs is not None else None
    report.extend([Finding("repeated_lines", "warn" if repeating else "pass",
                           f"{repeating} of {n} replies repeat a line (two lines say the same thing)"
                           + (f" (base {base_repeating} of {len(base_outputs)})" if base_outputs is not None else ""),
                           "the model learned the layout, not the content: a short run repeats itself; train longer "
                           "(more steps or epochs) and compare, lower the LR if it grew with training. These replies "
                           "do not count as the house format" if repeating else "")])
    overlap = None
    if train_rows is not None:
        from labhelpers.sanity.dataset import heldout_overlap

        overlap = heldout_overlap(list(prompts), train_rows, reference_replies)
        report.extend([overlap.finding()])
    if reference_replies is None or data_teaches_house_format(reference_replies):
        rate = house_format_rate(texts)
        base_rate = house_format_rate(base_outputs) if base_outputs is not None else None
        msg = f"house format {rate:.0%} of replies" + (f" (base {base_rate:.0%})" if base_rate is not None else "")
        if overlap is not None and overlap.seen:
            msg += f" ({overlap.share:.0%} of the prompts or replies seen in training)"
        worse = base_rate is not None and rate < base_rate
        report.extend([Finding("house_format", "warn" if worse else "pass", msg,
                               "tuning made the target format rarer: check data and LR" if worse else "")])
    if has_random_weights(model):  # every finding above judges reply quality: noise from random weights
        report.findings = [skipped_for_random_weights(f) for f in report.findings]
    if tokenizer is not None and getattr(model, "generation_config", None) is not None:
        # the settings these replies were generated with (generate_replies: greedy, the model's own stop token)
        report.extend(generation_findings(model.generation_config, end_of_turn_id(tokenizer), tokenizer.eos_token,
                                          do_sample=False))
    return report
