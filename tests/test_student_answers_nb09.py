"""Notebook 09's two TODOs as students write them: `behaviour_scores` (the format and hit-limit shares, with the
house-format classifier students often write themselves) and the optional `reply_loss`. Near misses must be rejected
with their own mistake named, right answers written differently from the solution accepted."""

from __future__ import annotations

import math
import re
import statistics
import time
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from labhelpers.measure.behaviour import follows_house_format, house_format_rate
from labhelpers.checks import TodoCheckError, check_behaviour_scores, check_reply_loss


# ------------------------------------------------------------------------------------- behaviour_scores: wrong
def _with(classify):
    """behaviour_scores around a student's own classifier (the aggregation right)."""
    def behaviour_scores(outputs, hit_limit):
        return {"format_rate": sum(1 for o in outputs if classify(o)) / len(outputs),
                "hit_limit_rate": sum(hit_limit) / len(hit_limit)}
    return behaviour_scores


def no_bullet_count(text):
    text = text.strip()
    return text.startswith("Answer:") and "\nConfidence:" in text


def case_insensitive(text):
    return re.fullmatch(r"answer: .*\S.*\n(- .*\S.*\n){3}confidence: (high|medium|low)", text.strip(),
                        flags=re.IGNORECASE) is not None


def no_strip(text):
    return re.fullmatch(r"Answer: .*\S.*\n(- .*\S.*\n){3}Confidence: (high|medium|low)", text) is not None


def any_confidence(text):
    return re.fullmatch(r"Answer: .*\S.*\n(- .*\S.*\n){3}Confidence: .+", text.strip()) is not None


def match_not_fullmatch(text):
    return re.match(r"Answer: .*\S.*\n(- .*\S.*\n){3}Confidence: (high|medium|low)", text.strip()) is not None


def by_lines(text):  # breaks on a reply of fewer than five lines
    lines = text.strip().split("\n")
    return lines[0].startswith("Answer: ") and all(x.startswith("- ") for x in lines[1:4]) and \
        lines[4].startswith("Confidence: ")


def as_percentages(outputs, hit_limit):
    n = len(outputs)
    return {"format_rate": 100 * sum(map(follows_house_format, outputs)) / n, "hit_limit_rate": 100 * sum(hit_limit) / n}


def counts(outputs, hit_limit):
    return {"format_rate": sum(follows_house_format(o) for o in outputs), "hit_limit_rate": sum(hit_limit)}


def finished_share(outputs, hit_limit):
    n = len(outputs)
    return {"format_rate": house_format_rate(outputs), "hit_limit_rate": sum(not h for h in hit_limit) / n}


def swapped(outputs, hit_limit):
    n = len(outputs)
    return {"hit_limit_rate": sum(map(follows_house_format, outputs)) / n, "format_rate": sum(hit_limit) / n}


