"""``python -m labhelpers.sanity --data FILE``: check a chat dataset and the lab's SFT setup on it, before training.

Reads and validates every row first (any format `labhelpers.data.datasets.load_rows` reads; torch is not imported yet, so a
bad file is refused in well under 2 s), then loads the model, runs `check_dataset` on all rows (token statistics on a
sample), builds the lab's SFTTrainer on a sample of rows and runs the preflight. Prints the verdict and the top fixes
first, then every finding, then sample rows with their trained tokens marked.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from labhelpers.base.batching import rows_per_step
from labhelpers.sanity.report import Finding, SanityReport

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2
PREFLIGHT_ROWS = 256  # train rows given to the trainer: TRL tokenizes every row it gets, and quick preflight reads 64 batches
PREFLIGHT_EVAL_ROWS = 64  # eval rows given to the trainer
PREFLIGHT_BATCH_TOKENS = 512  # preflight batch <= this many tokens: its loss-at-init forward stays ~5 s and ~0.3 GB on CPU
TOP_FIXES = 3  # fixes listed under the verdict
DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"  # labhelpers.model.loading.DEFAULT_MODEL_ID (not imported: keeps --help fast)
BLOCKING = ("chat_template", "conversation_format")  # dataset fails that make building a trainer pointless
# preflight checks on settings: the flags that set them (a warn/fail on a setting the user never chose is not shown as one)
SETTING_FLAGS = {
    "learning_rate": ("--lr",),
    "warmup": (),
    "epochs": ("--epochs", "--max-steps"),
    "steps_per_epoch": ("--batch-size", "--grad-accum"),
    "eval_split": ("--eval",),
    "rows_too_long": ("--max-length",),  # except when every row would be dropped: then nothing can train
}
# preflight findings replaced by check_dataset's (computed on every row or a larger sample, not the preflight sample)
REPLACED_BY_DATASET = ("truncation", "train_duplicates", "eval_overlap")
EPILOG = f"""\
exit status:
  0  no check failed (warnings allowed)
  1  at least one check failed: see the verdict and the fixes
  2  bad input: missing or unreadable file, bad rows (each listed with the fix), unknown --profile, bad flag
     values, a model that cannot be loaded. Never a traceback.

formats (detected from the keys; .jsonl, .json, .parquet or .csv):
  messages (OpenAI/HF chat), ShareGPT (conversations: from/value), Alpaca (instruction/input/output),
  TRL prompt/completion (conversational or plain). A lone 'text' column is refused (prompt and reply cannot be told
  apart). OpenAI 'weight': 0 replies are refused: TRL would train them.

defaults: settings you do not pass come from the hardware recipe (--profile, else $LAB_PROFILE, else ci on CPU /
colab on GPU) and are listed as assumed; checks of settings you did not choose are not reported as warnings.
Token statistics use a random sample of up to 2,000 rows and the preflight {PREFLIGHT_ROWS} rows (--seed).

example:
  python -m labhelpers.sanity --data my_chats.jsonl --max-length 1024 --lr 2e-5 --show 2
