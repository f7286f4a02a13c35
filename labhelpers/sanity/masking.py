"""Which tokens the loss trains, read from real collated batches: the prompt, the replies, the stop token, and
whether each label sits on the token it names (a shifted or mismatched collator); every fix fits what is already set.

    findings = masking_findings(examples, assistant_header(tok), end_of_turn_id(tok), tok.pad_token_id, [eos_id])
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from labhelpers.views.display import IGNORE_INDEX
from labhelpers.sanity.report import Finding
from labhelpers.sanity.tokens import assistant_mask, reply_ends

LABEL_MISMATCH_FAIL = 0.01  # share of trained positions whose label is not the input id there: above it, a fail


# ----------------------------------------------------------------------------------------- masking checks
@dataclass(frozen=True)
class LossSetup:
    """What decides which tokens train, as the user set it: the data's kind and the loss flags (for fixes that fit)."""

    kind: str | None = None  # "messages", "prompt-completion", "text" (pre-rendered) or None (unknown)
    assistant_only_loss: bool = False
    completion_only_loss: bool | None = None  # TRL's None: on for prompt/completion data


def _prompt_trained_fix(setup: LossSetup, collator: str | None) -> str:
    """The direct fix for prompt tokens in the loss, given what is already set.

    >>> _prompt_trained_fix(LossSetup("prompt-completion", completion_only_loss=False), None)
    'set completion_only_loss=True (or leave it unset: TRL then trains the completion only)'
    >>> _prompt_trained_fix(LossSetup("messages", assistant_only_loss=True), None).split(":")[0]
    'assistant_only_loss=True is already set, so the chat template marks too much as the reply'
    """
    if collator:
        return f"the custom data_collator {collator} must set labels=-100 outside assistant replies"
    if setup.kind == "text":
        return ("a pre-rendered `text` column trains every token: keep the `messages` column (or prompt/completion) "
                "so TRL can tell the reply from the prompt")
    if setup.kind == "prompt-completion":
        if setup.completion_only_loss is False:
            return "set completion_only_loss=True (or leave it unset: TRL then trains the completion only)"
        return ("completion_only_loss is on, so the completion column holds prompt text: put only the reply in "
                "`completion` and the conversation before it in `prompt`")
    if setup.kind == "messages":
        if not setup.assistant_only_loss:
            return ("set SFTConfig(assistant_only_loss=True) (the chat template needs {% generation %} markers, see "
                    "labhelpers.data.chat)")
        return ("assistant_only_loss=True is already set, so the chat template marks too much as the reply: its "
                "{% generation %} block must open after the assistant header and close after the end-of-turn token "
                "(see labhelpers.data.chat)")
    return ("train on replies only: a `messages` dataset with SFTConfig(assistant_only_loss=True) (needs "
            "{% generation %} markers, see labhelpers.data.chat); no pre-rendered `text` column; a custom collator must set "
            "labels=-100 outside assistant replies")


def _reply_masked_fix(setup: LossSetup) -> str:
    """The fix for assistant reply tokens left out of the loss, given the data's kind.

    >>> _reply_masked_fix(LossSetup("prompt-completion")).split(";")[0]
    'prompt/completion data trains only the last turn'
    """
    if setup.kind == "messages" and setup.assistant_only_loss:
        return ("the chat template's {% generation %} block misses part of each reply: it must cover every assistant "
                "turn up to its end-of-turn token (see labhelpers.data.chat); or max_length cuts the replies")
    if setup.kind == "messages":
        return "a custom collator or the labels column masks replies: keep labels on every assistant turn"
    return ("prompt/completion data trains only the last turn; use `messages` with assistant_only_loss=True to train "
            "every reply")


