"""``python -m tools.gpu_rehearsal``: the command line.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from tools.gpu_rehearsal.common import BUDGET_S, ROOT, WHEELS_DIR
from tools.gpu_rehearsal.wheels import gather_wheels
from tools.gpu_rehearsal.model import extract_model_files
from tools.gpu_rehearsal.run import execute_one, rehearse
from tools.gpu_rehearsal.dry_run import dry_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.gpu_rehearsal", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--dry-run", action="store_true", help="check readiness and print the plan (no CUDA needed)")
    what.add_argument("--gather-wheels", action="store_true", help="download the pinned wheels (PyPI needed)")
    what.add_argument("--extract-model", action="store_true", help="refresh tools/gpu_rehearsal_model/ from the GGUF")
    what.add_argument("--execute-one", nargs=3, metavar=("NOTEBOOK", "OUT", "PARAMS_JSON"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: $OUT, else runs/gpu-rehearsal)")
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps per training run (default 4)")
    parser.add_argument("--jobs", type=int, default=4, help="notebooks executed at a time (default 4)")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help=f"seconds for the whole run (default {BUDGET_S})")
    parser.add_argument("--wheels", type=Path, default=WHEELS_DIR, help="wheels folder (default .wheels-gpu)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (models, checkpoints)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.jobs < 1:
        parser.error("--steps and --jobs must be >= 1")
    if args.execute_one:
        return execute_one(*args.execute_one)
    if args.gather_wheels:
        return gather_wheels(args.wheels)
    if args.extract_model:
        return extract_model_files()
    if args.dry_run:
        return 1 if dry_run(args.steps, args.jobs, args.wheels) else 0
    out = args.out or Path(os.environ.get("OUT") or ROOT / "runs" / "gpu-rehearsal")
    return rehearse(out.resolve(), args.steps, args.jobs, args.budget, args.wheels, args.keep)