"""


class InputError(ValueError):
    """The command line or the data file is unusable; the message says how to fix it."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises InputError (one line, rc 2) instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(f"{message} (see python -m labhelpers.sanity --help)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value:g} must be > 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser (plain-text help with exit codes)."""
    p = _Parser(prog="python -m labhelpers.sanity", description=__doc__.splitlines()[0].split(": ", 1)[1],
                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, metavar="FILE", help="train rows: a file (.jsonl/.json/.parquet/.csv)")
    p.add_argument("--eval", metavar="FILE", help="eval rows, same formats (enables the eval checks)")
    p.add_argument("--model", help=f"hub id or local folder (default: {DEFAULT_MODEL}, offline copy when offline)")
    p.add_argument("--chat-template", metavar="FILE", help="a Jinja chat template file to use instead of the model's")
    p.add_argument("--profile", help="hardware recipe profile: ci, colab or full (default: $LAB_PROFILE, else ci on "
                                     "CPU / colab on GPU)")
    p.add_argument("--max-length", type=_positive_int, metavar="N", help="tokens per row (default: the recipe's)")
    p.add_argument("--batch-size", type=_positive_int, metavar="N", help="per-device train batch (default: the recipe's)")
    p.add_argument("--grad-accum", type=_positive_int, metavar="N", help="gradient accumulation steps (default: the recipe's)")
    p.add_argument("--lr", type=_positive_float, metavar="LR", help="peak learning rate (default: the recipe's)")
    run = p.add_mutually_exclusive_group()
    run.add_argument("--epochs", type=_positive_float, metavar="E", help="passes over the data (sets max_steps=-1)")
    run.add_argument("--max-steps", type=_positive_int, metavar="N", help="optimizer steps (default: the recipe's)")
    p.add_argument("--packing", action="store_true", help="pack rows (bfd, padding-free)")
    p.add_argument("--level", choices=("quick", "full"), default="quick", help="full adds two slower numerical checks")
    p.add_argument("--show", type=int, default=1, metavar="N", help="sample rows to print with trained tokens marked "
                                                                    "(default 1; 0 for none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the row samples (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return p


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parsed flags; InputError (rc 2) on bad ones."""
    args = build_parser().parse_args(argv)
    if args.max_length is not None and args.max_length < 8:
        raise InputError("--max-length must be >= 8 (a chat template alone needs more)")
    if args.lr is not None and not args.lr < 1:
        raise InputError(f"--lr {args.lr:g} must be < 1 (e.g. 2e-5 or 1e-4)")
    if args.show < 0:
        raise InputError("--show must be >= 0")
    return args


def _cli_message(err: Exception) -> str:
    """A data error's message with the API hint (validate="drop") replaced by what to do on the command line."""
    lines = [line for line in str(err).splitlines() if 'validate="drop"' not in line]
    if len(lines) > 1 and not lines[-1].startswith("Every row is invalid"):
        lines.append("Fix or drop the rows listed, then run again.")
    return "\n".join(lines)


def read_data(path: str, flag: str = "--data") -> tuple[list[dict], Any]:
    """``(messages rows, format report)`` of a data file, validated by labhelpers.data.datasets; InputError names the fix."""
    from labhelpers.data.datasets import ConversationFormatError, DatasetFileError, load_rows

    if not Path(path).is_file():
        what = "a folder" if Path(path).is_dir() else "no such file"
        raise InputError(f"{flag} {path}: {what}; pass one data file (.jsonl, .json, .parquet or .csv) with chat rows")
    try:
        rows, report = load_rows(path)
    except (DatasetFileError, ConversationFormatError) as err:
        raise InputError(_cli_message(err)) from None
    return rows, report  # other columns stay: check_dataset flags a leftover 'prompt'; build_trainer keeps only 'messages'


def read_rows(path: str) -> list[dict]:
    """Rows of a chat file in any supported format, as ``{"messages": [...]}``; raises InputError naming the row and fix."""
    return [{"messages": row["messages"]} for row in read_data(path)[0]]


# --------------------------------------------------------------------------------------------- the run
@dataclass
class Run:
    """Everything the output needs: verdict inputs, findings, notes and sample rows."""

    report: SanityReport
    data: str  # "file: format report"
    assumed: list[str] = field(default_factory=list)  # "--lr 0.0001 (recipe 'ci')"
    notes: list[str] = field(default_factory=list)  # sampling, skipped steps
    samples: list[str] = field(default_factory=list)  # rendered rows
    seconds: float = 0.0
    profile: str = ""  # the recipe profile the defaults came from


def _chosen(args: argparse.Namespace) -> set[str]:
    flags = {"--eval": args.eval, "--lr": args.lr, "--epochs": args.epochs, "--max-steps": args.max_steps,
             "--batch-size": args.batch_size, "--grad-accum": args.grad_accum, "--max-length": args.max_length}
    return {flag for flag, value in flags.items() if value is not None}


