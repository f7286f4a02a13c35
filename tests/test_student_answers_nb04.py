"""Notebook 04's two TODOs as students write them: `build_labels(input_ids, assistant_mask)` (the wrong ignore value,
labels shifted by hand, the end-of-turn token masked, ...) and the optional `assistant_mask_from_ids(input_ids,
tokenizer)` (the header or the newline after <|im_end|> marked, a token string where an id is expected, ...). Near
misses must be rejected with their own mistake named, right answers written differently from the solution accepted
(the real SmolLM2 tokenizer, no model weights)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from labhelpers.checks import TodoCheckError, check_assistant_mask_from_ids, check_build_labels
from labhelpers.views.display import token_roles


@pytest.fixture(scope="module")
def tokenizer():
    """The lab's SFT-ready SmolLM2 tokenizer (no model weights: fast)."""
    from labhelpers.model.loading import load_tokenizer

    return load_tokenizer()


def _fails_in_one_clean_line(check, student, tokenizer, name):
    try:
        check(student, tokenizer)
    except Exception as err:  # noqa: BLE001  (the test is that nothing else escapes)
        assert type(err) is TodoCheckError, f"{type(err).__name__}: {err}"
        message = str(err)
        assert "\n" not in message and message.count("Fix:") == 1 and len(message) < 1000, message
    else:
        pytest.fail(f"{name} passed the check")


# ---------------------------------------------------------------------------------------- build_labels: wrong
def no_masking(input_ids, assistant_mask):
    return list(input_ids)


def minus_one(input_ids, assistant_mask):
    return [t if m else -1 for t, m in zip(input_ids, assistant_mask)]


def zero_for_the_prompt(input_ids, assistant_mask):
    labels = []
    for token, keep in zip(input_ids, assistant_mask):
        labels.append(token if keep == 1 else 0)
    return labels


def times_the_mask(input_ids, assistant_mask):
    return [t * m for t, m in zip(input_ids, assistant_mask)]


def inverted(input_ids, assistant_mask):
    return [-100 if m else t for t, m in zip(input_ids, assistant_mask)]


def shifted_by_hand(input_ids, assistant_mask):
    labels = [t if m else -100 for t, m in zip(input_ids, assistant_mask)]
    return labels[1:] + [-100]


def shifted_right(input_ids, assistant_mask):
    labels = [t if m else -100 for t, m in zip(input_ids, assistant_mask)]
    return [-100] + labels[:-1]


def shifted_and_shortened(input_ids, assistant_mask):
    return [t if m else -100 for t, m in zip(input_ids[1:], assistant_mask[1:])]


def end_of_turn_masked(input_ids, assistant_mask):
    im_end = 2  # <|im_end|>'s id, read off the token table above
    return [t if m and t != im_end else -100 for t, m in zip(input_ids, assistant_mask)]


def every_end_of_turn_kept(input_ids, assistant_mask):
    im_end = 2
    return [t if m or t == im_end else -100 for t, m in zip(input_ids, assistant_mask)]


def loop_stops_early(input_ids, assistant_mask):
    labels = [-100] * len(input_ids)
    for i in range(len(input_ids) - 1):
        if assistant_mask[i]:
            labels[i] = input_ids[i]
    return labels


def a_tensor(input_ids, assistant_mask):
    return torch.where(torch.tensor(assistant_mask) == 1, torch.tensor(input_ids), -100)


def a_numpy_array(input_ids, assistant_mask):
    ids = np.array(input_ids)
    ids[np.array(assistant_mask) == 0] = -100
    return ids


def a_map(input_ids, assistant_mask):
    return map(lambda t, m: t if m else -100, input_ids, assistant_mask)


def masked_fill_with_an_int_mask(input_ids, assistant_mask):
    ids, mask = torch.tensor(input_ids), torch.tensor(assistant_mask)
    return ids.masked_fill(~mask, -100).tolist()