def masking_findings(examples: Sequence[tuple[list[int], list[int]]], header: Sequence[int], end_id: int,
                     pad_id: int | None = None, eos_ids: Sequence[int] = (), collator: str | None = None,
                     setup: LossSetup = LossSetup()) -> list[Finding]:
    """Prompt tokens trained, rows with nothing to learn, trained share per row, stop token trained.

    ``collator``: the name of a custom data collator (None: TRL's), for the fix of an untrained stop token; ``setup``:
    the data's kind and loss flags, so each fix is the direct one for what is already set.

    >>> ex = [([9, 1, 7, 0, 4, 2], [9, 1, 7, 0, 4, 2])]  # every token trained, prompt included
    >>> [(f.check, f.status) for f in masking_findings(ex, [1, 7], 2, eos_ids=[2])][:2]
    [('prompt_tokens_trained', 'fail'), ('zero_trainable_rows', 'pass')]
    """
    trained = trained_prompt = reply_tokens = reply_masked = 0
    ends = ends_trained = zero_rows = with_reply = 0
    shares: list[float] = []
    for ids, labels in examples:
        mask = assistant_mask(ids, header, end_id)
        with_reply += any(mask)
        row_trained = 0
        for pos, (m, tok, lab) in enumerate(zip(mask, ids, labels)):
            t = lab != IGNORE_INDEX
            row_trained += t
            # the one token the template writes right after an end-of-turn token ("\n" in ChatML) is neither prompt
            # nor reply: TRL's prompt/completion path trains it, and it teaches nothing the model generates
            after_end = pos > 0 and ids[pos - 1] == end_id
            trained_prompt += t and not m and not after_end
            if m and tok != end_id:
                reply_tokens += 1
                reply_masked += not t
        for pos in reply_ends(ids, header, end_id):
            ends += 1
            ends_trained += labels[pos] != IGNORE_INDEX
        trained += row_trained
        zero_rows += row_trained == 0
        shares.append(row_trained / max(1, len(ids)))
    n = len(examples)
    out = []
    if with_reply == 0:
        out.append(Finding("prompt_tokens_trained", "warn",
                           f"no assistant turn ({header} ids) found in {n} examples: cannot tell prompt from reply",
                           "use a ChatML chat model and a `messages` dataset so replies can be located"))
    else:
        share = trained_prompt / trained if trained else 0.0
        status = "fail" if share > 0.01 else "warn" if share > 0 else "pass"
        out.append(Finding(
            "prompt_tokens_trained", status,
            f"{share:.1%} of {trained} trained tokens are prompt/system/template tokens ({n} examples)",
            "" if status == "pass" else _prompt_trained_fix(setup, collator)))
    out.append(Finding(
        "zero_trainable_rows", "fail" if zero_rows else "pass",
        f"{zero_rows} of {n} examples have no trained token (their loss is NaN or 0)",
        "raise max_length or drop rows whose prompt fills max_length; check the collator's masking" if zero_rows else ""))
    median = statistics.median(shares) if shares else 0.0
    out.append(Finding(
        "trainable_share", "warn" if 0 < median < 0.02 else "pass",
        f"trained tokens per example: median {median:.1%}, min {min(shares, default=0):.1%}, max {max(shares, default=0):.1%}",
        "replies are a sliver of each row: shorten prompts or raise max_length" if 0 < median < 0.02 else ""))
    if reply_tokens and reply_masked / reply_tokens > 0.1 and trained:
        out.append(Finding("response_tokens_masked", "warn",
                           f"{reply_masked / reply_tokens:.0%} of assistant reply tokens are masked (not trained)",
                           _reply_masked_fix(setup)))
    untrained_ends = ends - ends_trained
    if eos_ids and end_id not in eos_ids:
        out.append(Finding("stop_token_trained", "fail",
                           f"end-of-turn id {end_id} is not in generation_config.eos_token_id {list(eos_ids)}: generate() won't stop",
                           f"set model.generation_config.eos_token_id = {end_id}"))
    elif ends == 0:
        out.append(Finding("stop_token_trained", "warn", "no complete reply with its end-of-turn token in the batches",
                           "raise max_length so replies end inside the window"))
    else:
        bad = untrained_ends > 0
        pad_note = " (pad == eos: a collator masking pad ids also masks the stop token)" if pad_id == end_id and bad else ""
        if not bad:
            fix = ""
        elif pad_id == end_id:
            fix = ("keep the label of the end-of-turn token after each reply: use a pad token != eos (tokenizer.pad_token "
                   "= '<|endoftext|>') and mask padding by attention_mask, not by pad id")
        else:  # pad is not eos already: the labels lose it elsewhere
            who = (f"the custom data_collator {collator} must set -100 by attention_mask or by the assistant mask, "
                   "never by token id" if collator else "TRL's collator keeps the labels it is given, so the chat "
                   "template's {% generation %} block must end after the end-of-turn token")
            fix = (f"keep the label of the end-of-turn token (id {end_id}) after each reply: {who}; an end-of-turn token "
                   "written as text inside a message also makes an untrained 'reply' (check_dataset: "
                   "special_tokens_in_text)")
        out.append(Finding(
            "stop_token_trained", "fail" if bad else "pass",
            f"{ends_trained} of {ends} replies have their end-of-turn token (id {end_id}) trained{pad_note}", fix))
    if pad_id is not None and pad_id == end_id:
        out.append(Finding("pad_is_eos", "warn", f"pad token id {pad_id} == end-of-turn id {end_id}",
                           "set tokenizer.pad_token = '<|endoftext|>' (labhelpers.model.loading does this)"))
    return out


