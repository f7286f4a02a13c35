"""Load + validate cost of a ~50 MB local file per format: must take seconds, not minutes.

Generates the files in a temp folder (messages JSONL, ShareGPT JSONL, Alpaca JSON array, messages Parquet), then
times ``load_rows`` (read, detect, convert, validate: what the sanity CLI does) and ``load_chat_dataset`` (that plus
Arrow and the train/test split: what the notebooks do). Run: ``python -m benchmarks.data_formats``.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path

from benchmarks.report import format_table, save_json

TARGET_MB = 50  # size of each generated file
GOAL_S = 10.0  # load + validate of one 50 MB file, on the 2-core CPU
_WORDS = ("the model learns to answer in the house format with a short list and a confidence line "
          "scales chords rhythm tempo harmony melody practice metronome beat note pitch").split()


def _text(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n_words))


def conversation(rng: random.Random) -> list[dict[str, str]]:
    """One synthetic conversation: optional system, 1-3 user/assistant turns (about 1-2 KB)."""
    msgs = [{"role": "system", "content": _text(rng, 12)}] if rng.random() < 0.25 else []
    for _ in range(rng.choice((1, 1, 2, 3))):
        msgs += [{"role": "user", "content": _text(rng, rng.randint(10, 120))},
                 {"role": "assistant", "content": _text(rng, rng.randint(20, 200))}]
    return msgs


def _sharegpt(msgs: list[dict[str, str]]) -> dict:
    names = {"system": "system", "user": "human", "assistant": "gpt"}
    return {"conversations": [{"from": names[m["role"]], "value": m["content"]} for m in msgs]}


def _alpaca(msgs: list[dict[str, str]]) -> dict:
    return {"instruction": msgs[-2]["content"], "input": "", "output": msgs[-1]["content"]}


def write_files(folder: Path, target_mb: float = TARGET_MB, seed: int = 0) -> dict[str, Path]:
    """Write one ~``target_mb`` file per format into ``folder``; return {label: path}."""
    rng = random.Random(seed)
    convs = []
    size = 0
    while size < target_mb * 1e6:
        convs.append(conversation(rng))
        size += len(json.dumps({"messages": convs[-1]})) + 1
    files = {"messages .jsonl": folder / "messages.jsonl", "ShareGPT .jsonl": folder / "sharegpt.jsonl",
             "Alpaca .json (array)": folder / "alpaca.json", "messages .parquet": folder / "messages.parquet"}
    files["messages .jsonl"].write_text("".join(json.dumps({"messages": c}) + "\n" for c in convs), encoding="utf-8")
    files["ShareGPT .jsonl"].write_text("".join(json.dumps(_sharegpt(c)) + "\n" for c in convs), encoding="utf-8")
    alpaca, size = [], 0
    for c in convs:  # single-turn rows are smaller: repeat until the same size
        alpaca.append(_alpaca(c))
        size += len(json.dumps(alpaca[-1]))
    while size < target_mb * 1e6:
        alpaca.append(_alpaca(conversation(rng)))
        size += len(json.dumps(alpaca[-1]))
    files["Alpaca .json (array)"].write_text(json.dumps(alpaca), encoding="utf-8")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"messages": c} for c in convs]), files["messages .parquet"])
    return files


def main() -> dict:
    from labhelpers.data.datasets import load_chat_dataset, load_rows

    rows_out, figures = [], {}
    with tempfile.TemporaryDirectory(prefix="data-formats-") as tmp:
        files = write_files(Path(tmp))
        for label, path in files.items():
            mb = path.stat().st_size / 1e6  # the Parquet file holds the same rows as the 50 MB JSONL, compressed
            start = time.perf_counter()
            rows, report = load_rows(path)
            rows_s = time.perf_counter() - start
            del rows
            start = time.perf_counter()
            loaded = load_chat_dataset(str(path))
            dataset_s = time.perf_counter() - start
            n = len(loaded["train"]) + len(loaded["test"])
            del loaded
            rows_out.append([label, f"{mb:.0f}", f"{n:,}", round(rows_s, 2), round(dataset_s, 2), f"<= {GOAL_S:.0f} s",
                             dataset_s <= GOAL_S])
            figures[label] = {"mb": mb, "rows": n, "load_rows_s": rows_s, "load_chat_dataset_s": dataset_s,
                              "report": str(report)}
    print(format_table(["file", "MB", "rows", "load_rows s", "load_chat_dataset s", "goal", "meets"], rows_out))
    save_json("data_formats", figures)
    return figures


if __name__ == "__main__":
    main()
