"""``python -m labhelpers.sanity --data FILE.jsonl``: build the lab's SFTTrainer on that data and print the preflight.

Exit status: 0 no fail, 1 at least one fail, 2 bad input (missing file, bad JSON, no ``messages`` column).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


class InputError(ValueError):
    """The command line or the data file is unusable; the message says how to fix it."""


def read_rows(path: str) -> list[dict]:
    """Rows of a JSON-lines chat file; raises InputError naming the line and the fix."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--data {path}: no such file; pass a .jsonl file with a 'messages' column")
    rows = []
    for number, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{path} line {number}: not valid JSON ({err.msg}); write one JSON object per line") from None
        if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
            raise InputError(f"{path} line {number}: no 'messages' list; each row needs "
                             "{'messages': [{'role': ..., 'content': ...}, ...]}")
        rows.append({"messages": [{"role": m["role"], "content": m["content"]} for m in row["messages"]]})
    if not rows:
        raise InputError(f"{path}: no rows; add at least one conversation")
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m labhelpers.sanity", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="JSON-lines file with a 'messages' column")
    parser.add_argument("--model", default=None, help="hub id or local folder (default: the lab's SmolLM2-135M-Instruct)")
    parser.add_argument("--max-length", type=int, default=None, help="tokens per row (default: the recipe's)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: the recipe's)")
    parser.add_argument("--level", choices=("quick", "full"), default="quick")
    parser.add_argument("--packing", action="store_true", help="pack rows (bfd, padding-free)")
    parser.add_argument("--profile", default="ci", help="hardware recipe profile: ci, colab or full")
    args = parser.parse_args(argv)
    if args.max_length is not None and args.max_length < 8:
        parser.error("--max-length must be >= 8")
    if args.lr is not None and not args.lr > 0:
        parser.error("--lr must be > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        rows = read_rows(args.data)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from labhelpers.hardware import detect_recipe
    from labhelpers.models import DEFAULT_MODEL_ID, load_model_and_tokenizer
    from labhelpers.sanity.preflight import preflight
    from labhelpers.sanity.protocol import build_trainer

    recipe = detect_recipe(args.profile)
    try:
        model, tokenizer = load_model_and_tokenizer(args.model or DEFAULT_MODEL_ID, recipe, verbose=False)
    except (ValueError, OSError) as err:
        print(f"error: cannot load model {args.model or DEFAULT_MODEL_ID!r}: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    overrides = {"packing": args.packing}
    if args.max_length:
        overrides["max_length"] = args.max_length
    if args.lr:
        overrides["learning_rate"] = args.lr
    trainer = build_trainer(model, tokenizer, rows, recipe=recipe, **overrides)
    report = preflight(trainer, args.level, dataset=trainer.train_dataset if not args.packing else None)
    print(report)
    print("\nFirst training row ([...] = trained tokens):")
    from labhelpers.sanity.preflight import show_example

    print(show_example(trainer, tokenizer, html=False))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
