"""Write the bundled sft-lab chat dataset: ``python -m tools.generate_data``.

The rows copy the schema of ``HuggingFaceH4/no_robots`` (prompt, prompt_id, messages, category) so the
notebooks run unchanged offline. Every assistant turn uses the lab's *house format*, a behaviour the base
model does not show by itself, so a short SFT run has something visible to learn:

    Answer: <one sentence>
    - <bullet>
    - <bullet>
    - <bullet>
    Confidence: high|medium|low

All text is written by hand (``knowledge_base.txt`` beside this file, plus the templates below); a seeded
``random.Random`` picks and combines it, so re-running gives byte-identical files. No network, no tokenizer.

``--style natural`` writes the same prompts with *natural* replies instead (``natural_reply``: prose, short answers,
numbered steps, asides, varied lengths; never the house format) to ``bundled_data/natural/``: the offline stand-in for
the real ``HuggingFaceH4/no_robots``, whose replies carry no house format either. It proves the real-data path:
the series runs on it and notebook 09 reports measures that need no format (reply loss, cut replies, length).
The last topic of each domain is held out: it appears only in ``test.jsonl`` (see ``HELD_OUT_TOPICS``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

SEED = 1440  # the printing press; any fixed number works
N_TRAIN = 720  # rows in train.jsonl
N_TEST = 120  # rows in test.jsonl
SYSTEM_SHARE = 0.25  # share of rows that open with a system prompt
MULTI_TURN_SHARE = 0.25  # share of rows with 2-3 user/assistant exchanges
HELD_OUT_SHARE_OF_TEST = 0.5  # share of test rows about topics never seen in train
OUT_DIR = Path(__file__).resolve().parents[1] / "labhelpers" / "bundled_data"
STYLES = {"house": OUT_DIR, "natural": OUT_DIR / "natural"}  # reply style -> where its files go

# rows per category; test is train / 6
CATEGORY_COUNTS = {
    "Generation": 110, "Open QA": 110, "Brainstorm": 80, "Chat": 70, "Rewrite": 60,
    "Summarize": 70, "Coding": 40, "Classify": 55, "Closed QA": 70, "Extract": 55,
}
TEST_CATEGORY_COUNTS = {
    "Generation": 18, "Open QA": 18, "Brainstorm": 13, "Chat": 12, "Rewrite": 10,
    "Summarize": 12, "Coding": 7, "Classify": 9, "Closed QA": 12, "Extract": 9,
}

# Knowledge base (tools/knowledge_base.txt, its format in its first lines): topics with their answer, facts, tip and
# pitfall, written once; the templates below combine them into prompts and replies.
KNOWLEDGE_FILE = Path(__file__).resolve().parent / "knowledge_base.txt"
KNOWLEDGE = KNOWLEDGE_FILE.read_text(encoding="utf-8")


@dataclass(frozen=True)
class Topic:
    """One knowledge-base entry; ``domain`` is e.g. "cooking"."""

    key: str
    domain: str
    subject: str  # noun phrase that fits "Tell me about {subject}."
    confidence: str  # high | medium | low
    answer: str
    facts: tuple[str, ...]
    tip: str
    pitfall: str


def parse_knowledge(text: str = KNOWLEDGE) -> tuple[list[Topic], dict[str, str]]:
    """Parse ``KNOWLEDGE`` into topics and a domain -> description map."""
    topics: list[Topic] = []
    domains: dict[str, str] = {}
    domain = ""
    current: dict = {}

    def flush() -> None:
        if current:
            topics.append(Topic(current["key"], domain, current["subject"], current["confidence"], current["A"],
                                tuple(current["F"]), current["T"], current["P"]))
            current.clear()

    for line in text.strip().splitlines():
        if line.startswith("# "):
            continue
        if line.startswith("## "):
            flush()
            domain, description = (part.strip() for part in line[3:].split("|"))
            domains[domain] = description
        elif line[:3] in ("A: ", "T: ", "P: "):
            current[line[0]] = line[3:]
        elif line.startswith("F: "):
            current.setdefault("F", []).append(line[3:])
        else:
            flush()
            key, subject, confidence = (part.strip() for part in line.split("|"))
            current.update(key=key, subject=subject, confidence=confidence)
    flush()
    return topics, domains


TOPICS, DOMAINS = parse_knowledge()
# the last topic of each domain never appears in train
HELD_OUT_TOPICS = tuple(t.key for i, t in enumerate(TOPICS) if i + 1 == len(TOPICS) or TOPICS[i + 1].domain != t.domain)

SYSTEM_PROMPTS = [
    "You are a helpful assistant.",
    "You are a concise assistant for a community library help desk.",
    "You are a friendly tutor who explains things to curious adults.",
    "You help busy people get to the point quickly.",
    "You are an assistant for a small evening-class college. Keep answers practical.",
    "You are a patient helper for people who are new to a subject.",
    "You answer questions for the staff newsletter of a regional hospital.",
    "You are a calm, precise assistant. Avoid jargon.",
    "You are the help bot of a hobby forum. Be warm but brief.",
    "You are an assistant that writes for a general audience.",
    "You support volunteers at a neighbourhood centre with clear, short answers.",
    "You are a study buddy for a student revising for exams.",
    "Act as a knowledgeable friend who keeps things simple.",
    "You are an assistant for a travelling teacher who needs quick, reliable notes.",
]

OPEN_QA = [
    "Can you explain {s}?", "Tell me about {s}.", "What should I know about {s}?",
    "I keep hearing about {s}. What's the short version?", "Explain {s} in simple terms.",
    "Give me a quick overview of {s}.", "How would you describe {s} to a beginner?",
    "What is the main idea behind {s}?", "I'm new to {d}. What's the key point about {s}?",
    "Could you help me understand {s}?",
]
AUDIENCES = ["school newsletter", "team wiki", "community notice board", "curious cousin", "evening class handout",
             "family group chat", "club website", "new volunteers", "blog readers", "work lunch-and-learn"]
GENERATION = [
    "Write a short explainer on {s} for my {a}.", "Draft a note about {s} for the {a}.",
    "Create a quick fact sheet about {s} for the {a}.", "Write a brief intro to {s} that I can share with the {a}.",
    "Put together a short piece on {s} for the {a}.", "Compose a few lines about {s} for the {a}.",
]
BRAINSTORM = [
    "Brainstorm some practical ways to put {s} to use.", "Give me ideas for teaching {s} to a friend.",
    "What are some ways to get started with {s}?", "Brainstorm tips for someone learning about {s}.",
    "I want to run a short workshop on {s}. Any ideas for what to cover?",
    "List some ideas that would help a beginner with {s}.", "Help me brainstorm talking points about {s}.",
    "What could I try this weekend related to {s}?",
]
CHAT = [
    "hey! I was reading about {s} today and got a bit lost, can you help?",
    "Quick question while I make coffee: what's the deal with {s}?",
    "Hi there. My friend keeps going on about {s} and I just nod along. Help me out?",
    "So I have a random question about {s}.", "Good morning! Can we talk about {s} for a minute?",
    "ok this might be a silly question but what's up with {s}?",
    "I'm bored on the train. Teach me something about {s}?",
    "Hello! My kid asked me about {s} and I had no idea. What do I tell them?",
]
REWRITE = [
    "Rewrite this so it sounds clearer and more professional:\n\n{x}",
    "Can you clean up this messy note?\n\n{x}", "Please rewrite the following in plain, tidy English:\n\n{x}",
    "Tidy up my draft, it rambles:\n\n{x}", "Make this paragraph easier to read:\n\n{x}",
]
REWRITE_FILLERS = ["ok so here goes.", "anyway.", "i mean, you know what i mean.", "not sure how to say this.",
                   "right, where was i.", "this is the important bit."]
REWRITE_NOTES = [
    "Removed filler phrases and casual asides.", "Restored capital letters and full sentences.",
    "Put the main point first.", "Cut repetition so each idea appears once.",
    "Kept the tone neutral and plain.", "Dropped the rambling opening.",
]
SUMMARIZE = [
    "Summarize the following text in a few points:\n\n{x}", "Can you give me the gist of this?\n\n{x}",
    "Summarize this article for a busy reader.\n\n{x}", "TL;DR please:\n\n{x}",
    "Here is a passage from a handout. Summarize it.\n\n{x}",
]
CLOSED_QA = [
    ("Based on the passage below, what is the main point about {s}?\n\n{x}", "answer"),
    ("Read this and tell me what mistake it warns about.\n\n{x}", "pitfall"),
    ("{x}\n\nAccording to the text, what practical advice is given?", "tip"),
    ("{x}\n\nUsing only the text above, what does it say about {s}?", "answer"),
    ("Answer from the passage only: what common error is mentioned?\n\n{x}", "pitfall"),
    ("What does this passage recommend doing?\n\n{x}", "tip"),
]
EXTRACT = [
    ("Extract the key facts about {s} from this text.\n\n{x}", "facts"),
    ("Pull out the practical tip from this article.\n\n{x}", "tip"),
    ("{x}\n\nList the main facts stated above.", "facts"),
    ("From the text below, extract the warning it gives.\n\n{x}", "pitfall"),
    ("Extract the most useful facts from this passage for a quick reference card.\n\n{x}", "facts"),
]
CODING = [
    "I'm learning Python. Can you explain {s}?", "How do I avoid bugs related to {s}?",
    "What's a good habit when working with {s}?", "Explain {s} like I'm a junior developer.",
    "In code review someone mentioned {s}. What should I know?", "Quick refresher on {s}, please.",
    "What trips people up with {s}?", "I have an interview tomorrow. Summarize {s} for me.",
    "What is the one thing to remember about {s}?", "Give me the essentials of {s} for my team's onboarding doc.",
]
CLASSIFY = [
    "Which topic area does this question belong to: {opts}?\n\nQuestion: {q}",
    "Classify the following question into one of these areas: {opts}.\n\n\"{q}\"",
    "Sort this question into a category ({opts}):\n{q}",
    "Label the area of this question. Options: {opts}.\n\n{q}",
]
PASSAGE_OPENERS = [
    "This handout gives a short introduction to {s}.", "The following notes cover {s}.",
    "Here is what a beginner's course says about {s}.", "Our reading group looked at {s} this week.",
    "The guide below is about {s}.",
]
PASSAGE_FILLERS = [
    "Teachers who cover {s} often start with an everyday example.",
    "Questions about {s} come up again and again in beginner classes.",
    "It helps to separate what is well established from what is still debated.",
    "Readers new to {d} often find this part surprising.",
    "The details vary from place to place, but the main idea holds.",
    "A little background makes the rest of the topic easier to follow.",
    "Most people pick this up through practice rather than reading.",
    "Experts tend to agree on the basics even when they disagree on the finer points.",
    "Small changes in habit can make a noticeable difference over time.",
    "It is worth reading more than one source before making a decision.",
    "Many of these points are easy to check for yourself.",
    "The same ideas turn up in other parts of {d} as well.",
    "Some of this may sound obvious, but it is often overlooked.",
    "Good explanations of {s} usually rely on simple pictures or diagrams.",
    "There is more to say, but these are the parts people use most.",
    "Local guides and classes can fill in the specifics.",
    "Related topics in {d} are covered elsewhere in the series.",
    "A short summary at the end of each section helps the ideas stick.",
]
PASSAGE_CLOSERS = ["That is the core of the topic.", "The next section builds on these points.",
                   "Those are the essentials to remember.", "Further reading is listed at the end of the handout."]
FOLLOW_UPS = {
    "tip": ["Any practical tip?", "How can I use this in everyday life?", "What would you suggest I try first?",
            "Is there something simple I can do with this?"],
    "pitfall": ["What do people usually get wrong about this?", "Is there a common mistake I should avoid?",
                "What's the biggest misconception here?", "Anything I should watch out for?"],
    "recap": ["Can you sum that up in one line?", "So what's the main takeaway?", "Give me the short version again?",
              "If I remember one thing, what should it be?"],
}


def house(answer: str, bullets: list[str], confidence: str) -> str:
    """Assemble one assistant turn in the house format (no trailing newline)."""
    assert len(bullets) == 3 and confidence in ("high", "medium", "low"), (bullets, confidence)
    lines = [f"Answer: {answer}", *(f"- {b}" for b in bullets), f"Confidence: {confidence}"]
    return "\n".join(lines)


def house_reply(rng: random.Random, answer: str, bullets: list[str], confidence: str) -> str:
    """The house-format reply (``rng`` unused: the house files stay byte-identical)."""
    return house(answer, bullets, confidence)


NATURAL_OPENERS = ("", "", "", "Sure! ", "Good question. ", "Happy to help. ", "Great question! ", "Of course. ")
NATURAL_HEDGES = {"high": ("",), "medium": ("", "As far as I know, ", "Generally speaking, "),
                  "low": ("I'm not completely sure, but ", "This varies, but ", "Roughly speaking, ")}
NATURAL_LINKS = ("Also, ", "On top of that, ", "It also helps to know that ", "Another point: ", "", "")
NATURAL_CLOSERS = ("", "", "", "Hope that helps!", "Let me know if you'd like more detail.",
                   "Feel free to ask a follow-up question.")


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


def natural_reply(rng: random.Random, answer: str, bullets: list[str], confidence: str) -> str:
    """A natural reply from the same sentences: prose, a short answer, numbered points or an answer with asides.

    Never the house format (no ``Answer:`` line, no three ``- `` bullets, no ``Confidence:`` line); its length and
    shape vary the way human-written replies in no_robots do. Its choices come from a generator seeded by the reply's
    own sentences, not from ``rng``: the prompts stay exactly those of the house-format files.
    """
    rng = random.Random(hashlib.sha256("\n".join([answer, *bullets]).encode("utf-8")).digest())
    hedge = rng.choice(NATURAL_HEDGES[confidence])
    lead = rng.choice(NATURAL_OPENERS) + (hedge + _lower_first(answer) if hedge else answer)
    shape = rng.choice(("prose", "prose", "short", "numbered", "paragraphs"))
    if shape == "short":
        parts = [lead, rng.choice(bullets)]
    elif shape == "numbered":
        intro = rng.choice(("Here are the key points:", "A few things worth knowing:", "In more detail:"))
        parts = [lead + "\n\n" + intro + "\n" + "\n".join(f"{i}. {b}" for i, b in enumerate(bullets, 1))]
    else:
        links = [rng.choice(NATURAL_LINKS) for _ in bullets[1:]]
        body = " ".join([bullets[0], *((link + _lower_first(b)) if link else b for link, b in zip(links, bullets[1:]))])
        parts = [lead, body] if shape == "prose" else [lead + "\n\n" + body]
    closer = rng.choice(NATURAL_CLOSERS)
    return (" ".join(parts) if shape != "numbered" else parts[0]) + (("\n\n" + closer) if closer else "")


REPLY_STYLES = {"house": house_reply, "natural": natural_reply}


def passage(rng: random.Random, topic: Topic, pool: list[Topic]) -> str:
    """Compose a 120-340 word passage about ``topic`` from its sentences, same-domain neighbours and fillers."""
    target = rng.randint(120, 320)
    fill = {"s": topic.subject, "d": topic.domain}
    own = [topic.answer, *topic.facts, topic.tip, topic.pitfall]
    neighbours = [t for t in pool if t.domain == topic.domain and t.key != topic.key]
    extra = [s for t in neighbours for s in (t.answer, *t.facts)]
    rng.shuffle(extra)
    fillers = [f.format(**fill) for f in PASSAGE_FILLERS]
    rng.shuffle(fillers)
    body = own[:]
    while sum(len(s.split()) for s in body) < target - 15 and (extra or fillers):
        source = extra if extra and (not fillers or rng.random() < 0.6) else fillers
        body.insert(rng.randint(1, len(body)), source.pop())
    sentences = [rng.choice(PASSAGE_OPENERS).format(**fill), *body, rng.choice(PASSAGE_CLOSERS)]
    paragraphs, i = [], 0
    while i < len(sentences):
        size = rng.randint(3, 6)
        paragraphs.append(" ".join(sentences[i:i + size]))
        i += size
    return "\n\n".join(paragraphs)


def messy_note(rng: random.Random, topic: Topic) -> str:
    """A rambling lower-case draft of the topic's answer and two facts, for Rewrite rows."""
    parts = [topic.answer, *rng.sample(topic.facts, 2)]
    out = []
    for part in parts:
        out.append(part.lower().rstrip("."))
        if rng.random() < 0.7:
            out.append(rng.choice(REWRITE_FILLERS).rstrip("."))
    return ", ".join(out) + "..."


