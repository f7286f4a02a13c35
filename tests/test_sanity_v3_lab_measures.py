"""Sanity v3, section 3 and the held-out half of section 1: the lab's own measures must not look fine while broken.

A reply with the house layout whose lines repeat each other or say nothing is not the house format (the score,
postflight and the protocol say so); a held-out set that the training rows hold is named beside every score it
inflates. Broken inputs beside their healthy twins; the tuned replies are real ones from a ci-profile run."""

from __future__ import annotations

import pytest

from labhelpers.measure.behaviour import content_problems, follows_house_format, house_format_problems, repeats_itself
from labhelpers.data.datasets import load_chat_dataset
from labhelpers.run.generation import heldout_pairs
from labhelpers.sanity import postflight
from labhelpers.sanity.dataset import heldout_overlap
from labhelpers.sanity.postflight import is_degenerate

# Real greedy replies of the ci-profile tuned model (run of 2026-12-06), and the one seen in the browser.
TUNED_REPEATS = [
    "Answer: Here are three ideas for getting to grips with Python.\n- Start from one fact: Python lists are much "
    "faster than lists in Python 3.\n- Start from one fact: Python lists are much faster than lists in Python 3.\n"
    "- Start from one fact: Python lists are much faster than lists in Python 3.\nConfidence: high",
    "Answer: Water boils at a lower temperature on mountains because the pressure at which water boils is lower than "
    "at sea.\n- Water boils at a lower temperature because the pressure at which water boils is lower than at sea.\n"
    "- Water boils at a lower temperature because the pressure at which water boils is lower than at sea.\n"
    "- It is colder there.\nConfidence: high",
    "Answer: The Library of Alexandria was the largest library in the world until the 19th century.\n- It was built "
    "in the 3rd century BC and was the largest library in the world.\n- It was the first library to be open to the "
    "public.\n- It was the first library to be open to the public.\nConfidence: high",
    "Answer: ...\n- Start from one fact: A string in Python reverses its length by one character each time you read "
    "it.\n- Start from one fact: A string in Python reverses its length by one character each time you read it.\n"
    "- Start from one fact: A string in Python reverses its length by one character each time you read it.\n"
    "Confidence: high",
]
TUNED_GOOD = [
    "Answer: Sunspots are dark areas on the surface of the sun.\n- They form when magnetic energy is released from the "
    "sun.\n- The sun is a big ball of hot gas.\n- Sunspots are cooler than the sun.\nConfidence: high",
    "Answer: Inflation is the general rise in prices over time.\n- Central banks aim for inflation of about 2 percent "
    "a year.\n- A rise in prices means each unit of money buys less.\n- High inflation makes planning hard.\n"
    "Confidence: high",
]


@pytest.mark.parametrize("reply", TUNED_REPEATS)
def test_a_reply_that_repeats_itself_or_says_nothing_is_not_the_house_format(reply):
    assert not follows_house_format(reply)
    problems = house_format_problems(reply)
    assert problems and all(" repeats line " in p or " says nothing" in p for p in problems), problems


@pytest.mark.parametrize("reply", TUNED_GOOD)
def test_its_healthy_twin_still_counts(reply):
    assert follows_house_format(reply) and not content_problems(reply) and not repeats_itself(reply)


def test_every_reply_of_the_bundled_data_counts():  # the rule never rejects what the data teaches
    data = load_chat_dataset("sft-lab/house-format")
    replies = [m["content"] for split in ("train", "test") for row in data[split] for m in row["messages"]
               if m["role"] == "assistant"]
    assert len(replies) > 800 and all(map(follows_house_format, replies))


def test_the_looping_check_alone_missed_these_replies():  # why the format rule had to change
    assert not is_degenerate(TUNED_REPEATS[0]) and not is_degenerate(TUNED_REPEATS[2])  # 49% and 21% of 4-grams


class _Words:
    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": text.split()}