def floor_division(outputs, hit_limit):
    n = len(outputs)
    return {"format_rate": sum(map(follows_house_format, outputs)) // n, "hit_limit_rate": sum(hit_limit) // n}


def format_share_of_the_finished(outputs, hit_limit):  # divides by the replies that were not cut
    finished = [o for o, h in zip(outputs, hit_limit) if not h]
    return {"format_rate": sum(map(follows_house_format, finished)) / len(finished),
            "hit_limit_rate": sum(hit_limit) / len(outputs)}


def percent_strings(outputs, hit_limit):
    n = len(outputs)
    return {"format_rate": f"{house_format_rate(outputs):.0%}", "hit_limit_rate": f"{sum(hit_limit) / n:.0%}"}


HOUSE = re.compile(r"Answer: [^\n]*\S[^\n]*\n(?:- [^\n]*\S[^\n]*\n){3}Confidence: (?:high|medium|low)")


def own_classifier_and_a_loop(outputs, hit_limit):
    good = cut = 0
    for reply, flag in zip(outputs, hit_limit):
        if HOUSE.fullmatch(reply.strip()):
            good += 1
        if flag:
            cut += 1
    total = len(outputs)
    return {"format_rate": good / total, "hit_limit_rate": cut / total, "n": total}


SCORES_WRONG = [
    ("classifier without the bullet count", _with(no_bullet_count), "it needs exactly three '- ' bullets"),
    ("case-insensitive classifier", _with(case_insensitive), "case matters"),
    ("classifier that does not strip", _with(no_strip), "whitespace around the reply does not count"),
    ("any confidence word", _with(any_confidence), "the confidence is one of high, medium, low"),
    ("re.match, not fullmatch", _with(match_not_fullmatch), "nothing may follow the Confidence line"),
    ("classifier by line index", _with(by_lines), "behaviour_scores raised IndexError"),
    ("percentages", as_percentages, "a percentage. Fix: return the fraction"),
    ("counts", counts, "the count itself. Fix: divide the count by the number of outputs"),
    ("share of finished replies", finished_share, "the share of the other replies. Fix: count the replies that hit"),
    ("keys swapped", swapped, "the two are swapped"),
    ("floor division", floor_division, "a // rounds the share down to 0"),
    ("format share of the finished replies", format_share_of_the_finished, "the share among the replies that were not cut"),
    ("percent strings", percent_strings, "the rates are not numbers"),
    ("own full-match regex: the layout only", own_classifier_and_a_loop, "this one repeats a bullet"),
]


# ------------------------------------------------------------------------------------- behaviour_scores: right
def with_library_rate(outputs, hit_limit):
    return {"format_rate": house_format_rate(outputs), "hit_limit_rate": hit_limit.count(True) / len(hit_limit)}


def with_statistics(outputs, hit_limit):
    return dict(format_rate=statistics.mean(follows_house_format(o) for o in outputs),
                hit_limit_rate=statistics.fmean(map(float, hit_limit)))


def library_classifier_in_a_loop(outputs, hit_limit):
    good = cut = 0
    for reply, flag in zip(outputs, hit_limit):
        good += 1 if follows_house_format(reply) else 0
        cut += 1 if flag else 0
    return {"format_rate": good / len(outputs), "hit_limit_rate": cut / len(outputs), "n": len(outputs)}


def with_counter(outputs, hit_limit):
    tally = Counter(follows_house_format(o) for o in outputs)
    return {"format_rate": torch.tensor(tally[True] / len(outputs)), "hit_limit_rate": float(sum(hit_limit)) / len(outputs)}


SCORES_RIGHT = [
    ("house_format_rate and list.count", with_library_rate),
    ("statistics.mean", with_statistics),
    ("a loop with the library classifier", library_classifier_in_a_loop),
    ("Counter, a tensor result", with_counter),
]


@pytest.mark.parametrize("name, student, words", SCORES_WRONG, ids=[w[0] for w in SCORES_WRONG])
def test_wrong_behaviour_scores_is_named(name, student, words):
    with pytest.raises(TodoCheckError) as err:
        check_behaviour_scores(student)
    assert words in str(err.value) and "Fix:" in str(err.value), str(err.value)


@pytest.mark.parametrize("name, student", SCORES_RIGHT, ids=[r[0] for r in SCORES_RIGHT])
def test_right_behaviour_scores_is_accepted(name, student, capsys):
    check_behaviour_scores(student)
    assert capsys.readouterr().out.startswith("✓ behaviour_scores gives the format and hit-limit shares")


def test_the_probes_are_near_misses_of_the_real_classifier():
    from labhelpers.checks.nb09_before_after import FORMAT_PROBES

    assert [follows_house_format(text) for text, _, _ in FORMAT_PROBES] == [truth for _, truth, _ in FORMAT_PROBES]


def test_behaviour_scores_check_cost():
    start = time.perf_counter()
    check_behaviour_scores(with_library_rate)
    assert time.perf_counter() - start < 1


# ------------------------------------------------------------------------------------------ reply_loss: wrong
def _span(tokenizer, prompt, reply):
    user = [{"role": "user", "content": prompt}]
    head = tokenizer.apply_chat_template(user, add_generation_prompt=True, return_dict=True)["input_ids"]
    full = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": reply}], return_dict=True)["input_ids"]
    return list(head), list(full)


def whole_chat_labels(model, tokenizer, prompt, reply):
    _, full = _span(tokenizer, prompt, reply)
    ids = torch.tensor([full])
    with torch.no_grad():
        return model(input_ids=ids, labels=ids).loss.item()


def header_scored(model, tokenizer, prompt, reply):
    user = [{"role": "user", "content": prompt}]
    head = tokenizer.apply_chat_template(user, return_dict=True)["input_ids"]  # no generation prompt
    _, full = _span(tokenizer, prompt, reply)
    end = full.index(tokenizer.convert_tokens_to_ids("<|im_end|>"), len(head)) + 1
    labels = torch.tensor([full[:end]])
    labels[0, :len(head)] = -100
    with torch.no_grad():
        return model(input_ids=torch.tensor([full[:end]]), labels=labels).loss.item()


def perplexity(model, tokenizer, prompt, reply):
    head, full = _span(tokenizer, prompt, reply)
    end = full.index(tokenizer.eos_token_id, len(head)) + 1
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([full[:end]])).logits[0, :-1]
    return math.exp(F.cross_entropy(logits[len(head) - 1:], torch.tensor(full[len(head):end])).item())