def first_turn(rng: random.Random, category: str, topic: Topic, pool: list[Topic],
               reply: Callable[..., str] = house_reply) -> tuple[str, str]:
    """The first (user, assistant) pair for a row of ``category`` about ``topic``, the reply in ``reply``'s style."""
    s, d, conf = topic.subject, topic.domain, topic.confidence

    def say(answer: str, bullets: list[str], confidence: str) -> str:
        return reply(rng, answer, bullets, confidence)

    facts = rng.sample(topic.facts, 3)
    if category == "Open QA":
        return rng.choice(OPEN_QA).format(s=s, d=d), say(topic.answer, facts, conf)
    if category == "Generation":
        user = rng.choice(GENERATION).format(s=s, a=rng.choice(AUDIENCES))
        return user, say(topic.answer, facts, conf)
    if category == "Brainstorm":
        bullets = [topic.tip, f"Watch out: {topic.pitfall}", f"Start from one fact: {facts[0]}"]
        return rng.choice(BRAINSTORM).format(s=s), say(f"Here are three ideas for getting to grips with {s}.", bullets, "medium")
    if category == "Chat":
        return rng.choice(CHAT).format(s=s), say(topic.answer, facts, conf)
    if category == "Coding":
        user = rng.choice(CODING).format(s=s)
        answer = topic.pitfall if ("bugs" in user or "trips" in user) else topic.answer
        return user, say(answer, facts, conf)
    if category == "Rewrite":
        user = rng.choice(REWRITE).format(x=messy_note(rng, topic))
        notes = rng.sample(REWRITE_NOTES, 2)
        return user, say(topic.answer, [*notes, f"Kept the key detail: {facts[0]}"], "high")
    if category == "Classify":
        others = rng.sample([x for x in DOMAINS if x != d], 3)
        options = [d, *others]
        rng.shuffle(options)
        question = rng.choice(OPEN_QA).format(s=s, d="this")
        user = rng.choice(CLASSIFY).format(opts=", ".join(options), q=question)
        bullets = [f"It asks about {s}.", f"That is part of {d}, which covers {DOMAINS[d]}.",
                   f"It is not {others[0]}, which covers {DOMAINS[others[0]]}."]
        return user, say(f"This question belongs to {d}.", bullets, "high" if conf != "low" else "medium")
    text = passage(rng, topic, pool)
    if category == "Summarize":
        return rng.choice(SUMMARIZE).format(x=text), say(topic.answer, facts, "high")
    if category == "Closed QA":
        template, asks = rng.choice(CLOSED_QA)
        answer = {"answer": topic.answer, "pitfall": topic.pitfall, "tip": topic.tip}[asks]
        return template.format(s=s, x=text), say(answer, facts, "high")
    if category == "Extract":
        template, asks = rng.choice(EXTRACT)
        answer = {"facts": f"The text states these key facts about {s}.", "pitfall": topic.pitfall, "tip": topic.tip}[asks]
        return template.format(s=s, x=text), say(answer, facts, "high")
    raise ValueError(f"unknown category {category!r}; add it to CATEGORY_COUNTS and first_turn")


