"""Notebook 13's TODO, `make_generation_config(tokenizer, max_new_tokens)`, as students write it: near misses (a token
text where an id belongs, the wrong stop or pad token, "temperature 0 is greedy", max_length for max_new_tokens, a
far-off repetition penalty) that the check must reject with their own mistake named, and right answers written
differently from the solution (other ways to get the same ids, lists, attribute assignment) that it must accept."""

from __future__ import annotations

import time

import pytest
import torch
import transformers
from transformers import GenerationConfig

from labhelpers.checks import TodoCheckError
from labhelpers.checks.nb13_share_model import check_generation_config

MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.fixture(scope="module")
def tokenizer():
    """The lab's SmolLM2 tokenizer: eos <|im_end|> (id 2), pad <|endoftext|> (id 0)."""
    from labhelpers.model.loading import load_tokenizer

    return load_tokenizer(MODEL_ID)


# ------------------------------------------------------------------------------------------------------ wrong
def eos_as_token_text(tokenizer, max_new_tokens):
    return transformers.GenerationConfig(eos_token_id="<|im_end|>", pad_token_id=tokenizer.pad_token_id,
                                         max_new_tokens=max_new_tokens, do_sample=False)


def pad_as_token_text(tokenizer, max_new_tokens):
    return transformers.GenerationConfig(eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                                         pad_token_id=tokenizer.pad_token, max_new_tokens=max_new_tokens)


def stops_at_endoftext_only(tokenizer, max_new_tokens):
    end = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    return transformers.GenerationConfig(eos_token_id=end, pad_token_id=tokenizer.pad_token_id,
                                         max_new_tokens=max_new_tokens, do_sample=False)


def pad_left_out(tokenizer, max_new_tokens):
    return transformers.GenerationConfig(eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                                         max_new_tokens=max_new_tokens, do_sample=False)


def pads_with_eos(tokenizer, max_new_tokens):
    return transformers.GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id,
                                         max_new_tokens=max_new_tokens, do_sample=False)


def both_stops_pad_among_them(tokenizer, max_new_tokens):
    stops = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    return transformers.GenerationConfig(eos_token_id=stops, pad_token_id=tokenizer.pad_token_id,
                                         max_new_tokens=max_new_tokens, do_sample=False)


def sampling_at_temperature_zero(tokenizer, max_new_tokens):
    return transformers.GenerationConfig(eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                                         pad_token_id=tokenizer.pad_token_id, max_new_tokens=max_new_tokens,
                                         do_sample=True, temperature=0.0)


def greedy_by_temperature(tokenizer, max_new_tokens):
    return transformers.GenerationConfig(eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                                         pad_token_id=tokenizer.pad_token_id, max_new_tokens=max_new_tokens,
                                         do_sample=False, temperature=0)


def max_length_for_max_new_tokens(tokenizer, max_new_tokens):
    return transformers.GenerationConfig(eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                                         pad_token_id=tokenizer.pad_token_id, max_length=max_new_tokens,
                                         do_sample=False)


def strong_repetition_penalty(tokenizer, max_new_tokens):
    return transformers.GenerationConfig(eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                                         pad_token_id=tokenizer.pad_token_id, max_new_tokens=max_new_tokens,
                                         do_sample=False, repetition_penalty=5.0)


def penalty_below_one(tokenizer, max_new_tokens):
    return transformers.GenerationConfig(eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                                         pad_token_id=tokenizer.pad_token_id, max_new_tokens=max_new_tokens,
                                         repetition_penalty=0.8)


def no_return(tokenizer, max_new_tokens):
    config = transformers.GenerationConfig(eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                                           pad_token_id=tokenizer.pad_token_id, max_new_tokens=max_new_tokens,
                                           do_sample=False)  # noqa: F841  (the student forgot `return config`)


def ids_as_a_tensor(tokenizer, max_new_tokens):
    eos = tokenizer("<|im_end|>", add_special_tokens=False, return_tensors="pt").input_ids[0]
    return transformers.GenerationConfig(eos_token_id=eos, pad_token_id=tokenizer.pad_token_id,
                                         max_new_tokens=max_new_tokens, do_sample=False)


def beams(tokenizer, max_new_tokens):
    return transformers.GenerationConfig(eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                                         pad_token_id=tokenizer.pad_token_id, max_new_tokens=max_new_tokens,
                                         num_beams=4)


def the_recipe_budget(tokenizer, max_new_tokens):
    return transformers.GenerationConfig(eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                                         pad_token_id=tokenizer.pad_token_id, max_new_tokens=96, do_sample=False)


# (name, the student's function, distinctive words of the message)
WRONG = [
    ("eos as the token text", eos_as_token_text,
     "eos_token_id is the token text '<|im_end|>', where generate() compares token ids. Fix: an id, not the token "
     "text; use tokenizer.convert_tokens_to_ids('<|im_end|>')"),
    ("pad as the token text", pad_as_token_text,
     "pad_token_id is a token text (a str), where GenerationConfig wants a token id"),
    ("stops at <|endoftext|> only", stops_at_endoftext_only, "eos_token_id is 0 (<|endoftext|>), not <|im_end|> (id 2)"),
    ("pad_token_id left out", pad_left_out, "pad_token_id is not set"),
    ("pads with the stop token", pads_with_eos, "pad_token_id is 2, the end-of-turn token <|im_end|>"),
    ("pad among the stop tokens", both_stops_pad_among_them,
     "pad_token_id 0 (<|endoftext|>) is also in eos_token_id [2, 0]"),
    ("do_sample with temperature 0", sampling_at_temperature_zero, "do_sample=True with temperature=0.0"),
    ("temperature 0 for greedy", greedy_by_temperature, "temperature is 0 while do_sample=False"),
    ("max_length for max_new_tokens", max_length_for_max_new_tokens,
     "max_new_tokens is not set and max_length is 96: max_length counts the prompt too"),
    ("repetition_penalty 5", strong_repetition_penalty, "repetition_penalty is 5.0"),
    ("repetition_penalty below 1", penalty_below_one, "repetition_penalty is 0.8, below 1"),
    ("no return", no_return, "returned None: the function has no `return`"),
    ("ids as a tensor", ids_as_a_tensor, "eos_token_id is a Tensor, not an int"),
    ("beam search", beams, "num_beams is 4"),
    ("the recipe's budget, not the argument", the_recipe_budget, "max_new_tokens is 96, asked for 17"),
]