def off_by_one(model, tokenizer, prompt, reply):
    head, full = _span(tokenizer, prompt, reply)
    end = full.index(tokenizer.eos_token_id, len(head)) + 1
    ids = torch.tensor([full[:end]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0]
    return F.cross_entropy(logits[len(head):end - 1], ids[0, len(head) + 1:end]).item()


def log_likelihood(model, tokenizer, prompt, reply):
    head, full = _span(tokenizer, prompt, reply)
    end = full.index(tokenizer.eos_token_id, len(head)) + 1
    ids = torch.tensor([full[:end]])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1], dim=-1)
    return logp[len(head) - 1:].gather(1, ids[0, len(head):, None]).mean().item()


def hand_written_chatml(model, tokenizer, prompt, reply):
    head = f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"
    n = len(tokenizer(head, add_special_tokens=False).input_ids)
    ids = tokenizer(head + reply + "<|im_end|>", add_special_tokens=False, return_tensors="pt").input_ids
    labels = ids.clone()
    labels[:, :n] = -100
    with torch.no_grad():
        return model(input_ids=ids, labels=labels).loss.item()


def summed_labels(model, tokenizer, prompt, reply):
    head, full = _span(tokenizer, prompt, reply)
    end = full.index(tokenizer.eos_token_id, len(head)) + 1
    ids = torch.tensor([full[:end]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0]
    return F.cross_entropy(logits[len(head) - 1:end - 1], ids[0, len(head):end], reduction="sum").item()


def index_on_a_tensor(model, tokenizer, prompt, reply):  # raises: a tensor's .index is not a list's
    enc = tokenizer.apply_chat_template([{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}],
                                        return_tensors="pt", return_dict=True)
    end = enc["input_ids"][0].index(tokenizer.eos_token_id)
    return float(end)


REPLY_LOSS_WRONG = [
    ("labels=input_ids over the whole chat", whole_chat_labels, "the loss of the whole chat, as labels=input_ids"),
    ("assistant header scored", header_scored, "assistant header <|im_start|>assistant\\n included"),
    ("perplexity", perplexity, "that is the perplexity, exp(loss)"),
    ("first reply token skipped", off_by_one, "the reply's first token left out"),
    ("log-likelihood", log_likelihood, "the sign is flipped"),
    ("hand-written ChatML without the system turn", hand_written_chatml, "without the system turn"),
    ("summed", summed_labels, "summed, not averaged"),
    ("a tensor's .index", index_on_a_tensor, "reply_loss raised TypeError"),
]


# ------------------------------------------------------------------------------------------ reply_loss: right
def masked_labels(model, tokenizer, prompt, reply):
    """labels = ids with -100 on the prompt; the Trainer-style loss shifts by itself."""
    head, full = _span(tokenizer, prompt, reply)
    stop = full.index(tokenizer.eos_token_id, len(head))
    input_ids = torch.tensor(full[:stop + 1], device=model.device).unsqueeze(0)
    labels = input_ids.clone()
    labels[0, :len(head)] = -100
    with torch.no_grad():
        out = model(input_ids=input_ids, labels=labels)
    return out.loss


def gathered_log_probs(model, tokenizer, prompt, reply):
    """log_softmax and gather, summed and divided by hand; the whole chat goes in, the reply is sliced out."""
    head, full = _span(tokenizer, prompt, reply)
    ids = torch.tensor([full])
    with torch.inference_mode():
        log_probs = model(ids).logits.float().log_softmax(-1)[0]
    stop = full.index(tokenizer.convert_tokens_to_ids("<|im_end|>"), len(head))
    targets = range(len(head), stop + 1)
    total = -sum(log_probs[t - 1, full[t]].item() for t in targets)
    return total / len(targets)


def tokenized_text(model, tokenizer, prompt, reply):
    """Rendered text tokenized as a string, the reply found by the prompt's token count."""
    user = [{"role": "user", "content": prompt}]
    prompt_text = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    n_prompt = len(tokenizer(prompt_text, add_special_tokens=False)["input_ids"])
    text = prompt_text + reply + "<|im_end|>"
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"].to(model.device)
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    shift_logits, shift_labels = logits[0, n_prompt - 1:-1], ids[0, n_prompt:]
    return float(torch.nn.CrossEntropyLoss()(shift_logits, shift_labels))


REPLY_LOSS_RIGHT = [
    ("labels with -100 on the prompt", masked_labels),
    ("log_softmax and gather", gathered_log_probs),
    ("rendered text tokenized", tokenized_text),
]


@pytest.mark.slow
@pytest.mark.parametrize("name, student, words", REPLY_LOSS_WRONG, ids=[w[0] for w in REPLY_LOSS_WRONG])
def test_wrong_reply_loss_is_named(model_and_tokenizer, name, student, words):
    model, tokenizer = model_and_tokenizer
    with pytest.raises(TodoCheckError) as err:
        check_reply_loss(student, model, tokenizer)
    assert words in str(err.value) and "Fix:" in str(err.value), str(err.value)
    assert "none of the usual mistakes" not in str(err.value)


@pytest.mark.slow
@pytest.mark.parametrize("name, student", REPLY_LOSS_RIGHT, ids=[r[0] for r in REPLY_LOSS_RIGHT])
def test_right_reply_loss_is_accepted(model_and_tokenizer, name, student, capsys):
    model, tokenizer = model_and_tokenizer
    check_reply_loss(student, model, tokenizer)
    assert capsys.readouterr().out.startswith("✓ your reply loss equals the teacher-forced reply NLL")


@pytest.mark.slow
def test_reply_loss_check_cost(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    start = time.perf_counter()
    check_reply_loss(masked_labels, model, tokenizer)
    seconds = time.perf_counter() - start
    print(f"check_reply_loss: {seconds:.1f} s")
    assert seconds < 30  # ~1-2 s on an idle 2-core CPU; room for a loaded CI machine


# ------------------------------------------------------------------------------------ how a failure looks in Jupyter
def test_a_check_failure_is_one_clean_line_in_ipython():
    """A TodoCheckError shows as its message only (mistake and fix), no traceback: IPython, in a fresh process."""
    import subprocess
    import sys

    cell = ("from labhelpers.checks import check_behaviour_scores\n"
            "check_behaviour_scores(lambda outputs, hit: {'format_rate': 0.0, 'hit_limit_rate': 100 * sum(hit) / len(hit)})")
    script = f"from IPython.core.interactiveshell import InteractiveShell\nInteractiveShell.instance().run_cell({cell!r})\n"
    shown = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    lines = [line for line in (shown.stdout + shown.stderr).splitlines() if line.strip()]
    assert lines == ["TodoCheckError: hit_limit_rate is 20 for 1 cut (hit_limit True) of 5 replies, expected 0.2: a "
                     "percentage. Fix: return the fraction (count / number of outputs); the notebook formats it as a %"], lines