def size_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """RunSizes overrides for the flags given (``recipe.with_sizes(**...)``).

    >>> size_overrides(parse_args(["--data", "x", "--epochs", "2", "--batch-size", "8"]))
    {'per_device_train_batch_size': 8, 'num_train_epochs': 2.0, 'max_steps': -1}
    """
    sizes: dict[str, Any] = {}
    for flag, name in (("max_length", "max_length"), ("batch_size", "per_device_train_batch_size"),
                       ("grad_accum", "gradient_accumulation_steps"), ("lr", "learning_rate"),
                       ("epochs", "num_train_epochs"), ("max_steps", "max_steps")):
        if getattr(args, flag) is not None:
            sizes[name] = getattr(args, flag)
    if "num_train_epochs" in sizes:
        sizes["max_steps"] = -1  # the recipe's max_steps would end the run first
    return sizes


def assumed_defaults(args: argparse.Namespace, recipe: Any) -> list[str]:
    """The settings the user did not pass, with the value assumed and where it came from."""
    s = recipe.sizes
    where = f"recipe {recipe.profile!r}"
    out = []
    if args.model is None:
        out.append(f"--model {DEFAULT_MODEL}")
    if args.profile is None:
        out.append(f"--profile {recipe.profile} ({dict(recipe.reasons).get('profile', 'default')})")
    for flag, value in (("--max-length", s.max_length), ("--batch-size", s.per_device_train_batch_size),
                        ("--grad-accum", s.gradient_accumulation_steps), ("--lr", f"{s.learning_rate:g}")):
        if flag not in _chosen(args):
            out.append(f"{flag} {value} ({where})")
    if args.epochs is None and args.max_steps is None:
        out.append(f"--max-steps {s.max_steps} ({where})" if s.max_steps > 0 else f"--epochs {s.num_train_epochs:g} ({where})")
    if not args.packing:
        out.append("no --packing")
    if args.eval is None:
        out.append("no --eval (eval checks skipped)")
    return out


def soften_unchosen(findings: list[Finding], chosen: set[str], profile: str) -> list[Finding]:
    """Findings about settings the user never chose become passes that say so (the user did not pick that value).

    >>> f = soften_unchosen([Finding("learning_rate", "warn", "lr 1e-3 is high", "try 3e-4")], set(), "ci")[0]
    >>> f.status, f.message
    ('pass', "lr 1e-3 is high [recipe 'ci' default, not your setting; pass --lr to check yours; if you keep it: try 3e-4]")
    """
    out = []
    for f in findings:
        flags = SETTING_FLAGS.get(f.check)
        blocking = f.check == "rows_too_long" and f.message.startswith("all ")
        if flags is None or f.status == "pass" or blocking or any(flag in chosen for flag in flags):
            out.append(f)
            continue
        hint = f"; pass {' or '.join(flags)} to check yours" if flags else ""
        keep = f"; if you keep it: {f.fix}" if f.fix else ""
        out.append(Finding(f.check, "pass", f"{f.message} [recipe {profile!r} default, not your setting{hint}{keep}]", ""))
    return out