# (name, student function, distinctive words of the message it must get)
LABELS_WRONG = [
    ("no masking", no_masking, "your labels train the system turn at tokens 0-20"),
    ("-1 for the prompt", minus_one, "you put -1 where assistant_mask is 0"),
    ("0 for the prompt", zero_for_the_prompt, "you put 0 where assistant_mask is 0"),
    ("ids times the mask", times_the_mask, "you put 0 where assistant_mask is 0"),
    ("mask inverted", inverted, "your mask is inverted"),
    ("shifted by hand", shifted_by_hand, "shifted by one token to the left"),
    ("shifted right", shifted_right, "shifted by one token to the right"),
    ("shifted and one label short", shifted_and_shortened, "you dropped the first label"),
    ("end-of-turn masked", end_of_turn_masked, "mask the end-of-turn token <|im_end|> at token 36"),
    ("every <|im_end|> kept", every_end_of_turn_kept, "train the <|im_end|> that closes the system"),
    ("the loop stops one token early", loop_stops_early, "your loop stops one token early"),
    ("a tensor", a_tensor, "returned a torch.Tensor, not a list"),
    ("a numpy array", a_numpy_array, "returned a numpy.ndarray, not a list"),
    ("a map", a_map, "returned a map, not a list"),
    ("masked_fill with an int mask", masked_fill_with_an_int_mask, "build_labels raised RuntimeError"),
]


# ---------------------------------------------------------------------------------------- build_labels: right
def copy_and_overwrite(input_ids, assistant_mask):
    labels = list(input_ids)
    for i, keep in enumerate(assistant_mask):
        if not keep:
            labels[i] = -100
    return labels


def torch_where(input_ids, assistant_mask):
    mask = torch.tensor(assistant_mask, dtype=torch.bool)
    return torch.where(mask, torch.tensor(input_ids), torch.tensor(-100)).tolist()


def numpy_where(input_ids, assistant_mask):
    return np.where(np.asarray(assistant_mask) > 0, input_ids, -100).tolist()


def arithmetic(input_ids, assistant_mask):
    return [t * m - 100 * (1 - m) for t, m in zip(input_ids, assistant_mask)]


def bool_masked_fill(input_ids, assistant_mask):
    ids = torch.tensor(input_ids)
    return ids.masked_fill(~torch.tensor(assistant_mask).bool(), -100).tolist()


def index_loop(input_ids, assistant_mask):
    labels = [-100] * len(input_ids)
    for i in range(len(input_ids)):
        if assistant_mask[i] == 1:
            labels[i] = input_ids[i]
    return labels


LABELS_RIGHT = [
    ("copy, then -100 in a loop", copy_and_overwrite),
    ("torch.where", torch_where),
    ("np.where", numpy_where),
    ("arithmetic on the mask", arithmetic),
    ("masked_fill with a bool mask", bool_masked_fill),
    ("an index loop", index_loop),
]


@pytest.mark.parametrize("name, student, words", LABELS_WRONG, ids=[w[0] for w in LABELS_WRONG])
def test_wrong_labels_are_named(tokenizer, name, student, words):
    with pytest.raises(TodoCheckError) as err:
        check_build_labels(student, tokenizer)
    assert words in str(err.value) and "Fix:" in str(err.value), str(err.value)


@pytest.mark.parametrize("name, student", LABELS_RIGHT, ids=[r[0] for r in LABELS_RIGHT])
def test_right_labels_are_accepted(tokenizer, name, student, capsys):
    check_build_labels(student, tokenizer)
    assert capsys.readouterr().out.startswith("✓ labels train exactly the assistant replies")


@pytest.mark.parametrize("name, student, words", LABELS_WRONG, ids=[w[0] for w in LABELS_WRONG])
def test_every_labels_failure_is_one_clean_line(tokenizer, name, student, words):
    _fails_in_one_clean_line(check_build_labels, student, tokenizer, name)


# ------------------------------------------------------------------------------ assistant_mask_from_ids: wrong
def _reference(input_ids, tokenizer, header_text="<|im_start|>assistant\n", skip=0, keep_end=True, first_only=False):
    """The solution's loop, with the knobs a near miss turns."""
    header = tokenizer.encode(header_text, add_special_tokens=False)
    end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    mask, i = [0] * len(input_ids), 0
    while i < len(input_ids):
        if input_ids[i:i + len(header)] == header:
            i += len(header) + skip
            while i < len(input_ids):
                if input_ids[i] == end_id:
                    mask[i] = int(keep_end)
                    break
                mask[i] = 1
                i += 1
            if first_only:
                break
        i += 1
    return mask