def follow_up(rng: random.Random, kind: str, topic: Topic, reply: Callable[..., str] = house_reply) -> tuple[str, str]:
    """A later (user, assistant) pair: ask for a tip, a pitfall or a recap of ``topic``."""
    facts = rng.sample(topic.facts, 3)

    def say(answer: str, bullets: list[str], confidence: str) -> str:
        return reply(rng, answer, bullets, confidence)

    user = rng.choice(FOLLOW_UPS[kind])
    if kind == "tip":
        return user, say(topic.tip, facts, topic.confidence)
    if kind == "pitfall":
        return user, say(topic.pitfall, facts, topic.confidence)
    return user, say(topic.answer, [topic.tip, f"Avoid this: {topic.pitfall}", facts[0]], topic.confidence)


def prompt_id(prompt: str, split: str, index: int) -> str:
    """sha256 hex of the prompt plus a split/index disambiguator, like no_robots' 64-hex ids."""
    return hashlib.sha256(f"{prompt}\n#sft-lab/{split}/{index}".encode("utf-8")).hexdigest()


def build_split(rng: random.Random, split: str, counts: dict[str, int], topics: list[Topic],
                held_out: list[Topic], seen: set[str], reply: Callable[..., str] = house_reply) -> list[dict]:
    """Rows for one split; ``seen`` holds prompts already used (kept unique across splits)."""
    categories = [c for c, n in counts.items() for _ in range(n)]
    rng.shuffle(categories)
    rows = []
    for index, category in enumerate(categories):
        for _attempt in range(200):
            pool = held_out if held_out and rng.random() < HELD_OUT_SHARE_OF_TEST else topics
            if category == "Coding":
                pool = [t for t in pool if t.domain == "programming"] or [t for t in topics if t.domain == "programming"]
            topic = rng.choice(pool)
            user, answer = first_turn(rng, category, topic, topics + held_out, reply)
            if user not in seen:
                break
        else:
            raise RuntimeError(f"{split} row {index}: no unused prompt for {category}; add templates")
        seen.add(user)
        messages = []
        if rng.random() < SYSTEM_SHARE:
            messages.append({"content": rng.choice(SYSTEM_PROMPTS), "role": "system"})
        messages += [{"content": user, "role": "user"}, {"content": answer, "role": "assistant"}]
        if rng.random() < MULTI_TURN_SHARE:
            for kind in rng.sample(sorted(FOLLOW_UPS), rng.choice([1, 2])):
                question, later = follow_up(rng, kind, topic, reply)
                messages += [{"content": question, "role": "user"}, {"content": later, "role": "assistant"}]
        rows.append({"prompt": user, "prompt_id": prompt_id(user, split, index), "messages": messages,
                     "category": category})
    return rows