def preflight_batch(batch_size: int, max_length: int, level: str = "quick") -> int:
    """Rows per preflight batch: the user's batch, capped at PREFLIGHT_BATCH_TOKENS tokens (>= 2 at level full).

    >>> preflight_batch(4, 128), preflight_batch(4, 256), preflight_batch(4, 1024), preflight_batch(4, 2048, "full")
    (4, 2, 1, 2)
    """
    fits = max(1, PREFLIGHT_BATCH_TOKENS // max_length)
    return min(batch_size, max(fits, 2 if level == "full" else 1))


def _sample(rows: list[dict], n: int, seed: int) -> list[dict]:
    if len(rows) <= n:
        return rows
    picks = sorted(random.Random(seed).sample(range(len(rows)), n))
    return [rows[i] for i in picks]


def sample_rows(trainer: Any, tokenizer: Any, n: int, seed: int, packing: bool) -> tuple[list[str], int]:
    """``n`` random collated training examples rendered with ``[trained]`` brackets, and how many there were."""
    from labhelpers.sanity.preflight import collated_batches, conversation_start
    from labhelpers.views.display import IGNORE_INDEX, bracket_trained
    from labhelpers.sanity.tokens import examples_in_batch

    start = conversation_start(tokenizer) if packing else None
    examples = [ex for b in collated_batches(trainer, None) for ex in examples_in_batch(b, start)]
    picks = sorted(random.Random(seed).sample(range(len(examples)), min(n, len(examples))))
    out = []
    for i in picks:
        ids, labels = examples[i]
        pieces = [tokenizer.decode([t], skip_special_tokens=False) for t in ids]
        out.append(f"--- example {i} of {len(examples)} ({sum(lab != IGNORE_INDEX for lab in labels)} of {len(ids)} "
                   f"tokens trained) ---\n" + bracket_trained(pieces, [lab != IGNORE_INDEX for lab in labels]))
    return out, len(examples)


def _quiet_libraries() -> None:
    """No progress bars or info logs from datasets / transformers / TRL (the report is the output)."""
    import logging

    with contextlib.suppress(Exception):
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
    with contextlib.suppress(Exception):
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
    logging.getLogger("trl").setLevel(logging.ERROR)


def load_inputs(args: argparse.Namespace) -> dict[str, Any]:
    """Read and validate every input file before anything heavy is imported; InputError (rc 2) names the fix."""
    train, fmt = read_data(args.data, "--data")
    eval_rows = read_data(args.eval, "--eval")[0] if args.eval else None
    template = None
    if args.chat_template:
        try:
            template = Path(args.chat_template).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(f"--chat-template {args.chat_template}: cannot read it ({err}); pass a Jinja "
                             "template text file") from None
        if not template.strip():
            raise InputError(f"--chat-template {args.chat_template}: the file is empty; pass a Jinja chat template")
    return {"train": train, "data": f"{args.data} ({fmt})", "eval": eval_rows, "template": template}


def run_checks(args: argparse.Namespace, inputs: dict[str, Any]) -> Run:
    """Load the model, check the dataset, build the trainer on a sample and run the preflight (InputError -> rc 2).

    ``inputs`` (from `load_inputs`) is emptied: the rows are freed once sampled, before the preflight's peak.
    """
    import warnings

    with warnings.catch_warnings():  # library deprecation chatter is not part of the report
        warnings.simplefilter("ignore")
        run = _run_checks(args, inputs)
    run.report.findings = soften_unchosen(run.report.findings, _chosen(args), run.profile)
    return run


def _run_checks(args: argparse.Namespace, inputs: dict[str, Any]) -> Run:
    train, data_line, eval_rows, template = inputs.pop("train"), inputs["data"], inputs["eval"], inputs["template"]

    _quiet_libraries()
    from labhelpers.model.hardware import detect_recipe

    try:
        recipe = detect_recipe(args.profile)
    except ValueError as err:
        raise InputError(f"--profile: {err}") from None
    sizes = size_overrides(args)
    try:
        recipe = recipe.with_sizes(**sizes) if sizes else recipe
    except (ValueError, TypeError) as err:
        raise InputError(f"bad size flag: {err}") from None
    from labhelpers.model.loading import load_model_and_tokenizer

    model_id = args.model or DEFAULT_MODEL
    try:
        model, tokenizer = load_model_and_tokenizer(model_id, recipe, verbose=False)
    except Exception as err:  # OSError (not found), ValueError, TemplateError, HF errors: all bad input here
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"--model {model_id}: cannot load it ({first}); pass a hub id or a local model folder") from None
    if template is not None:
        tokenizer.chat_template = template

    from labhelpers.sanity.dataset import SAMPLE_ROWS, DataCheckConfig, check_dataset

    s = recipe.sizes
    config = DataCheckConfig(max_length=s.max_length, packing=args.packing, assistant_only_loss=True)
    report = check_dataset(train, tokenizer, config, eval_rows=eval_rows, sample_size=SAMPLE_ROWS, seed=args.seed)
    report.title = "sanity report"
    run = Run(report, data_line, assumed_defaults(args, recipe), profile=recipe.profile)
    n_tok = report.extras.get("sampled_rows", 0)
    if n_tok:
        run.notes.append(f"token statistics from {'all' if n_tok == len(train) else 'a random sample of'} {n_tok:,} of "
                         f"{len(train):,} rows (seed {args.seed})")
    blocking = [f.check for f in report.failed if f.check in BLOCKING]
    whole = report.by_check("rows_too_long")
    all_dropped = whole is not None and whole.status == "fail" and whole.message.startswith("all ")
    if blocking or all_dropped:
        why = f"{', '.join(blocking)} failed" if blocking else "TRL would drop every row at this max_length"
        run.notes.append(f"preflight skipped: {why} (fix that first; the trainer would not see a usable batch)")
        return run

    from labhelpers.sanity.preflight import _is_lora, _warmup, hyperparameter_findings, preflight
    from labhelpers.sanity.protocol import build_trainer

    train_sample = _sample(train, PREFLIGHT_ROWS, args.seed)
    n_train = len(train)
    del train  # free the full rows (they can be most of the memory) before the preflight's forward pass
    eval_sample = _sample(eval_rows, PREFLIGHT_EVAL_ROWS, args.seed) if eval_rows else None
    batch = preflight_batch(s.per_device_train_batch_size, s.max_length, args.level)
    inspect = recipe if batch == s.per_device_train_batch_size else recipe.with_sizes(
        per_device_train_batch_size=batch, per_device_eval_batch_size=min(batch, s.per_device_eval_batch_size))
    run.notes.append(f"preflight on {'all' if len(train_sample) == n_train else 'a random sample of'} "
                     f"{len(train_sample):,} train rows" + (f" and {len(eval_sample):,} eval rows" if eval_sample else "")
                     + " (TRL tokenizes every row the trainer gets)"
                     + (f", in batches of {batch} (<= {PREFLIGHT_BATCH_TOKENS} tokens, so the loss-at-init forward pass "
                        f"stays cheap on CPU; steps and epochs use your batch of {s.per_device_train_batch_size})"
                        if batch != s.per_device_train_batch_size else ""))
    try:
        trainer = build_trainer(model, tokenizer, train_sample, eval_sample, recipe=inspect, packing=args.packing)
    except Exception as err:  # TRL refuses the setup: report it as a failed check, not a traceback
        first = str(err).splitlines()[0] if str(err) else ""
        report.extend([Finding("trainer_build", "fail", f"SFTTrainer could not be built: {type(err).__name__}: {first[:300]}",
                               "fix the setting or data named in the error (see the dataset findings above)")])
        return run
    from datasets import Dataset

    try:
        pre = preflight(trainer, args.level, dataset=None if args.packing else Dataset.from_list(train_sample))
    except Exception as err:
        first = str(err).splitlines()[0] if str(err) else ""
        report.extend([Finding("preflight", "fail", f"preflight stopped: {type(err).__name__}: {first[:300]}",
                               "fix the problem named in the error; rerun with --level quick")])
        return run
    findings = [f for f in pre.findings if f.check not in REPLACED_BY_DATASET]
    dropped = report.extras.get("dropped_share", 0.0)
    n_kept = max(1, round(n_train * (1 - dropped)))
    eff = rows_per_step(s)
    n_params = sum(p.numel() for p in model.parameters())
    hyper = hyperparameter_findings(s.learning_rate, _warmup(trainer.args), _is_lora(model), n_params, n_kept, eff,
                                    s.max_steps, s.num_train_epochs)  # every row and your batch, not the preflight's
    hyper_ids = {f.check for f in hyper}
    findings = [f for f in findings if f.check not in hyper_ids] + hyper
    report.extend(soften_unchosen(findings, _chosen(args), recipe.profile))
    if args.show:
        try:
            run.samples, _ = sample_rows(trainer, tokenizer, args.show, args.seed, args.packing)
        except ValueError as err:
            run.notes.append(f"no sample rows: {err}")
    return run