def header_marked(input_ids, tokenizer):
    start = tokenizer.convert_tokens_to_ids("<|im_start|>")
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    mask, inside = [], False
    for i, token in enumerate(input_ids):
        if token == start and tokenizer.decode(input_ids[i + 1:i + 3]) == "assistant":
            inside = True
        mask.append(1 if inside else 0)
        if token == end:
            inside = False
    return mask


def end_left_out(input_ids, tokenizer):
    return _reference(input_ids, tokenizer, keep_end=False)


def until_the_next_turn(input_ids, tokenizer):
    header = tokenizer.encode("<|im_start|>assistant\n", add_special_tokens=False)
    start = tokenizer.convert_tokens_to_ids("<|im_start|>")
    mask, inside = [0] * len(input_ids), False
    for i in range(len(input_ids)):
        if input_ids[i] == start:
            inside = False
        if inside:
            mask[i] = 1
        if input_ids[i - len(header) + 1:i + 1] == header:
            inside = True
    return mask


def first_reply_only(input_ids, tokenizer):
    return _reference(input_ids, tokenizer, first_only=True)


def trusts_token_roles(input_ids, tokenizer):
    return [int(role == "assistant") for role in token_roles(tokenizer, input_ids)]


def end_as_a_string(input_ids, tokenizer):
    header = tokenizer.encode("<|im_start|>assistant\n", add_special_tokens=False)
    end = "<|im_end|>"  # the token itself, compared with ids below: never equal
    mask, i = [0] * len(input_ids), 0
    while i < len(input_ids):
        if input_ids[i:i + len(header)] == header:
            i += len(header)
            while i < len(input_ids):
                mask[i] = 1
                if input_ids[i] == end:
                    break
                i += 1
        i += 1
    return mask


def header_as_a_string(input_ids, tokenizer):
    header = "<|im_start|>assistant\n"
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    mask, inside = [0] * len(input_ids), False
    for i, token in enumerate(input_ids):
        if inside:
            mask[i] = 1
            inside = token != end
        if input_ids[i - 3:i + 1] == header:
            inside = True
    return mask


def assistant_as_one_token(input_ids, tokenizer):
    start, word = tokenizer.convert_tokens_to_ids("<|im_start|>"), tokenizer.convert_tokens_to_ids("assistant")
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    mask, i = [0] * len(input_ids), 0
    while i < len(input_ids) - 1:
        if input_ids[i] == start and input_ids[i + 1] == word:
            i += 3
            while i < len(input_ids) and input_ids[i] != end:
                mask[i] = 1
                i += 1
            mask[i] = 1
        i += 1
    return mask


def labels_not_a_mask(input_ids, tokenizer):
    mask = _reference(input_ids, tokenizer)
    return [t if m else -100 for t, m in zip(input_ids, mask)]


def one_token_late(input_ids, tokenizer):
    return _reference(input_ids, tokenizer, skip=1)


def header_without_newline(input_ids, tokenizer):
    return _reference(input_ids, tokenizer, header_text="<|im_start|>assistant")


def only_the_reply_tokens(input_ids, tokenizer):
    full = _reference(input_ids, tokenizer)
    return [1 for m in full if m]


def list_index_of_the_header(input_ids, tokenizer):
    header = tokenizer.encode("<|im_start|>assistant\n", add_special_tokens=False)
    start = input_ids.index(header) + len(header)
    end = input_ids.index(tokenizer.convert_tokens_to_ids("<|im_end|>"), start)
    return [int(start <= i <= end) for i in range(len(input_ids))]


MASK_WRONG = [
    ("header marked", header_marked, "you mark the assistant header"),
    ("<|im_end|> left out", end_left_out, "<|im_end|> closing the reply"),
    ("until the next turn", until_the_next_turn, "newline after <|im_end|>"),
    ("first reply only", first_reply_only, "only the first reply is marked"),
    ("token_roles == 'assistant'", trusts_token_roles, "you mark the assistant header"),
    ("<|im_end|> as a string", end_as_a_string, "never stops at <|im_end|>"),
    ("the header as a string", header_as_a_string, "your mask marks nothing"),
    ("'assistant' as one token", assistant_as_one_token, "your mask marks nothing"),
    ("labels, not a mask", labels_not_a_mask, "values other than 0 and 1"),
    ("one token late", one_token_late, "the first token of the reply"),
    ("header without its newline", header_without_newline, "you mark the assistant header"),
    ("only the reply tokens, appended", only_the_reply_tokens, "one 0/1 value per input id"),
    ("list.index of the header", list_index_of_the_header, "assistant_mask_from_ids raised ValueError"),
]