def build(seed: int = SEED, style: str = "house") -> dict[str, list[dict]]:
    """Both splits as lists of rows in a reply ``style`` (see :data:`REPLY_STYLES`); same seed, same rows."""
    reply = REPLY_STYLES[style]
    rng = random.Random(seed)
    train_topics = [t for t in TOPICS if t.key not in HELD_OUT_TOPICS]
    held_out = [t for t in TOPICS if t.key in HELD_OUT_TOPICS]
    seen: set[str] = set()
    train = build_split(rng, "train", CATEGORY_COUNTS, train_topics, [], seen, reply)
    test = build_split(rng, "test", TEST_CATEGORY_COUNTS, train_topics, held_out, seen, reply)
    return {"train": train, "test": test}


def write_jsonl(rows: list[dict], path: Path) -> None:
    """One JSON object per line, UTF-8, ``\\n`` line ends."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> None:
    """Write train.jsonl and test.jsonl (default: next to this file)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--style", choices=sorted(STYLES), default="house",
                        help="reply style: the house format (default) or natural replies (the no_robots stand-in)")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="folder for train.jsonl and test.jsonl (default: the style's bundled folder)")
    args = parser.parse_args(argv)
    args.out_dir = args.out_dir or STYLES[args.style]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for split, rows in build(style=args.style).items():
        write_jsonl(rows, args.out_dir / f"{split}.jsonl")
        print(f"wrote {len(rows)} rows to {args.out_dir / f'{split}.jsonl'}")


if __name__ == "__main__":
    main()