# ------------------------------------------------------------------------------------------------ output
def verdict(report: SanityReport) -> tuple[str, int]:
    """("OK"/"FAIL", exit status) of a report.

    >>> verdict(SanityReport([Finding("a", "warn", "", "")]))
    ('OK', 0)
    """
    return ("OK", EXIT_OK) if report.ok else ("FAIL", EXIT_FAIL)


def top_fixes(report: SanityReport, limit: int = TOP_FIXES) -> list[str]:
    """The fixes of failed findings, then of warnings, one per check, at most ``limit``.

    >>> top_fixes(SanityReport([Finding("a", "warn", "m", "do A"), Finding("b", "fail", "m", "do B")]))
    ['b: do B', 'a: do A']
    """
    ordered = report.failed + report.warnings
    seen, out = set(), []
    for f in ordered:
        if f.fix and f.check not in seen:
            seen.add(f.check)
            out.append(f"{f.check}: {f.fix}")
    return out[:limit]


def render_text(run: Run) -> str:
    """Verdict and top fixes, data and assumptions, the findings table, then the sample rows."""
    word, code = verdict(run.report)
    n = {s: sum(f.status == s for f in run.report.findings) for s in ("fail", "warn", "pass")}
    lines = [f"VERDICT: {word} ({n['fail']} failed, {n['warn']} warnings, {n['pass']} passed; exit {code})"]
    fixes = top_fixes(run.report)
    if fixes:
        lines.append("Top fixes:")
        lines += [f"  {i}. {fix}" for i, fix in enumerate(fixes, 1)]
    lines.append(f"Data: {run.data}")
    if run.assumed:
        lines.append("Assumed (not set by you): " + "; ".join(run.assumed))
    lines += [f"Note: {note}" for note in run.notes]
    lines += ["", str(run.report)]
    if run.samples:
        lines += ["", "Sample rows ([...] = trained tokens):"] + run.samples
    return "\n".join(lines)