# ------------------------------------------------------------------------------ assistant_mask_from_ids: right
def state_machine(input_ids, tokenizer):
    header = tokenizer.encode("<|im_start|>assistant\n", add_special_tokens=False)
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    mask, in_reply = [], False
    for i, token in enumerate(input_ids):
        mask.append(in_reply)
        if in_reply and token == end:
            in_reply = False
        if list(input_ids[max(0, i - len(header) + 1):i + 1]) == header:
            in_reply = True
    return mask  # booleans


def numpy_windows(input_ids, tokenizer):
    ids = np.asarray(input_ids)
    header = np.asarray(tokenizer("<|im_start|>assistant\n")["input_ids"])
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    windows = np.lib.stride_tricks.sliding_window_view(ids, len(header))
    mask = np.zeros(len(ids))  # floats: 0.0 and 1.0
    for start in np.flatnonzero((windows == header).all(axis=1)) + len(header):
        stop = start + int(np.argmax(ids[start:] == end)) if (ids[start:] == end).any() else len(ids) - 1
        mask[start:stop + 1] = 1
    return mask


def token_strings(input_ids, tokenizer):
    tokens = tokenizer.convert_ids_to_tokens(list(input_ids))
    mask = [0] * len(tokens)
    for i in range(len(tokens) - 3):
        if tokens[i] == "<|im_start|>" and tokenizer.convert_tokens_to_string(tokens[i + 1:i + 4]) == "assistant\n":
            j = i + 4
            while j < len(tokens):
                mask[j] = 1
                if tokens[j] == "<|im_end|>":
                    break
                j += 1
    return tuple(mask)


MASK_RIGHT = [
    ("the solution's loop", _reference),
    ("a state machine of booleans", state_machine),
    ("numpy sliding windows, a float array", numpy_windows),
    ("token strings, a tuple", token_strings),
    ("a tensor", lambda ids, tok: torch.tensor(_reference(ids, tok))),
]


@pytest.mark.parametrize("name, student, words", MASK_WRONG, ids=[w[0] for w in MASK_WRONG])
def test_wrong_mask_is_named(tokenizer, name, student, words):
    with pytest.raises(TodoCheckError) as err:
        check_assistant_mask_from_ids(student, tokenizer)
    assert words in str(err.value) and "Fix:" in str(err.value), str(err.value)


@pytest.mark.parametrize("name, student", MASK_RIGHT, ids=[r[0] for r in MASK_RIGHT])
def test_right_mask_is_accepted(tokenizer, name, student, capsys):
    check_assistant_mask_from_ids(student, tokenizer)
    assert capsys.readouterr().out.startswith("✓ your mask from the token ids alone equals the template's")


@pytest.mark.parametrize("name, student, words", MASK_WRONG, ids=[w[0] for w in MASK_WRONG])
def test_every_mask_failure_is_one_clean_line(tokenizer, name, student, words):
    _fails_in_one_clean_line(check_assistant_mask_from_ids, student, tokenizer, name)


def test_token_roles_names_both_of_its_extra_spans(tokenizer):
    """Trusting a helper's 'assistant' role marks the header and the newline after <|im_end|>: both are named."""
    with pytest.raises(TodoCheckError) as err:
        check_assistant_mask_from_ids(trusts_token_roles, tokenizer)
    assert "assistant header" in str(err.value) and "newline after <|im_end|>" in str(err.value), str(err.value)


def test_check_cost_is_small(tokenizer):
    start = time.perf_counter()
    check_build_labels(index_loop, tokenizer)
    check_assistant_mask_from_ids(state_machine, tokenizer)
    with pytest.raises(TodoCheckError):
        check_build_labels(minus_one, tokenizer)
    assert time.perf_counter() - start < 2