# ------------------------------------------------------------------------------------------ label alignment
def label_alignment_counts(batches: Sequence[dict[str, torch.Tensor]]) -> dict[str, Any]:
    """Trained positions (label != -100) of collated batches, and how many hold a label other than the input id there;
    of those positions, how many match the input ids shifted left (``labels[t] == input_ids[t+1]``) or right by one.

    >>> ids = torch.tensor([[5, 6, 7, 8]])
    >>> label_alignment_counts([{"input_ids": ids, "labels": torch.tensor([[-100, 6, 7, 8]])}])
    {'trained': 3, 'mismatched': 0, 'left': 0, 'right': 0, 'shape': None}
    >>> label_alignment_counts([{"input_ids": ids, "labels": torch.tensor([[6, 7, 8, -100]])}])  # pre-shifted
    {'trained': 3, 'mismatched': 3, 'left': 3, 'right': 0, 'shape': None}
    """
    out: dict[str, Any] = {"trained": 0, "mismatched": 0, "left": 0, "right": 0, "shape": None}
    for batch in batches:
        ids, labels = batch["input_ids"], batch.get("labels")
        if labels is None:
            continue
        if tuple(labels.shape) != tuple(ids.shape):
            out["shape"] = (tuple(labels.shape), tuple(ids.shape))
            break
        trained = labels != IGNORE_INDEX
        out["trained"] += int(trained.sum())
        out["mismatched"] += int((trained & (labels != ids)).sum())
        if ids.shape[-1] > 1:
            out["left"] += int((trained[:, :-1] & (labels[:, :-1] == ids[:, 1:]) & (labels[:, :-1] != ids[:, :-1])).sum())
            out["right"] += int((trained[:, 1:] & (labels[:, 1:] == ids[:, :-1]) & (labels[:, 1:] != ids[:, 1:])).sum())
    return out


def _labels_source(collator: str | None) -> str:
    if collator:
        return (f"the custom data_collator {collator} builds these labels: make it copy input_ids (labels = "
                "input_ids.clone()) and only set -100 where a token must not train, with no shift, or drop "
                "data_collator= so TRL's own collator builds them")
    return ("TRL's collator takes a dataset's own 'labels' column as is, so the preprocessing that wrote it is at "
            "fault: write labels[i] = input_ids[i] (or -100), never input_ids[i + 1], or drop the 'labels' column "
            "and train on a `messages` dataset so TRL builds aligned labels")