def render_json(run: Run) -> str:
    """One JSON object: verdict, exit code, fixes, data, assumptions, notes, findings, samples."""
    word, code = verdict(run.report)
    return json.dumps({
        "verdict": word, "exit_code": code, "top_fixes": top_fixes(run.report), "data": run.data,
        "assumed": run.assumed, "notes": run.notes,
        "findings": [{"check": f.check, "status": f.status, "message": f.message, "fix": f.fix} for f in run.report.findings],
        "samples": run.samples, "seconds": round(run.seconds, 1),
    }, indent=2, ensure_ascii=False)


def _bad_input(message: str, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"verdict": "BAD_INPUT", "exit_code": EXIT_BAD_INPUT, "error": message}, indent=2))
    print(f"error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 no fail, 1 a check failed, 2 bad input), never raises."""
    as_json = "--json" in (sys.argv[1:] if argv is None else list(argv))
    started = time.perf_counter()
    try:
        args = parse_args(argv)
        as_json = args.json
        inputs = load_inputs(args)
        with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
            run = run_checks(args, inputs)
    except SystemExit as exit_:  # --help
        return int(exit_.code or 0)
    except InputError as err:
        return _bad_input(str(err), as_json)
    except Exception as err:  # never a traceback: one line naming what broke
        first = str(err).splitlines()[0] if str(err) else ""
        return _bad_input(f"the check could not run ({type(err).__name__}: {first[:300]}); check the inputs, or "
                          "report this with the command line", as_json)
    run.seconds = time.perf_counter() - started
    print(render_json(run) if as_json else render_text(run))
    return verdict(run.report)[1]


if __name__ == "__main__":
    sys.exit(main())