# ------------------------------------------------------------------------------------------------------ right
def eos_token_id_and_endoftext_by_name(tokenizer, max_new_tokens):
    """tokenizer.eos_token_id is <|im_end|> for this tokenizer; the pad id looked up by its name."""
    return GenerationConfig(max_new_tokens=max_new_tokens, pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
                            eos_token_id=tokenizer.eos_token_id)


def lists_and_attributes(tokenizer, max_new_tokens):
    """Attributes set one by one on a default config, the stop id as a one-element list from encoding the text."""
    config = GenerationConfig()
    config.eos_token_id = tokenizer("<|im_end|>", add_special_tokens=False)["input_ids"]
    config.pad_token_id = int(tokenizer.pad_token_id)
    config.max_new_tokens = int(max_new_tokens)
    config.num_beams = 1
    return config


def from_a_dict(tokenizer, max_new_tokens):
    """A dict of settings, do_sample left at its default (greedy), a mild repetition penalty."""
    settings = {"eos_token_id": [tokenizer.convert_tokens_to_ids("<|im_end|>")], "pad_token_id": tokenizer.pad_token_id,
                "max_new_tokens": max_new_tokens, "repetition_penalty": 1.1}
    return GenerationConfig.from_dict(settings)


def ids_from_a_tensor_made_ints(tokenizer, max_new_tokens):
    """Ids taken from tensors, made plain ints with .item() / .tolist()."""
    end = torch.tensor(tokenizer.encode("<|im_end|>", add_special_tokens=False))
    return transformers.GenerationConfig(eos_token_id=end.tolist(), pad_token_id=torch.tensor(tokenizer.pad_token_id).item(),
                                         max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)


RIGHT = [
    ("eos_token_id, pad looked up by name", eos_token_id_and_endoftext_by_name),
    ("a list, attributes set one by one", lists_and_attributes),
    ("from a dict, do_sample left out, mild penalty", from_a_dict),
    ("ids from tensors made ints", ids_from_a_tensor_made_ints),
]


@pytest.mark.parametrize("name, student, words", WRONG, ids=[w[0] for w in WRONG])
def test_wrong_generation_config_is_named(tokenizer, name, student, words):
    with pytest.raises(TodoCheckError) as err:
        check_generation_config(student, tokenizer)
    message = str(err.value)
    assert words in message and "Fix:" in message, message


@pytest.mark.parametrize("name, student, words", WRONG, ids=[w[0] for w in WRONG])
def test_every_failure_is_one_clean_line(tokenizer, name, student, words):
    """No crash from inside the student's code or the check: a TodoCheckError, shown in Jupyter as one line."""
    try:
        check_generation_config(student, tokenizer)
    except TodoCheckError as err:
        assert "\n" not in str(err) and err._render_traceback_() == [f"TodoCheckError: {err}"], str(err)
    else:
        pytest.fail(f"{name} was accepted")


@pytest.mark.parametrize("name, student", RIGHT, ids=[r[0] for r in RIGHT])
def test_right_generation_config_is_accepted_and_saves(tokenizer, name, student, capsys, tmp_path):
    check_generation_config(student, tokenizer)
    assert capsys.readouterr().out.startswith("✓ generation config: stops at <|im_end|> (id 2)")
    student(tokenizer, 96).save_pretrained(tmp_path)  # what save_for_sharing does next in the notebook


def test_the_solution_is_accepted(tokenizer, capsys):
    from labhelpers.run.handoff import generation_config_for

    check_generation_config(generation_config_for, tokenizer)
    assert "✓ generation config" in capsys.readouterr().out


def test_the_token_text_mistake_is_one_line_in_ipython():
    """The held-out crash: a token text where an id belongs is named, in IPython, as one line without a traceback."""
    import subprocess
    import sys

    cell = ("import transformers\n"
            "from labhelpers.checks.nb13_share_model import check_generation_config\n"
            "from labhelpers.model.loading import load_tokenizer\n"
            f"tokenizer = load_tokenizer({MODEL_ID!r})\n"
            "def make_generation_config(tokenizer, max_new_tokens):\n"
            "    return transformers.GenerationConfig(eos_token_id=tokenizer.eos_token, max_new_tokens=max_new_tokens,\n"
            "                                         pad_token_id=tokenizer.pad_token_id)\n"
            "check_generation_config(make_generation_config, tokenizer)")
    script = f"from IPython.core.interactiveshell import InteractiveShell\nInteractiveShell.instance().run_cell({cell!r})\n"
    shown = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    lines = [line for line in (shown.stdout + shown.stderr).splitlines()
             if line.strip() and "Loaded" not in line and "Warning" not in line]
    assert len(lines) == 1 and lines[0].startswith("TodoCheckError: make_generation_config(tokenizer, 96): "
                                                   "eos_token_id is the token text '<|im_end|>'"), lines


def test_check_cost(tokenizer):
    from labhelpers.run.handoff import generation_config_for

    start = time.perf_counter()
    check_generation_config(generation_config_for, tokenizer)
    assert time.perf_counter() - start < 1
