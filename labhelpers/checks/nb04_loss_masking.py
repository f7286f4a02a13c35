"""TODO checks of notebook 04 (loss masking): labels that train only the assistant replies, and the optional
assistant mask built from the token ids alone, naming the wrong span."""

from __future__ import annotations

from labhelpers.checks.core import TodoCheckError, passed, require, student_code


LABEL_CHECK_CONVERSATIONS = (
    ({"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}),
    ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"},
     {"role": "assistant", "content": "Paris."}, {"role": "user", "content": "And of Italy?"},
     {"role": "assistant", "content": "Rome."}),
)


def _label_problem(tokenizer, ids: list[int], got: list[int], want: list[int]) -> str:
    """Describe the first wrong span of labels: which turn is trained or masked by mistake, decoded."""
    from labhelpers.display import token_roles, trained_spans

    roles = token_roles(tokenizer, ids)
    wrongly_trained = [g != -100 and w == -100 for g, w in zip(got, want)]
    wrongly_masked = [g == -100 and w != -100 for g, w in zip(got, want)]
    trained = masked = ""
    if any(wrongly_trained):
        parts = []
        for a, b in trained_spans(wrongly_trained):
            start = a
            for i in range(a, b + 1):  # split each wrong span where the turn changes
                if i == b or roles[i + 1] != roles[start]:
                    role = roles[start]
                    what = {"system": "the system turn", "user": "the user turn", "pad": "padding",
                            "assistant": "the assistant header"}.get(role, "text outside any turn")
                    parts.append(f"{what} at tokens {start}-{i} ({tokenizer.decode(ids[start:i + 1])[:60]!r})")
                    start = i + 1
        trained = f"{', '.join(parts[:3])}{' and more' if len(parts) > 3 else ''}"
    if any(wrongly_masked):
        spans = trained_spans(wrongly_masked)
        masked = ", ".join(f"tokens {a}-{b} ({tokenizer.decode(ids[a:b + 1])[:40]!r})" for a, b in spans[:2])
        masked += " and more" if len(spans) > 2 else ""
    if trained and masked:
        inverted = all((g != -100) == (w == -100) for g, w in zip(got, want))
        return (f"your labels train the prompt ({trained}) and mask the reply: -100 on the assistant's {masked}"
                + (": your mask is inverted" if inverted else "")
                + ". Fix: keep input_ids[i] where assistant_mask[i] is 1 and put -100 where it is 0"
                + (" (you swapped the two)" if inverted else ""))
    if trained:
        values = {got[i] for i, w in enumerate(wrongly_trained) if w}
        zero = " (not 0 or the pad id: only -100 is skipped by the loss)" if values <= {0, tokenizer.pad_token_id} else ""
        return (f"your labels train {trained}. "
                f"Fix: set labels to -100{zero} wherever assistant_mask is 0 (system, user, the "
                "'<|im_start|>assistant\\n' header)")
    if masked:
        a, b = trained_spans(wrongly_masked)[0]
        span = tokenizer.decode(ids[a:b + 1])
        if b == a and ids[a] == tokenizer.convert_tokens_to_ids("<|im_end|>"):
            return (f"your labels mask the end-of-turn token <|im_end|> at token {a}: the model would never learn to "
                    "stop. Fix: keep the label (= the input id) wherever assistant_mask is 1, <|im_end|> included")
        return (f"your labels mask assistant tokens {a}-{b}: {span!r}. Fix: the label of a reply token is its own "
                "input id (not -100)")
    pos = next(i for i, (g, w) in enumerate(zip(got, want)) if g != w)
    return (f"your label at token {pos} is {got[pos]} but the token there is {want[pos]} "
            f"({tokenizer.decode([want[pos]])!r}). Fix: labels are the input ids themselves (no shift: the model shifts "
            "them by one inside its loss), with -100 on masked positions")


def _type_name(value: object) -> str:
    """Type of ``value`` as a student would write it.

    >>> _type_name((1, 2)), _type_name(NotImplemented)
    ('tuple', 'NotImplementedType')
    """
    kind = type(value)
    root = kind.__module__.split(".")[0]
    return kind.__name__ if root == "builtins" else f"{root}.{kind.__name__}"


@student_code("build_labels")
def check_build_labels(build_labels, tokenizer) -> None:
    """Compare the student's ``build_labels(input_ids, assistant_mask)`` with the reference on a single-turn and a
    multi-turn conversation, naming the wrong span.

    Needs a real chat tokenizer; tests/test_checks_basics.py runs it on the reference and on typical mistakes.
    """
    for conversation in LABEL_CHECK_CONVERSATIONS:
        enc = tokenizer.apply_chat_template(list(conversation), return_dict=True, return_assistant_tokens_mask=True)
        ids, mask = list(enc["input_ids"]), list(enc["assistant_masks"])
        want = [i if m else -100 for i, m in zip(ids, mask)]
        got = build_labels(list(ids), list(mask))
        require(isinstance(got, list), f"build_labels returned a {_type_name(got)}, not a list (the later cells "
                f"compare your labels with lists, and {_type_name(got)} == list does not give True or False)",
                "return a Python list of ints: e.g. labels.tolist()" if hasattr(got, "tolist") else
                "return a Python list of ints, e.g. list(labels)")
        require(len(got) == len(ids), f"build_labels returned {len(got)} labels for {len(ids)} input ids",
                "return one label per input id")
        got = [int(x) for x in got]
        if got == want:
            continue
        if got[:-1] == want[1:] or got[:-1] == ids[1:]:
            raise TodoCheckError("your labels are shifted by one token (label[i] = input_ids[i+1]). Fix: do not shift: "
                                 "the model compares logits[i] with labels[i+1] itself")
        raise TodoCheckError(f"{len(conversation)}-message conversation: " + _label_problem(tokenizer, ids, got, want))
    passed("labels train exactly the assistant replies and their <|im_end|>; everything else is -100")


def _mask_problem(tokenizer, ids: list[int], got: list[int], want: list[int]) -> str:
    """Describe the first wrong span of a 0/1 assistant mask: the header, the newline after <|im_end|>, the stop token,
    a later reply, or a turn that is not the assistant's."""
    from labhelpers.display import token_roles, trained_spans

    roles, end = token_roles(tokenizer, ids), tokenizer.convert_tokens_to_ids("<|im_end|>")
    extra = [g and not w for g, w in zip(got, want)]
    missing = [w and not g for g, w in zip(got, want)]
    if any(extra):
        a, b = trained_spans(extra)[0]
        text = tokenizer.decode(ids[a:b + 1])
        if roles[a] == "assistant" and a > 0 and ids[a - 1] == end:
            return (f"you mark the newline after <|im_end|> (token {a}): the template writes it between turns, the model "
                    "never does. Fix: stop the mask at <|im_end|>, included")
        if roles[a] == "assistant":
            return (f"you mark the assistant header at tokens {a}-{b} ({text!r}): the model reads it, it does not "
                    "write it. Fix: start the mask right after the whole '<|im_start|>assistant\\n' header")
        return (f"you mark {roles[a]} tokens {a}-{b} ({text[:60]!r}): only assistant replies are written by the model. "
                "Fix: mark only what follows an '<|im_start|>assistant\\n' header, up to its <|im_end|>")
    spans, want_spans = trained_spans(missing), trained_spans([bool(w) for w in want])
    a, b = spans[0]
    if a == b and ids[a] == end:
        return (f"the <|im_end|> closing the reply at token {a} is not marked: the model would never learn to stop. "
                "Fix: include the <|im_end|> that ends each reply")
    if len(want_spans) > 1 and (a, b) == want_spans[-1] and not any(missing[:want_spans[-1][0]]):
        return (f"only the first reply is marked; the reply at tokens {a}-{b} ({tokenizer.decode(ids[a:b + 1])[:40]!r}) "
                "is not. Fix: a multi-turn conversation has one reply per assistant turn: look for every header")
    return (f"reply tokens {a}-{b} ({tokenizer.decode(ids[a:b + 1])[:40]!r}) are not marked. Fix: mark every token "
            "after the header up to and including <|im_end|>")


@student_code("assistant_mask_from_ids")
def check_assistant_mask_from_ids(assistant_mask_from_ids, tokenizer) -> None:
    """Compare the student's ``assistant_mask_from_ids(input_ids, tokenizer)`` (the optional harder TODO of 04) with
    the template's ``assistant_masks`` on a single-turn and a multi-turn conversation, naming the wrong span.

    Needs a real chat tokenizer; tests/test_checks_basics.py runs it on the reference and on typical mistakes.
    """
    for conversation in LABEL_CHECK_CONVERSATIONS:
        enc = tokenizer.apply_chat_template(list(conversation), return_dict=True, return_assistant_tokens_mask=True)
        ids, want = list(enc["input_ids"]), [int(m) for m in enc["assistant_masks"]]
        got = assistant_mask_from_ids(list(ids), tokenizer)
        got = got.tolist() if hasattr(got, "tolist") else got
        require(isinstance(got, (list, tuple)) and len(got) == len(ids),
                f"assistant_mask_from_ids returned {_type_name(got)} of length "
                f"{len(got) if hasattr(got, '__len__') else '?'} for {len(ids)} input ids",
                "return one 0/1 value per input id, in order")
        got = [int(bool(x)) for x in got]
        if got != want:
            raise TodoCheckError(f"{len(conversation)}-message conversation: " + _mask_problem(tokenizer, ids, got, want))
    passed("your mask from the token ids alone equals the template's {% generation %} mask, replies and <|im_end|> "
           "included, on single- and multi-turn conversations")