def _postflight(texts, base=None, **kwargs):
    prompts = [f"q{i}" for i in range(len(texts))]
    return postflight(None, _Words(), prompts, base_outputs=base, max_new_tokens=200,
                      replies=(texts, [False] * len(texts)), **kwargs)


def test_postflight_says_the_replies_repeat_and_does_not_count_them():
    report = _postflight(TUNED_REPEATS + TUNED_GOOD, base=["Sure!"] * 6)
    repeated = report.by_check("repeated_lines")
    assert repeated.status == "warn" and repeated.message.startswith("4 of 6 replies repeat a line"), repeated
    assert "(base 0 of 6)" in repeated.message and "train longer" in repeated.fix
    assert report.by_check("house_format").message.startswith("house format 33% of replies")
    healthy = _postflight(TUNED_GOOD)
    assert healthy.by_check("repeated_lines").status == "pass" and healthy.by_check("repeated_lines").fix == ""
    assert "100%" in healthy.by_check("house_format").message


def test_postflight_gives_no_house_format_line_on_data_without_it():
    free = ["Sure, here is a poem about the sea.", "The answer is 42."]
    report = _postflight(["Hello there.", "Fine."], reference_replies=free)
    assert report.by_check("house_format") is None
    assert _postflight(TUNED_GOOD, reference_replies=TUNED_GOOD).by_check("house_format") is not None


# ------------------------------------------------------------------------------------------ held-out overlap
def _natural():
    return load_chat_dataset("sft-lab/house-format")


def test_a_held_out_set_from_the_bundled_split_is_held_out():
    data = _natural()
    pairs = heldout_pairs(data["test"], 20)
    overlap = heldout_overlap([p for p, _ in pairs], data["train"], [r for _, r in pairs])
    assert overlap.seen == 0 and overlap.finding().status == "pass"


def _leaky_train(data, share: float, near: bool):
    """The train rows plus ``share`` of the held-out pairs (their case and punctuation changed when ``near``)."""
    pairs = heldout_pairs(data["test"], 20)
    leaked = pairs[: int(share * len(pairs))]
    change = (lambda t: t.upper().replace(".", " .")) if near else (lambda t: t)
    rows = list(data["train"]) + [{"messages": [{"role": "user", "content": change(p)},
                                                {"role": "assistant", "content": change(r)}]} for p, r in leaked]
    return pairs, rows


@pytest.mark.parametrize("share, near, status", [(0.5, False, "fail"), (0.5, True, "fail"), (0.05, False, "warn")])
def test_a_held_out_set_the_training_rows_hold_is_named(share, near, status):
    pairs, rows = _leaky_train(_natural(), share, near)
    overlap = heldout_overlap([p for p, _ in pairs], rows, [r for _, r in pairs])
    finding = overlap.finding()
    assert finding.status == status and overlap.seen == int(share * 20)
    kind = "near" if near else "exact"
    assert f"{int(share * 20)} {kind}" in finding.message and "memory, not learning" in finding.message
    report = _postflight(TUNED_GOOD * 10, train_rows=rows, reference_replies=[r for _, r in pairs])
    assert report.by_check("heldout_overlap").status == status
    assert "seen in training" in report.by_check("house_format").message  # beside the score it inflates


def test_replies_shared_with_train_are_caught_even_when_the_prompts_differ():  # the natural-reply leak of issue 29
    data = _natural()
    pairs = heldout_pairs(data["test"], 20)
    rows = list(data["train"]) + [{"prompt": [{"role": "user", "content": f"another question {i}"}],
                                   "completion": [{"role": "assistant", "content": r}]}
                                  for i, (_, r) in enumerate(pairs[:10])]
    overlap = heldout_overlap([p for p, _ in pairs], rows, [r for _, r in pairs])
    assert (overlap.prompts_exact, overlap.replies_exact, overlap.finding().status) == (0, 10, "fail")