def label_alignment_findings(batches: Sequence[dict[str, torch.Tensor]], collator: str | None = None) -> list[Finding]:
    """Labels must equal input_ids at every trained position: HF causal-LM models shift by one themselves.

    ``collator``: the name of a custom data collator (None for TRL's, which copies input_ids into labels, or keeps a
    dataset's own 'labels' column as is). Labels pre-shifted by one train each position on the token after next.

    >>> ids = torch.tensor([[5, 6, 7, 8, 9]])
    >>> f = label_alignment_findings([{"input_ids": ids, "labels": torch.tensor([[6, 7, 8, 9, -100]])}], "shift_collate")
    >>> f[0].status, f[0].message.split(":")[0], "shift_collate" in f[0].fix
    ('fail', '4 of 4 trained labels (100%) differ from the input id at their position', True)
    >>> label_alignment_findings([{"input_ids": ids, "labels": torch.tensor([[-100, 6, 7, 8, 9]])}])[0].status
    'pass'
    """
    c = label_alignment_counts(batches)
    if c["shape"] is not None:
        labels_shape, ids_shape = c["shape"]
        return [Finding("label_alignment", "fail",
                        f"labels have shape {list(labels_shape)} but input_ids {list(ids_shape)}: labels cut or shifted "
                        "against the inputs (e.g. labels = input_ids[:, 1:]); the model pairs them position by position",
                        "give labels the shape of input_ids, equal to them where trained and -100 elsewhere (the model "
                        "shifts by one itself); " + _labels_source(collator))]
    trained, bad = c["trained"], c["mismatched"]
    if trained == 0:
        return [Finding("label_alignment", "warn", f"no trained label in {len(batches)} batch(es): nothing to compare",
                        "see zero_trainable_rows: every label is -100")]
    if bad == 0:
        return [Finding("label_alignment", "pass",
                        f"labels equal input_ids at all {trained:,} trained positions ({len(batches)} batch(es); the "
                        "model shifts by one itself)", "")]
    share = bad / trained
    if c["left"] > 0.5 * bad:
        cause = (f"{c['left'] / bad:.0%} of them equal the next input id: labels pre-shifted by one (labels[t] = "
                 "input_ids[t+1]); the model shifts again, so each position learns the token after next")
    elif c["right"] > 0.5 * bad:
        cause = (f"{c['right'] / bad:.0%} of them equal the previous input id: labels shifted right by one (labels[t] = "
                 "input_ids[t-1]); each position learns to repeat the token it reads")
    else:
        cause = "not a one-token shift: labels from another row, remapped ids or another tokenizer's ids"
    status = "fail" if share > LABEL_MISMATCH_FAIL else "warn"
    return [Finding("label_alignment", status,
                    f"{bad:,} of {trained:,} trained labels ({share:.0%}) differ from the input id at their position: "
                    f"{cause}", "labels must equal input_ids wherever they are not -100 (no pre-shift: the model "
                    "shifts by one itself); " + _labels_source(collator))]


def custom_collator_name(trainer: Any) -> str | None:
    """The name of the trainer's data collator when it is not one of TRL's (None for TRL's own).

    >>> from types import SimpleNamespace as NS
    >>> def my_collate(rows): ...
    >>> custom_collator_name(NS(data_collator=my_collate)), custom_collator_name(NS(data_collator=None))
    ('my_collate', None)
    """
    collator = getattr(trainer, "data_collator", None)
    if collator is None:
        return None
    module = getattr(collator, "__module__", None) or type(collator).__module__ or ""
    if module.split(".")[0] == "trl":
        return None
    return getattr(collator, "__qualname__", None) or type(collator).__qualname__


def data_kind(dataset: Any) -> str | None:
    """The kind of a train split, raw or as TRL prepared it: "messages", "prompt-completion", "text" or None.

    >>> from types import SimpleNamespace as NS
    >>> data_kind(NS(column_names=["input_ids", "completion_mask"])), data_kind(NS(column_names=["text"]))
    ('prompt-completion', 'text')
    """
    cols = set(getattr(dataset, "column_names", None) or [])
    if "messages" in cols or "assistant_masks" in cols:
        return "messages"
    if {"prompt", "completion"} <= cols or "completion_mask" in cols:
        return "prompt-completion"
    return "text" if "text" in cols else None
